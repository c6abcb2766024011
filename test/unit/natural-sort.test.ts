// naturalCompare scans its chunks in place (lib/records/natural-sort.ts); the order it gives must
// stay exactly the one every peer already uses to write its files and fix the ring. The reference
// below is the earlier implementation (chunks matched by a regular expression), kept as the spec.
import { strict as assert } from 'assert';
import fc from 'fast-check';
import { naturalCompare } from '../../lib/records/natural-sort';

function reference(a: string, b: string): number {
  const pa = a.match(/(\d+)|(\D+)/g) ?? [];
  const pb = b.match(/(\d+)|(\D+)/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      return x.length - y.length;
    }
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const name = fc.array(fc.constantFrom('S', 's', 'a', 'ab', '-', '.', '0', '1', '2', '9', '10', '007', 'é'), { maxLength: 8 }).map((xs) => xs.join(''));

describe('naturalCompare', () => {
  it('orders as the regular-expression version did, for any two names', () => {
    fc.assert(
      fc.property(name, name, (a, b) => {
        assert.strictEqual(Math.sign(naturalCompare(a, b)), Math.sign(reference(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
      }),
      { numRuns: 20000 },
    );
  });

  it('sorts a list as the earlier version did', () => {
    fc.assert(
      fc.property(fc.array(name, { maxLength: 30 }), (xs) => {
        assert.deepStrictEqual([...xs].sort(naturalCompare), [...xs].sort(reference));
      }),
    );
  });

  it('known cases', () => {
    assert.ok(naturalCompare('S2', 'S10') < 0);
    assert.ok(naturalCompare('S10', 'S9') > 0);
    assert.ok(naturalCompare('S02', 'S2') > 0, 'equal values: fewer digits first');
    assert.ok(naturalCompare('S1', 'S1a') < 0);
    assert.ok(naturalCompare('1a', 'a') < 0, 'a digit run before other characters');
    assert.strictEqual(naturalCompare('S7', 'S7'), 0);
    assert.ok(naturalCompare('', 'S1') < 0);
    // Values beyond 2^53 compare as Number() reads them, as before (then by length).
    assert.ok(naturalCompare('S99999999999999999999', 'S100000000000000000000') < 0);
  });
});
