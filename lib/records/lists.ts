// Lists built the same way in every tier of V8. `xs.map(f)` returns a PACKED array when the
// interpreter runs it and a HOLEY one once TurboFan has inlined it into an optimised caller (it
// allocates the result at its full length first), and `xs.slice()` keeps whatever kind `xs` has.
// Code optimised on the one kind is thrown away ("wrong map") the first time the other arrives:
// the edit path's records, edits and diffs were deoptimising commit, validateRecord,
// formatDiffLine, sameRecord, the replica's get and the text files' writer once each, and commit
// three times (docs/performance.md, "Eighth pass: V8 on the sender"). A list grown by push from an empty
// literal is PACKED in every tier.

/** `xs.map(f)`, always a PACKED array. */
export function mapList<T, U>(xs: readonly T[], f: (x: T, i: number) => U): U[] {
  const out: U[] = [];
  for (let i = 0; i < xs.length; i++) out.push(f(xs[i], i));
  return out;
}

/** A copy of `xs` (holes read as undefined), always a PACKED array. */
export function copyList<T>(xs: readonly T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < xs.length; i++) out.push(xs[i]);
  return out;
}
