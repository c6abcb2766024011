// bench:sem's GC figures: reads the lines of ./gc-preload.ts from each VM's stdout and tells, over
// the measured window, how many collections each VM ran, how long they paused it, and which of
// the pooled samples (S3..S6) a pause of the sender or of the sample's own receiver overlapped.
import { percentile } from './stats';

export interface Gc {
  /** Epoch ms at which the collection started. */
  start: number;
  ms: number;
  kind: string;
}

/** One pooled sample: `value` its figure (ms); [start, start + ms] (epoch ms) when it ran, from
 * the bench's request to S1 until `peer`'s acknowledgement. */
export interface Sample {
  peer: string;
  start: number;
  ms: number;
  value: number;
}

export interface Pauses {
  scavenges: number;
  scavenge_p50_ms: number;
  scavenge_max_ms: number;
  /** Every other kind (mark-compact, incremental marking steps, weak callbacks). */
  other: number;
  other_max_ms: number;
}

export function parseGcLines(stdout: string): Gc[] {
  const out: Gc[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^gc (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\S+)$/.exec(line);
    if (m) out.push({ start: Number(m[1]), ms: Number(m[2]), kind: m[3] });
  }
  return out;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

export function pauses(gcs: Gc[]): Pauses {
  const minor = gcs.filter((g) => g.kind === 'minor').map((g) => g.ms).sort((a, b) => a - b);
  const other = gcs.filter((g) => g.kind !== 'minor').map((g) => g.ms);
  return {
    scavenges: minor.length,
    scavenge_p50_ms: median(minor),
    scavenge_max_ms: minor.length ? r2(minor[minor.length - 1]) : 0,
    other: other.length,
    other_max_ms: other.length ? r2(Math.max(...other)) : 0,
  };
}

/** Whether a pause overlaps the sample's interval. */
const overlaps = (g: Gc, s: Sample) => g.start < s.start + s.ms && g.start + g.ms > s.start;

/**
 * The GC figures of one run: `byVm` each VM's collections (the sender first under `sender`),
 * `window` the measured edits' [first start, last end], `samples` the pooled samples and `p99` the
 * pooled p99 (the samples at or above it are the tail).
 */
export function gcFigures(sender: string, byVm: Record<string, Gc[]>, window: [number, number], samples: Sample[], p99: number) {
  const inWindow = (gs: Gc[]) => gs.filter((g) => g.start + g.ms >= window[0] && g.start <= window[1]);
  const w = Object.fromEntries(Object.entries(byVm).map(([vm, gs]) => [vm, inWindow(gs)]));
  const receivers = Object.keys(w).filter((vm) => vm !== sender).sort();
  const hitBy = (s: Sample) => ({
    sender: (w[sender] ?? []).some((g) => overlaps(g, s)),
    own: (w[s.peer] ?? []).some((g) => overlaps(g, s)),
  });
  const hits = samples.map((s) => ({ s, h: hitBy(s) }));
  const tail = hits.filter((x) => x.s.value >= p99);
  const clean = hits.filter((x) => !x.h.sender && !x.h.own);
  const count = (xs: typeof hits, f: (h: { sender: boolean; own: boolean }) => boolean) => xs.filter((x) => f(x.h)).length;
  return {
    sender: pauses(w[sender] ?? []),
    receivers: pauses(receivers.flatMap((vm) => w[vm])),
    scavenges_per_receiver: Object.fromEntries(receivers.map((vm) => [vm, pauses(w[vm]).scavenges])),
    samples: samples.length,
    /** Samples during which the sender or the sample's own receiver was collecting. */
    samples_hit: { by_sender: count(hits, (h) => h.sender), by_own_receiver: count(hits, (h) => h.own && !h.sender) },
    /** The same among the samples at or above the p99. */
    tail_samples: tail.length,
    tail_hit: { by_sender: count(tail, (h) => h.sender), by_own_receiver: count(tail, (h) => h.own && !h.sender), by_none: count(tail, (h) => !h.sender && !h.own) },
    /** What a pause costs a sample: the median of the samples a pause of S1 overlapped, and of
     * those no pause overlapped, in the same run (the machine's load moves both alike); and the
     * p99 of the samples no pause overlapped (the run's p99 without its collections). */
    hit_median_ms: { by_sender: median(hits.filter((x) => x.h.sender).map((x) => x.s.value)), by_none: median(clean.map((x) => x.s.value)) },
    p99_without_hit_ms: clean.length ? r2(percentile(clean.map((x) => x.s.value).sort((a, b) => a - b), 99)) : 0,
  };
}

function median(xs: number[]): number {
  return xs.length ? r2(percentile(xs.slice().sort((a, b) => a - b), 50)) : 0;
}
