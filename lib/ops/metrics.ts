// Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
// histograms with labels, written out in a stable order. Small on purpose: the package has no
// metrics dependency, and these few kinds are all the cluster's figures need. No Node-RED here;
// nodes/common/metrics-hook.ts feeds it from the stores and heartbeats and serves it.

export type Labels = Record<string, string>;
type Kind = 'counter' | 'gauge' | 'histogram';

interface Family {
  name: string;
  help: string;
  kind: Kind;
  buckets?: number[];
  series: Map<string, { labels: Labels; value: number; counts?: number[]; sum?: number; count?: number }>;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Seconds: from 1 ms to 2 min, for SEM acks and recovery steps alike. */
export const SECOND_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k])}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, kind: Kind, buckets?: number[]): Family {
    let f = this.families.get(name);
    if (!f) {
      if (!NAME_RE.test(name)) throw new Error(`bad metric name ${name}`);
      f = { name, help, kind, buckets, series: new Map() };
      this.families.set(name, f);
    } else if (f.kind !== kind) throw new Error(`${name} is a ${f.kind}, not a ${kind}`);
    return f;
  }

  private series(f: Family, labels: Labels) {
    for (const k of Object.keys(labels)) if (!LABEL_RE.test(k) || k === 'le') throw new Error(`bad label name ${k}`);
    const key = labelText(labels);
    let s = f.series.get(key);
    if (!s) {
      s = { labels: { ...labels }, value: 0 };
      if (f.kind === 'histogram') Object.assign(s, { counts: new Array(f.buckets!.length).fill(0), sum: 0, count: 0 });
      f.series.set(key, s);
    }
    return s;
  }

  /** Declare a family so it is written (with its HELP and TYPE) before any sample exists. */
  declare(name: string, help: string, kind: Kind, buckets = SECOND_BUCKETS): void {
    this.family(name, help, kind, kind === 'histogram' ? buckets : undefined);
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    checkIncrement(name, by);
    this.series(this.family(name, help, 'counter'), labels).value += by;
  }

  /** Set a counter to a total kept elsewhere (e.g. the starvation meter's own count). */
  setCounter(name: string, help: string, labels: Labels, total: number): void {
    const s = this.series(this.family(name, help, 'counter'), labels);
    s.value = Math.max(s.value, total);
  }

  set(name: string, help: string, labels: Labels, value: number): void {
    this.series(this.family(name, help, 'gauge'), labels).value = value;
  }

  /** Forget every series of a gauge (before setting it afresh from the files). */
  resetGauge(name: string): void {
    const f = this.families.get(name);
    if (f && f.kind === 'gauge') f.series.clear();
  }

  observe(name: string, help: string, labels: Labels, value: number, buckets = SECOND_BUCKETS): void {
    if (!Number.isFinite(value)) return;
    const f = this.family(name, help, 'histogram', buckets);
    record(f, this.series(f, labels), value);
  }

  /**
   * One series of a counter, for a caller that counts often (per diff): the series is found (or
   * made) once, by its first increment; the function returned then adds to it without building its
   * label text again. Call it at once: the series shows in the text from then on.
   */
  counterOf(name: string, help: string, labels: Labels): (by?: number) => void {
    const s = this.series(this.family(name, help, 'counter'), labels);
    return (by = 1) => {
      checkIncrement(name, by);
      s.value += by;
    };
  }

  /** One series of a histogram, as counterOf. */
  histogramOf(name: string, help: string, labels: Labels, buckets = SECOND_BUCKETS): (value: number) => void {
    const f = this.family(name, help, 'histogram', buckets);
    const s = this.series(f, labels);
    return (value) => {
      if (Number.isFinite(value)) record(f, s, value);
    };
  }

  /** The text exposition: families in name order, series in label order. */
  text(): string {
    const out: string[] = [];
    for (const f of [...this.families.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      out.push(`# TYPE ${f.name} ${f.kind}`);
      for (const key of [...f.series.keys()].sort()) {
        const s = f.series.get(key)!;
        if (f.kind !== 'histogram') {
          out.push(`${f.name}${labelText(s.labels)} ${num(s.value)}`);
          continue;
        }
        f.buckets!.forEach((b, i) => out.push(`${f.name}_bucket${labelText(s.labels, ['le', num(b)])} ${s.counts![i]}`));
        out.push(`${f.name}_bucket${labelText(s.labels, ['le', '+Inf'])} ${s.count}`);
        out.push(`${f.name}_sum${labelText(s.labels)} ${num(s.sum!)}`);
        out.push(`${f.name}_count${labelText(s.labels)} ${s.count}`);
      }
    }
    return out.join('\n') + '\n';
  }
}

/** A counter only goes up: checked before a series is found or made. */
function checkIncrement(name: string, by: number): void {
  if (!(by >= 0)) throw new Error(`a counter only goes up (${name} by ${by})`);
}

function record(f: Family, s: { counts?: number[]; sum?: number; count?: number }, value: number): void {
  const b = f.buckets!;
  for (let i = 0; i < b.length; i++) if (value <= b[i]) s.counts![i]++;
  s.sum! += value;
  s.count! += 1;
}

/**
 * A refusal reason as a label: what kind of refusal, not which record. A reason that names the
 * diff first (`refused <Diff.dat line>: why`) is read from its `why`; then its leading words up to
 * the first punctuation, at most four, so the label set stays small.
 */
export function reasonClass(reason: string): string {
  let why = reason.trim();
  if (/^refused\s/i.test(why) && why.includes(': ')) why = why.slice(why.indexOf(': ') + 2);
  const words: string[] = [];
  for (const w of why.toLowerCase().split(/\s+/)) {
    const m = /^([a-z-]+)([^a-z-]?)/.exec(w);
    if (!m) break;
    words.push(m[1]);
    if (m[2] || words.length === 4) break;
  }
  return words.join(' ') || 'other';
}
