import { strict as assert } from 'assert';
import { deriveOperation, operationRecords, ringOrder } from '../../lib/records/ring';
import { naturalCompare } from '../../lib/records/natural-sort';

const group = (n: number) => Array.from({ length: n }, (_, i) => [`S${i + 1}`, `127.0.1.${i + 1}`, 'RS1', '-']);

describe('operation file derived from group (the ring)', () => {
  it('orders hostnames naturally (S2 before S10)', () => {
    assert.deepEqual(ringOrder(['S10', 'S2', 'S1', 'S2b', 'S2']), ['S1', 'S2', 'S2b', 'S10']);
    assert.ok(naturalCompare('S02', 'S2') !== 0);
  });

  it('one member watches nobody', () => {
    assert.deepEqual(deriveOperation(group(1)), []);
  });

  it('two members watch each other as P1', () => {
    assert.deepEqual(operationRecords(group(2)), [
      ['P1', 'S2', 'S1'],
      ['P1', 'S1', 'S2'],
    ]);
  });

  for (const n of [3, 6, 7]) {
    it(`${n} members: target i is watched by i-1 as P1 and i+1 as P2`, () => {
      const ops = deriveOperation(group(n));
      assert.equal(ops.length, 2 * n);
      for (let i = 0; i < n; i++) {
        const t = `S${i + 1}`;
        const p1 = ops.filter((o) => o.target === t && o.priority === 'P1');
        const p2 = ops.filter((o) => o.target === t && o.priority === 'P2');
        assert.deepEqual(p1.map((o) => o.manager), [`S${((i - 1 + n) % n) + 1}`]);
        assert.deepEqual(p2.map((o) => o.manager), [`S${((i + 1) % n) + 1}`]);
      }
      // Every member manages exactly two targets: the load of watching is even.
      for (let i = 0; i < n; i++) assert.equal(ops.filter((o) => o.manager === `S${i + 1}`).length, 2);
    });
  }

  it('is independent of the order of the group file', () => {
    const g = group(6);
    assert.deepEqual(operationRecords(g.slice().reverse()), operationRecords(g));
  });

  it('a backup joins the ring in its natural place (S2b after S2)', () => {
    const g = group(3).filter((r) => r[0] !== 'S2');
    g.push(['S2b', '127.0.2.1', 'RS2', '-']);
    assert.deepEqual(ringOrder(g.map((r) => r[0])), ['S1', 'S2b', 'S3']);
  });
});
