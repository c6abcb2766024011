// A strict parser of the Prometheus text exposition format (0.0.4) for the tests: every line must
// be a HELP, a TYPE or a sample; a family's TYPE comes before its samples and only once; names
// and labels are checked; values are floats (+Inf, -Inf, NaN); a histogram's buckets are
// cumulative and its +Inf bucket equals its _count. Throws on the first violation with the line.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  help?: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

function parseValue(v: string, line: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(v)) throw new Error(`bad value ${v} in: ${line}`);
  return Number(v);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label at ${i} in: ${line}`);
    i += m[0].length;
    let v = '';
    for (;;) {
      if (i >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const c = text[i++];
      if (c === '"') break;
      if (c === '\\') {
        const n = text[i++];
        if (n === 'n') v += '\n';
        else if (n === '\\' || n === '"') v += n;
        else throw new Error(`bad escape \\${n} in: ${line}`);
      } else v += c;
    }
    if (m[1] in out) throw new Error(`label ${m[1]} twice in: ${line}`);
    out[m[1]] = v;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`expected , between labels in: ${line}`);
  }
  return out;
}

/** The family a sample name belongs to (histogram/summary suffixes stripped when declared). */
function familyOf(name: string, fams: Map<string, Family>): Family | undefined {
  if (fams.has(name)) return fams.get(name);
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && fams.has(m[1]) && ['histogram', 'summary'].includes(fams.get(m[1])!.type)) return fams.get(m[1]);
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const fams = new Map<string, Family>();
  const withSamples = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      const f = fams.get(m[1]) ?? { name: m[1], type: 'untyped', samples: [] };
      if (f.help !== undefined) throw new Error(`HELP twice: ${line}`);
      f.help = m[2];
      fams.set(m[1], f);
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (\\S+)$`).exec(line))) {
      if (!TYPES.includes(m[2])) throw new Error(`unknown type: ${line}`);
      if (withSamples.has(m[1])) throw new Error(`TYPE after samples: ${line}`);
      const f = fams.get(m[1]) ?? { name: m[1], type: 'untyped', samples: [] };
      if (f.type !== 'untyped') throw new Error(`TYPE twice: ${line}`);
      f.type = m[2];
      fams.set(m[1], f);
      continue;
    }
    if (line.startsWith('#')) continue; // a comment
    m = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (!m) throw new Error(`not a sample: ${line}`);
    const labels = m[2] ? parseLabels(m[2], line) : {};
    const value = parseValue(m[3], line);
    let f = familyOf(m[1], fams);
    if (!f) {
      f = { name: m[1], type: 'untyped', samples: [] };
      fams.set(m[1], f);
    }
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`a counter below 0: ${line}`);
    withSamples.add(f.name);
    f.samples.push({ name: m[1], labels, value });
  }
  for (const f of fams.values()) {
    if (f.type !== 'histogram') continue;
    const bySeries = new Map<string, Sample[]>();
    for (const s of f.samples) {
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      bySeries.set(key, [...(bySeries.get(key) ?? []), s]);
    }
    for (const [key, ss] of bySeries) {
      const buckets = ss.filter((s) => s.name === `${f.name}_bucket`);
      let prev = -1;
      let prevLe = -Infinity;
      for (const b of buckets) {
        const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
        if (!(le > prevLe)) throw new Error(`${f.name}${key}: buckets not in increasing le`);
        if (b.value < prev) throw new Error(`${f.name}${key}: buckets not cumulative`);
        prev = b.value;
        prevLe = le;
      }
      const count = ss.find((s) => s.name === `${f.name}_count`);
      if (prevLe !== Infinity || !count || count.value !== prev) throw new Error(`${f.name}${key}: no +Inf bucket equal to _count`);
      if (!ss.some((s) => s.name === `${f.name}_sum`)) throw new Error(`${f.name}${key}: no _sum`);
    }
  }
  return fams;
}

/** The value of one sample (labels must match exactly), or undefined. */
export function sampleValue(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of fams.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const a = Object.entries(s.labels).sort().join('|');
      const b = Object.entries(labels).sort().join('|');
      if (a === b) return s.value;
    }
  }
  return undefined;
}
