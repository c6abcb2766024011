// Counts what ./v8-trace-preload.ts made V8 print between its `v8-trace: on` and `off` lines:
// TurboFan compilations (and their time) and deoptimisations, by function, reason and source
// position, so a bench can say per measured edit how much of the hot path V8 was still
// (re)compiling and why it threw code away (docs/performance.md, "Eighth pass: V8 on the sender").

export interface V8Trace {
  /** Completed TurboFan compilations (OSR included) in the window. */
  compilations: number;
  /** Their compile time (ms, the three phases V8 reports, summed; on V8's background threads). */
  compileMs: number;
  deopts: number;
  /** Deoptimisations by "function: reason @ source position", most frequent first. */
  deoptsBy: [string, number][];
  /** Compile time (ms) by function name, "name xN", most first. */
  compiledBy: [string, number][];
}

// `<JSFunction name (sfi = 0x…)>`; an anonymous function has no name.
const COMPLETED = /^\[completed compiling 0x[0-9a-f]+ <JSFunction ([^(>]*?) ?\(sfi[^>]*> \(target (\w+)\)(?: OSR)? - took ([\d.]+), ([\d.]+), ([\d.]+) ms\]/;
const BAILOUT = /^\[bailout \(kind: ([\w-]+), reason: ([^)]*)\): begin\. deoptimizing 0x[0-9a-f]+ <JSFunction ([^(>]*?) ?\(sfi/;
// Optimised code thrown away because an assumption it was built on (a map, a constant) changed:
// it deoptimises when it next runs (lazily); counted as a deoptimisation of that function.
const DEPENDENT = /^\[marking dependent code 0x[0-9a-f]+ <Code (\w+)> \(0x[0-9a-f]+ <SharedFunctionInfo ?([^>]*)>\) \(opt id \d+\) for deoptimization, reason: ([^\]]*)\]/;
const AT = /;;; deoptimize at <([^>]*)>/;

/** The trace in `text` (a VM's stdout) between the first `v8-trace: on` and the next `off`. */
export function countV8Trace(text: string): V8Trace {
  const start = text.indexOf('v8-trace: on\n');
  const end = start < 0 ? -1 : text.indexOf('v8-trace: off\n', start);
  const lines = start < 0 ? [] : text.slice(start, end < 0 ? undefined : end).split('\n');
  const compiled = new Map<string, { n: number; ms: number }>();
  const deopts = new Map<string, number>();
  let compilations = 0;
  let compileMs = 0;
  let pending: string | undefined;
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const flush = (at: string) => {
    if (pending !== undefined) add(deopts, `${pending} @ ${at}`);
    pending = undefined;
  };
  for (const line of lines) {
    const c = COMPLETED.exec(line);
    if (c) {
      const ms = Number(c[3]) + Number(c[4]) + Number(c[5]);
      compilations += 1;
      compileMs += ms;
      const k = c[1] || '(anonymous)';
      const was = compiled.get(k) ?? { n: 0, ms: 0 };
      compiled.set(k, { n: was.n + 1, ms: was.ms + ms });
      continue;
    }
    const b = BAILOUT.exec(line);
    if (b) {
      flush('?');
      pending = `${b[3] || '(anonymous)'}: ${b[2]} (${b[1]})`;
      continue;
    }
    const d = DEPENDENT.exec(line);
    if (d) {
      flush('?');
      add(deopts, `${d[2] || '(anonymous)'}: ${d[3]} (dependency) @ -`);
      continue;
    }
    const a = AT.exec(line);
    if (a && pending !== undefined) flush(shortPath(a[1]));
  }
  flush('?');
  const sorted = (m: [string, number][]) => m.sort((x, y) => y[1] - x[1]);
  const deoptCount = [...deopts.values()].reduce((n, x) => n + x, 0);
  const byTime = [...compiled].map(([k, v]): [string, number] => [`${k}${v.n > 1 ? ` x${v.n}` : ''}`, Math.round(v.ms * 10) / 10]);
  return { compilations, compileMs: Math.round(compileMs * 10) / 10, deopts: deoptCount, deoptsBy: sorted([...deopts]), compiledBy: sorted(byTime) };
}

/** `/…/dist/lib/sem/fanout.js:12:3` -> `lib/sem/fanout.js:12:3`; node_modules paths from the package on. */
function shortPath(p: string): string {
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) return p.slice(nm + 'node_modules/'.length);
  const d = p.lastIndexOf('/dist/');
  return d >= 0 ? p.slice(d + '/dist/'.length) : p;
}
