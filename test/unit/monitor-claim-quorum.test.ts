// Claim rule 6 (lib/monitor/recovery-claim.ts): no recovery starts on the minority side of a cut.
// First the pure decisions, then whole clusters in fake time: every manager runs its heartbeat with
// its isolation monitor as quorum over an in-memory replicated store (test/support/sim-cluster.ts)
// and one real server's VMs are cut off from the rest.
import * as assert from 'assert';
import { FakeClock } from '../support/fake-clock';
import { SimNet } from '../support/sim-cluster';
import { decideP1, decideP2, parseProblem, problemRecord, P2Situation } from '../../lib/monitor/recovery-claim';
import { FailureReport, Heartbeat } from '../../lib/monitor/heartbeat';
import { IsolationMonitor } from '../../lib/monitor/isolation-monitor';
import type { IsolationState } from '../../lib/monitor/isolation';
import type { CheckResult } from '../../lib/monitor/target-monitor';

const T0 = Date.parse('2026-01-01T00:00:10.000Z');
const minority = { ok: false, why: 'reaches 2 of 6 members (S2 S5), a majority needs 4' };
const majority = { ok: true, why: 'reaches 4 of 6' };

describe('monitor: claim rule 6 (majority), pure', () => {
  it('P1 on a minority side does not claim; with a majority it does; another claim still wins first', () => {
    const d = decideP1('S2', undefined, T0, undefined, [], minority);
    assert.strictEqual(d.action, 'no-quorum');
    assert.match(d.reason, /no recovery from a minority: reaches 2 of 6/);
    assert.strictEqual(decideP1('S2', undefined, T0, undefined, [], majority).action, 'claim');
    const rec = parseProblem(problemRecord('S3', 'S4', 'network', 'confirmed', T0));
    assert.strictEqual(decideP1('S2', rec, T0, undefined, [], minority).action, 'stand-down');
  });

  it('P2 on a minority side never takes over, not even when P1 is out of the group or does not answer', () => {
    const base: P2Situation = { me: 'S5', p1: 'S4', record: undefined, p1Problem: undefined, p1InGroup: true, episodeStart: T0, reexaminationMs: 2000, now: T0 + 10_000 };
    assert.strictEqual(decideP2({ ...base, p1Answered: false }).action, 'claim', 'without the rule: the old take-over');
    assert.strictEqual(decideP2({ ...base, p1Answered: false, quorum: minority }).action, 'no-quorum');
    assert.strictEqual(decideP2({ ...base, p1InGroup: false, quorum: minority }).action, 'no-quorum');
    assert.strictEqual(decideP2({ ...base, p1Answered: false, quorum: majority }).action, 'claim');
  });
});

type Plan = { n: number; rsOf: (h: string) => string };

/** n managers S1..Sn, each with a heartbeat whose quorum is its isolation monitor. */
function cluster({ n, rsOf }: Plan) {
  const clock = new FakeClock(T0);
  const net = new SimNet(clock, 50);
  const names = Array.from({ length: n }, (_, i) => `S${i + 1}`);
  const group = names.map((h, i) => [h, `127.0.1.${i + 1}`, rsOf(h), 'tcp:8080']);
  let side = new Map<string, number>();
  const cut = (a: string, b: string) => (side.get(a) ?? 0) !== (side.get(b) ?? 0);
  net.cut = cut;
  const failures: { by: string; r: FailureReport }[] = [];
  const selfFences: { by: string; at: number; st: IsolationState }[] = [];
  const rejoined: string[] = [];
  const noQuorum: { by: string; target: string }[] = [];
  const stops: (() => void)[] = [];
  for (const [i, h] of names.entries()) {
    const files = net.add({ hostname: h, address: `127.0.1.${i + 1}`, realServer: rsOf(h), services: 'tcp:8080' }, group);
    const reach = (m: { hostname: string }, timeoutMs: number) =>
      new Promise<boolean>((resolve) => {
        const ok = !cut(h, m.hostname);
        clock.setTimeout(() => resolve(ok), ok ? 2 : timeoutMs);
      });
    const iso = new IsolationMonitor({ files, clock, ping: reach });
    const check = async (m: { hostname: string }, timeoutMs: number): Promise<CheckResult> =>
      (await reach(m, timeoutMs)) ? { ok: true } : { ok: false, kind: 'network', reason: 'ping: host-unreachable (timeout)' };
    const hb = new Heartbeat({ files, clock, check, ping: reach, quorum: iso, settings: { intervalMs: 1000, timeoutMs: 500 } });
    hb.on('failure', (r: FailureReport) => failures.push({ by: h, r }));
    hb.on('no-quorum', (x: { target: string }) => noQuorum.push({ by: h, target: x.target }));
    iso.on('self-fence', (st: IsolationState) => selfFences.push({ by: h, at: clock.now(), st }));
    iso.on('rejoined', () => rejoined.push(h));
    iso.on('majority', (has: boolean) => hb.quorumChanged(has));
    stops.push(() => {
      hb.stop();
      iso.stop();
    });
    iso.start();
    hb.start();
  }
  return {
    clock,
    failures,
    selfFences,
    rejoined,
    noQuorum,
    /** Put these VMs on side 1 (the rest stay on side 0). */
    isolate: (vms: string[]) => (side = new Map(vms.map((v) => [v, 1]))),
    heal: () => (side = new Map()),
    stop: () => stops.forEach((s) => s()),
  };
}

