// An object's own fields with a few more, without object spread. In Node 20 (V8 11.3) a literal
// `{ ...base, a, b }` (a spread followed by more fields) costs about 0.7-1 KB of garbage and ~2 us
// per object, against ~0.15 KB and ~0.15 us for copying the fields one by one (a micro-benchmark
// under the sampling heap profiler, docs/performance.md "Ninth pass (b)"). The edit path made such
// objects per edit on every VM (the journal line's packed state, each diff, each answer's head),
// so they are built here instead. Same result as the spread for plain objects: own enumerable
// string keys of `base` in their order, then those of `extra`, a key in both keeping its first
// place and the value of `extra`.

/** `{ ...base, ...extra }` for plain objects (no symbol keys, no accessors that matter). */
export function withFields<T extends object, U extends object>(base: T, extra: U): Omit<T, keyof U> & U {
  const out: Record<string, unknown> = {};
  for (const k in base) if (Object.prototype.hasOwnProperty.call(base, k)) out[k] = base[k];
  for (const k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) out[k] = extra[k];
  return out as Omit<T, keyof U> & U;
}
