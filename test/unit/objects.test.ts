// withFields (lib/records/objects.ts) is the spread it replaces: the same keys in the same order
// (a key in both keeps its first place and takes the second value), the same values, own keys only,
// and the inputs untouched.
import { strict as assert } from 'assert';
import { withFields } from '../../lib/records/objects';

describe('withFields: { ...base, ...extra } without the spread', () => {
  it('gives what the spread gives, key order included', () => {
    const cases: [object, object][] = [
      [{ file: 'group', op: 'Mod', before: ['a'], record: ['b'] }, { origin: 'S1', seq: 5, lamport: 7 }],
      [{ ownSeq: 5, clock: 9, seqs: { S1: 5 }, entries: [1] }, { entries: [], proofs: [], proofOf: [] }],
      [{ 'x-p2p-mac': 'm', status: 'old' }, { status: '200' }],
      [{}, { a: undefined }],
      [{ a: 1 }, {}],
    ];
    for (const [base, extra] of cases) {
      const before = JSON.stringify([base, extra]);
      const got = withFields(base, extra);
      const want = { ...base, ...extra };
      assert.deepEqual(Object.keys(got), Object.keys(want));
      assert.deepEqual(got, want);
      assert.equal(JSON.stringify(got), JSON.stringify(want));
      assert.equal(JSON.stringify([base, extra]), before, 'the inputs are not changed');
      assert.notEqual(got, base);
    }
  });

  it('copies own fields only', () => {
    const proto = { inherited: 1 };
    const base = Object.create(proto) as { own?: number; inherited?: number };
    base.own = 2;
    assert.deepEqual(withFields(base, { more: 3 }), { own: 2, more: 3 });
  });
});
