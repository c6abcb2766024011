// Natural order of hostnames (S2 before S10), the same on every peer: it fixes the ring.
// A name is read as chunks, each a run of digits or a run of other characters. Chunks compare in
// turn: two digit runs by their value (the one with fewer characters first when the values are
// equal, for a total order), a digit run before any other chunk, other runs by code units. When
// one name runs out of chunks first it comes first; names with equal chunks compare as strings.
// The chunks are scanned in place (no arrays or substrings per call): the ring and every sorted
// file call this O(n log n) times, and an idle VM of 100 sorted its group every round.

const isDigit = (c: number) => c >= 48 && c <= 57;

/** Where the chunk starting at `i` of `s` ends. */
function chunkEnd(s: string, i: number): number {
  const digit = isDigit(s.charCodeAt(i));
  let j = i + 1;
  while (j < s.length && isDigit(s.charCodeAt(j)) === digit) j++;
  return j;
}

function sameRange(a: string, i: number, ia: number, b: string, j: number, jb: number): boolean {
  if (ia - i !== jb - j) return false;
  for (let k = 0; k < ia - i; k++) if (a.charCodeAt(i + k) !== b.charCodeAt(j + k)) return false;
  return true;
}

export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ia = chunkEnd(a, i);
    const jb = chunkEnd(b, j);
    if (!sameRange(a, i, ia, b, j, jb)) {
      const nx = isDigit(a.charCodeAt(i));
      const ny = isDigit(b.charCodeAt(j));
      if (nx && ny) {
        const d = Number(a.slice(i, ia)) - Number(b.slice(j, jb));
        if (d !== 0) return d;
        return ia - i - (jb - j);
      }
      if (nx !== ny) return nx ? -1 : 1;
      // Two runs of other characters: code-unit order of the runs themselves.
      const n = Math.min(ia - i, jb - j);
      for (let k = 0; k < n; k++) {
        const d = a.charCodeAt(i + k) - b.charCodeAt(j + k);
        if (d !== 0) return d < 0 ? -1 : 1;
      }
      return ia - i < jb - j ? -1 : 1;
    }
    i = ia;
    j = jb;
  }
  if (i < a.length !== j < b.length) return i < a.length ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}
