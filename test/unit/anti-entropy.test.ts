// Anti-entropy (issue 16): a round talks to a constant number of partners, and an exchange ships
// only the keys that differ, never the whole state; after one push-pull exchange both replicas are
// identical (property, over random divergent histories).
import { strict as assert } from 'assert';
import fc from 'fast-check';
import { Diff, Replica } from '../../lib/sem/replica';
import { answerPull, answerSummary, decodePull, decodeSummary, encodePull, encodeSummary, partners, plan } from '../../lib/sem/anti-entropy';

const rs = (k: string, load: number) => [k, String(load), String(load % 4), 'up'];
let lamport = 0;
const diff = (origin: string, seq: number, file: Diff['file'], op: Diff['op'], record: string[]): Diff => ({ file, op, record, origin, seq, lamport: ++lamport });

/** A replica with `n` group members and `n` real servers, the same on every call. */
function cluster(n: number): Replica {
  const r = new Replica();
  lamport = 0;
  for (let i = 1; i <= n; i++) {
    r.apply(diff('S1', 2 * i - 1, 'group', 'Add', [`S${i}`, `127.0.9.${i}`, 'RS1', '-']));
    r.apply(diff('S1', 2 * i, 'realserver', 'Add', rs(`RS${i}`, i)));
  }
  return r;
}

/** Run A's side of an exchange with B entirely through the encoded messages. */
function exchange(a: Replica, b: Replica): { pulled: number; pushed: number; versionsSent: number } {
  const reply = answerSummary(b, decodeSummary(encodeSummary('SA', a)));
  if (!reply.versions) return { pulled: 0, pushed: 0, versionsSent: 0 };
  const versionsSent = Object.values(reply.versions).reduce((n, l) => n + l!.length, 0);
  const { pull, push } = plan(a, reply.versions);
  if (pull.length) a.merge(answerPull(b, decodePull(encodePull('SA', pull))));
  if (push.length) b.merge({ clock: a.clock, seqs: {}, entries: push });
  return { pulled: pull.length, pushed: push.length, versionsSent };
}

describe('anti-entropy', () => {
  it('a round has at most two partners, never itself, the first the ring successor', () => {
    for (const n of [1, 2, 3, 6, 25, 100]) {
      const members = Array.from({ length: n }, (_, i) => `S${i + 1}`);
      for (const self of members) {
        const p = partners(self, members);
        assert.ok(p.length <= 2 && p.length === Math.min(2, n - 1), `${n} members: ${p}`);
        assert.ok(!p.includes(self));
        assert.equal(new Set(p).size, p.length);
        if (n > 1) assert.equal(p[0], members[(members.indexOf(self) + 1) % n], 'natural order successor');
      }
    }
  });

  it('identical replicas: the answer is the digest alone', () => {
    const a = cluster(50);
    const b = cluster(50);
    assert.deepEqual(exchange(a, b), { pulled: 0, pushed: 0, versionsSent: 0 });
  });

  it('one record differs among 100: only that file is compared and one entry moves', () => {
    const a = cluster(100);
    const b = cluster(100);
    b.apply(diff('S7', 1, 'realserver', 'Mod', rs('RS7', 99)));
    const r = exchange(a, b);
    assert.deepEqual(r, { pulled: 1, pushed: 0, versionsSent: 100 }, 'group file (equal) not listed, one key pulled');
    assert.equal(a.digest(), b.digest());
    assert.deepEqual(a.get('realserver', 'RS7'), rs('RS7', 99));
  });

  it('after one exchange both replicas are identical, whatever each one missed (property)', () => {
    const edit = fc.record({ who: fc.constantFrom('S1', 'S2', 'S3'), key: fc.integer({ min: 1, max: 6 }), load: fc.nat(9), del: fc.boolean(), side: fc.constantFrom('a', 'b', 'both') });
    fc.assert(
      fc.property(fc.array(edit, { maxLength: 40 }), (edits) => {
        const a = cluster(3);
        const b = cluster(3);
        const seq: Record<string, number> = {};
        for (const e of edits) {
          seq[e.who] = (seq[e.who] ?? 0) + 1;
          const d = diff(e.who, seq[e.who], 'realserver', e.del ? 'Del' : 'Add', rs(`RS${e.key}`, e.load));
          if (e.side !== 'b') a.apply(d);
          if (e.side !== 'a') b.apply(d);
        }
        exchange(a, b);
        assert.equal(a.digest(), b.digest());
        assert.deepEqual(a.records('realserver'), b.records('realserver'));
      }),
      { numRuns: 200 },
    );
  });
});
