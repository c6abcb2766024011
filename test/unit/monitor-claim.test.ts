// The one-recovery rule as pure functions: every peer computes the same winner from the same claims.
import * as assert from 'assert';
import { claimWinner, decideP1, decideP2, p2KeepsClaim, parseProblem, problemRecord, P2Situation } from '../../lib/monitor/recovery-claim';

const T0 = Date.parse('2026-01-01T00:00:10.000Z');
const rec = (by: string, status: string, since = T0) => parseProblem(problemRecord('S2', by, 'network', status, since));

describe('monitor: recovery claim rule', () => {
  it('P1 claims unless another manager already claimed this episode', () => {
    assert.strictEqual(decideP1('S1', undefined, T0).action, 'claim');
    assert.strictEqual(decideP1('S1', rec('S1', 'reexamining'), T0).action, 'claim');
    const d = decideP1('S1', rec('S3', 'confirmed'), T0);
    assert.deepStrictEqual([d.action, (d as { winner: string }).winner], ['stand-down', 'S3']);
    // A claim of an old episode (since long before) does not count.
    assert.strictEqual(decideP1('S1', rec('S3', 'recovered', T0 - 60_000), T0).action, 'claim');
    // A claim seen in a change event counts even if the merged record no longer shows it.
    assert.strictEqual(decideP1('S1', rec('S1', 'detected'), T0, undefined, [{ manager: 'S3', lamport: 9, origin: 'S3', sinceMs: T0 }]).action, 'stand-down');
  });

  const base: P2Situation = {
    me: 'S3',
    p1: 'S1',
    record: undefined,
    p1Problem: undefined,
    p1InGroup: true,
    episodeStart: T0,
    reexaminationMs: 2000,
    now: T0 + 2000,
  };

  it('P2 stands down when P1 claimed, claims at once when P1 left the group or failed', () => {
    assert.strictEqual(decideP2({ ...base, record: rec('S1', 'confirmed') }).action, 'stand-down');
    assert.strictEqual(decideP2({ ...base, record: rec('S1', 'fencing') }).action, 'stand-down');
    assert.strictEqual(decideP2({ ...base, p1InGroup: false }).action, 'claim');
    const p1Failed = parseProblem(problemRecord('S1', 'S6', 'network', 'confirmed', T0));
    assert.strictEqual(decideP2({ ...base, p1Problem: p1Failed }).action, 'claim');
  });

  it('P2 waits re-examination + grace for P1, then asks P1, and acts only if P1 does not answer', () => {
    const w = decideP2(base);
    assert.deepStrictEqual(w, { action: 'wait', until: T0 + 2000 + 1500, reason: 'waiting for P1 S1 to record it' });
    // P1 still re-examining by then is not a claim: P2 asks P1.
    const at = { ...base, now: T0 + 3500, record: rec('S1', 'reexamining') };
    assert.strictEqual(decideP2(at).action, 'probe-p1');
    const alive = decideP2({ ...at, p1Answered: true });
    assert.deepStrictEqual([alive.action, (alive as { until: number }).until], ['wait', T0 + 5000]);
    assert.strictEqual(decideP2({ ...at, p1Answered: false }).action, 'claim');
    // After P1 answered, the next look is not before notBefore.
    assert.strictEqual(decideP2({ ...at, now: T0 + 4000, notBefore: T0 + 5000 }).action, 'wait');
  });

  it("the winner: a P1 claim beats any other; else the earliest in (Lamport, origin) order, whatever order they are seen in", () => {
    const a = { manager: 'S3', lamport: 5, origin: 'S3', sinceMs: T0 };
    const b = { manager: 'S1', lamport: 7, origin: 'S1', sinceMs: T0 };
    const c = { manager: 'S4', lamport: 5, origin: 'S4', sinceMs: T0 };
    assert.strictEqual(claimWinner([a, b, c], 'S1')!.manager, 'S1');
    assert.strictEqual(claimWinner([c, b, a], 'S1')!.manager, 'S1');
    assert.strictEqual(claimWinner([c, a], 'S1')!.manager, 'S3');
    assert.strictEqual(claimWinner([a, c], 'S1')!.manager, 'S3');
    assert.strictEqual(claimWinner([], 'S1'), undefined);
  });

  it('P2 keeps its claim only if it wins among the claims it saw', () => {
    const mine = { manager: 'S3', lamport: 9, origin: 'S3', sinceMs: T0 };
    const p1 = { manager: 'S1', lamport: 8, origin: 'S1', sinceMs: T0 };
    assert.strictEqual(p2KeepsClaim('S3', 'S1', [mine], T0), true);
    assert.strictEqual(p2KeepsClaim('S3', 'S1', [mine, p1], T0), false);
    assert.strictEqual(p2KeepsClaim('S3', 'S1', [], T0), true);
  });
});