describe('monitor: no recovery from the minority side of a cut (fake time, heartbeats + isolation monitors)', () => {
  let c: ReturnType<typeof cluster> | undefined;
  afterEach(() => c?.stop());

  it('(a) RS2 cut off with its VMs S2, S5 (2 of 6): only the majority side recovers them; S2 and S5 stop by themselves before that', async () => {
    c = cluster({ n: 6, rsOf: (h) => `RS${((Number(h.slice(1)) - 1) % 3) + 1}` });
    await c.clock.advance(3000);
    const cutAt = c.clock.now();
    c.isolate(['S2', 'S5']);
    await c.clock.advance(20_000);
    const got = c.failures.map((f) => `${f.r.target} by ${f.by}`).sort();
    // S2: P1 S1. S5: P1 S4. Nothing from S2 (P1 of S3, P2 of S1) nor S5 (P1 of S6, P2 of S4).
    assert.deepStrictEqual(got, ['S2 by S1', 'S5 by S4']);
    assert.ok(c.noQuorum.some((x) => x.by === 'S2' && x.target === 'S3'), JSON.stringify(c.noQuorum));
    assert.ok(c.noQuorum.some((x) => x.by === 'S5' && x.target === 'S6'));
    assert.deepStrictEqual(c.selfFences.map((s) => s.by).sort(), ['S2', 'S5']);
    for (const s of c.selfFences) assert.ok(s.at - cutAt <= 4000 + 250, `${s.by} stopped ${s.at - cutAt} ms after the cut`);
    c.heal();
    await c.clock.advance(3000);
    assert.deepStrictEqual(c.rejoined.sort(), ['S2', 'S5']);
    // After the heal the minority's stale suspicions are watched afresh: nothing new is recovered.
    await c.clock.advance(10_000);
    assert.deepStrictEqual(c.failures.map((f) => `${f.r.target} by ${f.by}`).sort(), ['S2 by S1', 'S5 by S4']);
  });

  it('(b) the minority side holds both monitors of a target (S5 watched by S4 and S1, both on RS1): no recovery starts there', async () => {
    // Five VMs on three real servers: S1, S4 on RS1; S2, S5 on RS2; S3 on RS3. S5's P1 is S4, its P2 S1.
    c = cluster({ n: 5, rsOf: (h) => `RS${((Number(h.slice(1)) - 1) % 3) + 1}` });
    await c.clock.advance(3000);
    c.isolate(['S1', 'S4']);
    await c.clock.advance(20_000);
    const got = c.failures.map((f) => `${f.r.target} by ${f.by}`).sort();
    assert.ok(!got.some((g) => /by S[14]$/.test(g)), `a recovery started on the minority side: ${got.join(', ')}`);
    // S1 (P1 S5, P2 S2) and S4 (P1 S3, P2 S5) are recovered by the majority side, once each.
    assert.deepStrictEqual(got, ['S1 by S5', 'S4 by S3']);
    assert.ok(c.noQuorum.some((x) => x.by === 'S4' && x.target === 'S5'));
    assert.deepStrictEqual(c.selfFences.map((s) => s.by).sort(), ['S1', 'S4']);
  });

  it('an even split (3 of 6 each side): nobody holds a majority, nobody recovers, everybody stops', async () => {
    c = cluster({ n: 6, rsOf: (h) => `RS${((Number(h.slice(1)) - 1) % 2) + 1}` });
    await c.clock.advance(3000);
    c.isolate(['S1', 'S3', 'S5']);
    await c.clock.advance(20_000);
    assert.deepStrictEqual(c.failures, []);
    assert.strictEqual(c.selfFences.length, 6);
  });
});

describe('monitor: a majority missing for a moment (a late answer), not a cut', () => {
  it('P1 confirms during the blip, waits, and claims as soon as the majority is back (under a second)', async () => {
    const clock = new FakeClock(T0);
    const net = new SimNet(clock, 50);
    const names = ['S1', 'S2', 'S3'];
    const group = names.map((h, i) => [h, `127.0.1.${i + 1}`, 'RS1', 'tcp:8080']);
    const files = names.map((h, i) => net.add({ hostname: h, address: `127.0.1.${i + 1}`, realServer: 'RS1', services: 'tcp:8080' }, group));
    let ok = true;
    const quorum = { majority: () => ({ ok, why: ok ? 'reaches 3 of 3' : 'reaches 1 of 3, a majority needs 2' }) };
    const check = async (m: { hostname: string }): Promise<CheckResult> => (m.hostname === 'S2' ? { ok: false, kind: 'network', reason: 'dead' } : { ok: true });
    // S2 is dead from the start: no start-up grace for a target never seen (target-monitor.ts).
    const hb = new Heartbeat({ files: files[0], clock, check, ping: async () => true, quorum, settings: { intervalMs: 1000, timeoutMs: 500, startGraceMs: 0 } });
    const failures: FailureReport[] = [];
    const waits: string[] = [];
    hb.on('failure', (r: FailureReport) => failures.push(r));
    hb.on('no-quorum', (x: { target: string }) => waits.push(x.target));
    hb.start();
    ok = false; // the blip covers the confirmation
    await clock.advance(2600);
    assert.deepStrictEqual(waits, ['S2']);
    assert.strictEqual(failures.length, 0);
    await clock.advance(300);
    ok = true;
    hb.quorumChanged(true);
    await clock.advance(100);
    assert.deepStrictEqual(failures.map((f) => `${f.target} ${f.priority}`), ['S2 P1']);
    hb.stop();
  });
});
