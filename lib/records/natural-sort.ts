// Natural order of hostnames (S2 before S10), the same on every peer: it fixes the ring.
const chunk = /(\d+)|(\D+)/g;

export function naturalCompare(a: string, b: string): number {
  const pa = a.match(chunk) ?? [];
  const pb = b.match(chunk) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      // Same value, different zero padding: the shorter (fewer zeros) first, for a total order.
      return x.length - y.length;
    }
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
