// Anti-entropy (issue 16): a round talks to one partner, and an exchange ships only the keys that
// differ, never the whole state; after one push-pull exchange both replicas are identical
// (property, over random divergent histories). A change starts a chain of follow-up exchanges with
// members not asked yet in it (a few in parallel a step), which stops after a step that changed
// nothing.
import { strict as assert } from 'assert';
import fc from 'fast-check';
import { Diff, Replica } from '../../lib/sem/replica';
import { FOLLOW_UP_STEPS, FOLLOW_UP_WIDTH, MAX_POSTPONED_ROUNDS, RoundPacer, Spreader, answerPull, answerSummary, decodePull, decodeSummary, encodePull, encodeSummary, plan, randomPartner, roundPartner } from '../../lib/sem/anti-entropy';

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
  it('a round has one partner, never itself: the ring successor on even rounds, another member at random on odd ones', () => {
    for (const n of [1, 2, 3, 6, 25, 100]) {
      const members = Array.from({ length: n }, (_, i) => `S${i + 1}`);
      for (const self of members) {
        const successor = members[(members.indexOf(self) + 1) % n];
        for (let round = 0; round < 6; round++) {
          const p = roundPartner(self, members, round);
          if (n === 1) {
            assert.equal(p, undefined);
            continue;
          }
          assert.ok(p && p !== self, `${n} members, ${self}, round ${round}: ${p}`);
          if (round % 2 === 0 || n === 2) assert.equal(p, successor, 'natural order successor');
          else assert.notEqual(p, successor, 'the random partner is another member than the successor');
        }
      }
    }
    // The random partner covers every other member.
    const members = Array.from({ length: 10 }, (_, i) => `S${i + 1}`);
    const seen = new Set<string>();
    for (let k = 0; k < 90; k++) seen.add(roundPartner('S1', members, 1, () => (k % 9) / 9)!);
    assert.deepEqual([...seen].sort(), members.filter((m) => m !== 'S1' && m !== 'S2').sort());
  });

  it('a follow-up partner is never itself nor one already asked; none when all were asked', () => {
    const members = ['S1', 'S2', 'S3', 'S4'];
    for (let k = 0; k < 20; k++) assert.ok(['S3', 'S4'].includes(randomPartner('S1', members, new Set(['S2']), () => k / 20)!));
    assert.equal(randomPartner('S1', members, new Set(['S2', 'S3', 'S4'])), undefined);
  });

  it('a random round picks a member never heard from while there is one; the ring successor keeps its rounds', () => {
    const members = Array.from({ length: 50 }, (_, i) => `S${i + 1}`);
    const unheard = new Set(['S2', 'S17', 'S40', 'S1']);
    const picked = new Set<string>();
    for (let k = 0; k < 200; k++) {
      const p = roundPartner('S1', members, 2 * k + 1, () => (k % 10) / 10, unheard)!;
      assert.ok(['S2', 'S17', 'S40'].includes(p), `round ${2 * k + 1}: ${p} was heard from already`);
      picked.add(p);
      // Even rounds stay with the ring successor, heard or not.
      assert.equal(roundPartner('S1', members, 2 * k, () => (k % 10) / 10, unheard), 'S2');
    }
    assert.deepEqual([...picked].sort(), ['S17', 'S2', 'S40'], 'each unheard member is chosen');
    // Every member heard from (or only itself left unheard): uniform among the others again.
    for (let k = 0; k < 20; k++) assert.ok(!['S1', 'S2'].includes(roundPartner('S1', members, 1, () => k / 20, new Set(['S1']))!));
    // Learning every member's version by random rounds alone: about N rounds with the preference
    // (each odd round reaches a new member), where uniform choice needs the coupon collector's N ln N.
    const roundsToHearAll = (prefer: boolean, seed: number) => {
      // mulberry32: a seeded generator, so the test is deterministic.
      let x = seed;
      const rng = () => {
        x = (x + 0x6d2b79f5) | 0;
        let t = Math.imul(x ^ (x >>> 15), 1 | x);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
      };
      const left = new Set(members.filter((m) => m !== 'S1' && m !== 'S2'));
      let r = 1;
      for (; left.size > 0 && r < 100_000; r += 2) left.delete(roundPartner('S1', members, r, rng, prefer ? left : new Set())!);
      return r;
    };
    for (let seed = 1; seed <= 5; seed++) {
      // 48 members besides the successor: 48 random rounds with the preference.
      assert.equal(roundsToHearAll(true, seed), 2 * 48 + 1, 'with the preference: one new member every random round');
      assert.ok(roundsToHearAll(false, seed) > 2 * 2 * 48, 'uniform choice: more than twice as many');
    }
  });

  describe('follow-up chains', () => {
    const settle = () => new Promise((r) => setTimeout(r, 20));
    const members = Array.from({ length: 20 }, (_, i) => `S${i + 1}`);

    it('a chain goes on while its exchanges change something, asks each member once, and stops at the first that changes nothing (one a step)', async () => {
      const asked: string[] = [];
      let changing = 3;
      const s = new Spreader({ self: 'S1', peers: () => members, width: 1, exchange: async (p) => (asked.push(p), changing-- > 0) });
      s.changed('S5');
      await settle();
      assert.equal(asked.length, 4, 'three exchanges that changed something, then the one that did not');
      assert.equal(new Set(asked).size, 4);
      assert.ok(!asked.includes('S1') && !asked.includes('S5'), 'neither itself nor the VM the change came from');
      assert.equal(s.busy, false);
      assert.deepEqual(s.counts, { chains: 1, exchanges: 4 });
    });

    it(`${FOLLOW_UP_WIDTH} members asked in parallel a step: the chain goes on while one of them changed, stops after a step where none did`, async () => {
      const steps: string[][] = [];
      let inStep: string[] = [];
      // Step 1: both change; step 2: only the second; step 3: neither.
      const answers = [true, true, false, true, false, false];
      const s = new Spreader({
        self: 'S1',
        peers: () => members,
        exchange: async (p) => {
          inStep.push(p);
          if (inStep.length === FOLLOW_UP_WIDTH) (steps.push(inStep), (inStep = []));
          return answers.shift() ?? false;
        },
      });
      s.changed('S9');
      await settle();
      assert.equal(FOLLOW_UP_WIDTH, 2);
      assert.equal(steps.length, 3);
      assert.equal(new Set(steps.flat()).size, 6, 'each member asked once in a chain');
      assert.ok(!steps.flat().includes('S9') && !steps.flat().includes('S1'));
    });

    it(`a chain makes at most ${FOLLOW_UP_STEPS} steps of ${FOLLOW_UP_WIDTH}, and no more than there are members to ask`, async () => {
      const s = new Spreader({ self: 'S1', peers: () => members, exchange: async () => true });
      s.changed('S2');
      await settle();
      assert.equal(s.counts.exchanges, FOLLOW_UP_STEPS * FOLLOW_UP_WIDTH);
      const few = new Spreader({ self: 'S1', peers: () => ['S2', 'S3', 'S4'], exchange: async () => true });
      few.changed('S2');
      await settle();
      assert.equal(few.counts.exchanges, 2, 'S3 and S4, then nobody is left');
    });

    it('one chain at a time: a change during a chain starts none; stop() ends it', async () => {
      let release: (v: boolean) => void = () => undefined;
      const s = new Spreader({ self: 'S1', peers: () => members, width: 1, exchange: () => new Promise<boolean>((r) => (release = r)) });
      s.changed('S2');
      await settle();
      s.changed('S3');
      s.changed('S4');
      assert.equal(s.counts.chains, 1);
      s.stop();
      release(true);
      await settle();
      assert.equal(s.counts.exchanges, 1, 'nothing asked after stop()');
      s.changed('S5');
      await settle();
      assert.equal(s.counts.chains, 1, 'a stopped spreader starts no chain');
    });

    it('spreads a difference through simulated replicas: every exchange is a real push-pull of what differs', async () => {
      // 30 replicas; S1 holds one record the others lack. Rounds are not run: only the chains
      // started by changes carry it (each replica that changed starts its own chain).
      const n = 30;
      const names = Array.from({ length: n }, (_, i) => `S${i + 1}`);
      const reps = new Map(names.map((h) => [h, cluster(3)]));
      reps.get('S1')!.apply(diff('S1', 99, 'realserver', 'Add', rs('RS-NEW', 1)));
      const spreaders = new Map<string, Spreader>();
      let x = 7;
      const rng = () => ((x = (x * 48271) % 2147483647) / 2147483647);
      for (const h of names) {
        spreaders.set(
          h,
          new Spreader({
            self: h,
            peers: () => names,
            rng,
            exchange: async (p) => {
              const before = [reps.get(h)!.digest(), reps.get(p)!.digest()];
              const r = exchange(reps.get(h)!, reps.get(p)!);
              if (r.pushed) spreaders.get(p)!.changed(h);
              return reps.get(h)!.digest() !== before[0] || reps.get(p)!.digest() !== before[1];
            },
          }),
        );
      }
      // S2 pulled it from S1 in a round: S2 starts a chain, as the store does.
      exchange(reps.get('S2')!, reps.get('S1')!);
      spreaders.get('S2')!.changed('S1');
      await new Promise((r) => setTimeout(r, 200));
      const holders = names.filter((h) => reps.get(h)!.get('realserver', 'RS-NEW'));
      assert.ok(holders.length > 2, `the chains carried it beyond S1 and S2 (${holders.length} of ${n})`);
      for (const h of holders) assert.deepEqual(reps.get(h)!.records('realserver'), reps.get('S1')!.records('realserver'));
      for (const s of spreaders.values()) s.stop();
    });
  });

  describe('rounds while edits flow', () => {
    it('no diff since the last round: every round runs', () => {
      const pacer = new RoundPacer();
      for (let i = 0; i < 10; i++) assert.equal(pacer.postpone(), false);
      assert.equal(pacer.total, 0);
    });

    it(`a diff since the last round postpones it, at most ${MAX_POSTPONED_ROUNDS} in a row: under a constant stream every ${MAX_POSTPONED_ROUNDS + 1}th round runs`, () => {
      const pacer = new RoundPacer();
      const ran: boolean[] = [];
      for (let i = 0; i < 4 * (MAX_POSTPONED_ROUNDS + 1); i++) {
        pacer.diffApplied();
        ran.push(!pacer.postpone());
      }
      const expected = ran.map((_, i) => i % (MAX_POSTPONED_ROUNDS + 1) === MAX_POSTPONED_ROUNDS);
      assert.deepEqual(ran, expected);
      assert.equal(pacer.total, 4 * MAX_POSTPONED_ROUNDS);
    });

    it('the stream stops: the next round runs, and a new diff postpones again', () => {
      const pacer = new RoundPacer();
      pacer.diffApplied();
      assert.equal(pacer.postpone(), true);
      assert.equal(pacer.postpone(), false, 'no diff since the postponed round');
      pacer.diffApplied();
      pacer.diffApplied();
      assert.equal(pacer.postpone(), true, 'several diffs between two rounds postpone one round');
      assert.equal(pacer.postpone(), false);
    });
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
