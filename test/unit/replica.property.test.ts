// Convergence as a property: any order and any duplication of the same diffs leaves every replica
// with identical files.
import { strict as assert } from 'assert';
import fc from 'fast-check';
import { Diff, Replica } from '../../lib/sem/replica';
import { FILE_NAMES } from '../../lib/records/files';

const hosts = ['S1', 'S2', 'S3'];
const rsRecord = (k: string, load: number) => [k, String(load), String(load % 4), load % 2 ? 'up' : 'down'];

/** A stream of diffs as three origins could make them concurrently (Lamport clocks may tie). */
const diffArb = fc
  .array(
    fc.record({
      origin: fc.constantFrom(...hosts),
      lamport: fc.integer({ min: 1, max: 12 }),
      op: fc.constantFrom('Add', 'Del', 'Mod'),
      key: fc.constantFrom('RS1', 'RS2', 'RS3'),
      key2: fc.constantFrom('RS1', 'RS2', 'RS3'),
      load: fc.integer({ min: 0, max: 9 }),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((xs) => {
    const seq: Record<string, number> = {};
    return xs.map((x) => {
      seq[x.origin] = (seq[x.origin] ?? 0) + 1;
      const d: Diff = {
        file: 'realserver',
        op: x.op as Diff['op'],
        record: rsRecord(x.key, x.load),
        origin: x.origin,
        seq: seq[x.origin],
        // One origin never reuses a Lamport time: make it unique per origin.
        lamport: x.lamport * 100 + seq[x.origin],
      };
      if (x.op === 'Mod') d.before = rsRecord(x.key2, (x.load + 1) % 10);
      return d;
    });
  });

function state(r: Replica) {
  return { digest: r.digest(), files: FILE_NAMES.map((f) => r.records(f)) };
}

describe('diff apply (property): order and duplication do not matter', () => {
  it('any permutation with duplicates gives identical replicas', () => {
    fc.assert(
      fc.property(diffArb, fc.array(fc.nat(), { maxLength: 80 }), fc.array(fc.nat(), { maxLength: 20 }), (diffs, order, dups) => {
        const a = new Replica();
        for (const d of diffs) a.apply(d);
        // B gets a shuffle of the diffs plus some of them again.
        const shuffled = diffs.slice();
        order.forEach((o, i) => {
          const j = o % shuffled.length;
          const k = i % shuffled.length;
          [shuffled[j], shuffled[k]] = [shuffled[k], shuffled[j]];
        });
        for (const d of dups) shuffled.splice(d % (shuffled.length + 1), 0, diffs[d % diffs.length]);
        const b = new Replica();
        for (const d of shuffled) b.apply(d);
        assert.deepEqual(state(b), state(a));
      }),
      { numRuns: 400 },
    );
  });

  it('merging snapshots in any grouping equals applying every diff', () => {
    fc.assert(
      fc.property(diffArb, fc.nat(), (diffs, cut) => {
        const whole = new Replica();
        for (const d of diffs) whole.apply(d);
        const c = cut % (diffs.length + 1);
        const left = new Replica();
        const right = new Replica();
        diffs.slice(0, c).forEach((d) => left.apply(d));
        diffs.slice(c).forEach((d) => right.apply(d));
        left.merge(right.snapshot());
        right.merge(left.snapshot());
        assert.deepEqual(state(left), state(whole));
        assert.deepEqual(state(right), state(whole));
      }),
      { numRuns: 300 },
    );
  });

  it('a repeated diff changes nothing and reports no change', () => {
    const r = new Replica();
    const d: Diff = { file: 'group', op: 'Add', record: ['S1', '127.0.1.1', 'RS1', '-'], origin: 'S1', seq: 1, lamport: 1 };
    assert.equal(r.apply(d).length, 1);
    const before = r.digest();
    assert.equal(r.apply(d).length, 0);
    assert.equal(r.digest(), before);
  });

  it('a delete is not undone by an older add arriving late', () => {
    const r = new Replica();
    const add: Diff = { file: 'group', op: 'Add', record: ['S2', '127.0.1.2', 'RS1', '-'], origin: 'S2', seq: 1, lamport: 1 };
    const del: Diff = { ...add, op: 'Del', origin: 'S1', seq: 1, lamport: 2 };
    r.apply(del);
    r.apply(add);
    assert.deepEqual(r.records('group'), []);
  });

  it('concurrent edits of one record resolve to the same winner everywhere (Lamport, then origin)', () => {
    const base: Diff = { file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'detected', '-', '-'], origin: 'S1', seq: 1, lamport: 5 };
    const other: Diff = { ...base, record: ['S2', 'S3', 'network', 'detected', '-', '-'], origin: 'S3', seq: 1, lamport: 5 };
    const x = new Replica();
    x.apply(base);
    x.apply(other);
    const y = new Replica();
    y.apply(other);
    y.apply(base);
    assert.deepEqual(x.records('problem'), [other.record]);
    assert.deepEqual(y.records('problem'), [other.record]);
  });
});

describe('Replica.records: the sorted view kept between changes', () => {
  it('equals a fresh sort of the live entries after any stream of diffs, read between them', () => {
    fc.assert(
      fc.property(diffArb, (diffs) => {
        const r = new Replica();
        let revision = r.revision('realserver');
        for (const d of diffs) {
          const before = r.records('realserver');
          const changed = r.apply(d).length > 0;
          const after = r.records('realserver');
          // A fresh replica fed the same state: nothing cached there.
          const fresh = new Replica();
          fresh.merge(r.snapshot());
          assert.deepStrictEqual(after, fresh.records('realserver'));
          if (changed) assert.notDeepStrictEqual(after, before);
          assert.ok(r.revision('realserver') >= revision);
          revision = r.revision('realserver');
        }
      }),
    );
  });

  it('hands out copies: a caller changing a record changes nothing held', () => {
    const r = new Replica();
    r.apply({ file: 'realserver', op: 'Add', record: rsRecord('RS1', 1), origin: 'S1', seq: 1, lamport: 1 });
    const got = r.records('realserver');
    got[0][1] = 'changed';
    got.pop();
    assert.deepStrictEqual(r.records('realserver'), [rsRecord('RS1', 1)]);
  });
});
