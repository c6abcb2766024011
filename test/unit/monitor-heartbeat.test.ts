// The heartbeat of six managers in fake time over an in-memory replicated store (test/support/
// sim-cluster.ts): P1 acts, P2 takes over when P1 is gone, exactly one recovery per failure also
// when both managers confirm at once, the problem file identical on every live peer.
import * as assert from 'assert';
import { FakeClock } from '../support/fake-clock';
import { SimFiles, SimNet } from '../support/sim-cluster';
import { FailureReport, Heartbeat, RecoveredReport } from '../../lib/monitor/heartbeat';
import type { CheckResult } from '../../lib/monitor/target-monitor';

type Health = 'up' | 'dead' | 'frozen' | 'service-down';

function cluster(n = 6, delayMs = 50) {
  const clock = new FakeClock();
  const net = new SimNet(clock, delayMs);
  const names = Array.from({ length: n }, (_, i) => `S${i + 1}`);
  const group = names.map((h, i) => [h, `127.0.1.${i + 1}`, `RS${(i % 2) + 1}`, 'tcp:8080']);
  const health = new Map<string, Health>(names.map((h) => [h, 'up']));
  /** starvedUntil[name]: that manager's failed checks are inconclusive until then. */
  const starvedUntil = new Map<string, number>();
  /** cut[a] = set of peers a cannot reach (for the P2 -> P1 probe). */
  const cut = new Map<string, Set<string>>();
  const files = new Map<string, SimFiles>();
  const beats = new Map<string, Heartbeat>();
  const failures: { by: string; r: FailureReport }[] = [];
  const recovered: { by: string; r: RecoveredReport }[] = [];
  const standDowns: { by: string; target: string; winner: string }[] = [];
  for (const [i, h] of names.entries()) {
    const f = net.add({ hostname: h, address: `127.0.1.${i + 1}`, realServer: 'RS1', services: 'tcp:8080' }, group);
    files.set(h, f);
    const check = (m: { hostname: string }, timeoutMs: number): Promise<CheckResult> => {
      const s = health.get(m.hostname) ?? 'dead';
      return new Promise((resolve) =>
        clock.setTimeout(
          () =>
            resolve(
              s === 'up'
                ? { ok: true }
                : s === 'service-down'
                  ? { ok: false, kind: 'service', reason: 'tcp:8080: service-down (ECONNREFUSED)' }
                  : { ok: false, kind: 'network', reason: s === 'dead' ? 'ping: manager-not-answering' : 'ping: host-unreachable (timeout)' },
            ),
          s === 'frozen' ? timeoutMs : 1,
        ),
      );
    };
    const hb = new Heartbeat({
      files: f,
      clock,
      check,
      ping: async (m) => health.get(m.hostname) === 'up' && !cut.get(h)?.has(m.hostname),
      starvation: { inconclusive: (_from, to) => to <= (starvedUntil.get(h) ?? 0) },
    });
    hb.on('failure', (r: FailureReport) => failures.push({ by: h, r }));
    hb.on('recovered-by-itself', (r: RecoveredReport) => recovered.push({ by: h, r }));
    hb.on('stood-down', (x: { target: string; winner: string }) => standDowns.push({ by: h, ...x }));
    beats.set(h, hb);
  }
  const c = {
    clock,
    net,
    names,
    health,
    starvedUntil,
    cut,
    files,
    beats,
    failures,
    recovered,
    standDowns,
    start: () => beats.forEach((b) => b.start()),
    stop: () => beats.forEach((b) => b.stop()),
    kill(h: string) {
      health.set(h, 'dead');
      net.down.add(h);
      beats.get(h)!.stop();
    },
    live: () => names.filter((h) => !net.down.has(h)),
    problemFiles: () => c.live().map((h) => JSON.stringify(files.get(h)!.records('problem').sort())),
  };
  return c;
}

describe('monitor: heartbeat of six managers (fake time, in-memory store)', () => {
  let c: ReturnType<typeof cluster>;
  afterEach(() => c?.stop());

  it('each manager watches its ring targets: S1 watches S2 (P1) and S6 (P2)', () => {
    c = cluster();
    c.start();
    const s1 = c.beats.get('S1')!.summary().map((w) => `${w.priority} ${w.target}`);
    assert.deepStrictEqual(s1, ['P1 S2', 'P2 S6']);
  });

  it('S2 killed: S1 (P1) confirms after the 2 s re-examination, one failure in the cluster, identical problem files', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(3_400);
    const killedAt = c.clock.now();
    c.kill('S2');
    await c.clock.advance(6_000);
    assert.strictEqual(c.failures.length, 1, JSON.stringify(c.failures.map((f) => f.by)));
    const { by, r } = c.failures[0];
    assert.strictEqual(by, 'S1');
    assert.strictEqual(r.target, 'S2');
    assert.strictEqual(r.priority, 'P1');
    assert.strictEqual(r.kind, 'network');
    assert.strictEqual(r.address, '127.0.1.2');
    assert.strictEqual(r.timings.reexaminationMs, 2000);
    const detectedAt = Date.parse(r.timings.detectedAt);
    assert.ok(detectedAt - killedAt <= 1000, 'detected within one interval');
    assert.ok(r.timings.elapsedMs >= 2000 && r.timings.elapsedMs < 2010, `elapsed ${r.timings.elapsedMs}`);
    // P2 (S3) saw P1's claim and stood down.
    assert.ok(c.standDowns.some((s) => s.by === 'S3' && s.target === 'S2' && s.winner === 'S1'));
    const files = c.problemFiles();
    assert.ok(files.every((f) => f === files[0]), files.join('\n'));
    assert.deepStrictEqual(c.files.get('S4')!.get('problem', 'S2')!.slice(0, 5), ['S2', 'S1', 'network', 'confirmed', '-']);
    // The steps went through the file: detected, reexamining, confirmed.
    const steps = c.files.get('S5')!.log.filter((e) => e.file === 'problem' && e.record[0] === 'S2').map((e) => e.record[3]);
    assert.deepStrictEqual(steps, ['detected', 'reexamining', 'confirmed']);
  });

  it("S2's service down (manager up): a service fault confirmed after 3 s", async () => {
    c = cluster();
    c.start();
    await c.clock.advance(2_000);
    c.health.set('S2', 'service-down');
    await c.clock.advance(6_000);
    assert.strictEqual(c.failures.length, 1);
    assert.strictEqual(c.failures[0].r.kind, 'service');
    assert.strictEqual(c.failures[0].r.timings.reexaminationMs, 3000);
    assert.ok(c.failures[0].r.timings.elapsedMs >= 3000 && c.failures[0].r.timings.elapsedMs < 3010);
  });

  it('S1 and S2 killed together: S3 (P2 of S2) handles S2, S6 handles S1, one failure each', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(2_500);
    c.kill('S1');
    c.kill('S2');
    await c.clock.advance(10_000);
    const got = c.failures.map((f) => `${f.r.target} by ${f.by} as ${f.r.priority}`).sort();
    assert.deepStrictEqual(got, ['S1 by S6 as P1', 'S2 by S3 as P2']);
    const files = c.problemFiles();
    assert.ok(files.every((f) => f === files[0]));
    assert.strictEqual(c.files.get('S4')!.get('problem', 'S2')![1], 'S3');
  });

  it('P1 gone without a trace (not failed in the file, not answering): P2 takes over after re-examination + grace + probe', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(2_500);
    // S1 is partitioned away: S1's own monitor is silent, it is neither in the problem file nor answering.
    c.net.down.add('S1');
    c.beats.get('S1')!.stop();
    c.health.set('S2', 'dead');
    c.net.down.add('S2');
    c.beats.get('S2')!.stop();
    // S6 would declare S1 dead too: keep S1 answering for S6 so only the S2 path is exercised.
    c.health.set('S1', 'up');
    c.cut.set('S3', new Set(['S1']));
    await c.clock.advance(8_000);
    const s2 = c.failures.filter((f) => f.r.target === 'S2');
    assert.strictEqual(s2.length, 1);
    assert.strictEqual(s2[0].by, 'S3');
    const r = s2[0].r;
    assert.ok(r.timings.totalMs >= 2000 + 1500 + 500, `total ${r.timings.totalMs}`);
    assert.match(r.decision, /does not answer/);
  });

  it('P1 alive but seeing the target fine (P2 alone cut off from it): P2 never acts, and keeps asking P1', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(2_000);
    // Only S3's view of S2 fails: S3's checks of S2 fail while S1's succeed.
    const s3 = c.beats.get('S3')!;
    s3.stop();
    const f3 = c.files.get('S3')!;
    let asked = 0;
    const hb = new Heartbeat({
      files: f3,
      clock: c.clock,
      // This replacement heartbeat never sees S2: no start-up grace, so each round is a suspicion.
      settings: { startGraceMs: 0 },
      check: (m) =>
        new Promise((res) => c.clock.setTimeout(() => res(m.hostname === 'S2' ? { ok: false, kind: 'network', reason: 'cut' } : { ok: true }), 1)),
      ping: async () => (asked++, true),
    });
    hb.on('failure', (r: FailureReport) => c.failures.push({ by: 'S3', r }));
    c.beats.set('S3', hb);
    hb.start();
    await c.clock.advance(20_000);
    assert.deepStrictEqual(c.failures, []);
    // Each round: confirm, wait re-examination + grace, ask P1 (alive), watch afresh.
    assert.ok(asked >= 3, `asked P1 ${asked} times`);
    assert.strictEqual(c.files.get('S4')!.get('problem', 'S2'), undefined, 'P2 records nothing');
  });

  it('a peer frozen 1 s is not declared dead; its suspicion is cleared and reported as recovered-by-itself', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(2_900);
    c.health.set('S2', 'frozen');
    await c.clock.advance(1_000);
    c.health.set('S2', 'up');
    await c.clock.advance(6_000);
    assert.deepStrictEqual(c.failures, []);
    assert.strictEqual(c.recovered.length, 1);
    assert.strictEqual(c.recovered[0].by, 'S1');
    assert.strictEqual(c.files.get('S6')!.get('problem', 'S2')![3], 'cleared');
  });

  it('every manager starved while peers look dead: no failure declared', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(1_000);
    for (const h of c.names) c.starvedUntil.set(h, c.clock.now() + 20_000);
    for (const h of c.names) c.health.set(h, 'frozen');
    await c.clock.advance(20_000);
    for (const h of c.names) c.health.set(h, 'up');
    await c.clock.advance(5_000);
    assert.deepStrictEqual(c.failures, []);
  });

  it('one recovery per failure whenever P1 confirms relative to P2 taking over (P1 late by 0..5 s)', async function () {
    this.timeout(60_000);
    const outcomes: string[] = [];
    for (let lateMs = 0; lateMs <= 5_000; lateMs += 50) {
      c = cluster(6, 80);
      c.start();
      await c.clock.advance(2_300);
      // S1 is slow to see it (starved) and S3 cannot reach S1 to ask: both may claim.
      c.starvedUntil.set('S1', c.clock.now() + lateMs);
      c.cut.set('S3', new Set(['S1']));
      c.health.set('S2', 'dead');
      c.net.down.add('S2');
      c.beats.get('S2')!.stop();
      await c.clock.advance(12_000);
      const s2 = c.failures.filter((f) => f.r.target === 'S2');
      assert.strictEqual(s2.length, 1, `late ${lateMs}: ${s2.map((f) => f.by).join(',')}`);
      const files = c.problemFiles();
      assert.ok(files.every((f) => f === files[0]), `late ${lateMs}: files differ\n${files.join('\n')}`);
      // The file names the manager that acted.
      assert.strictEqual(c.files.get('S5')!.get('problem', 'S2')![1], s2[0].by, `late ${lateMs}`);
      outcomes.push(s2[0].by);
      c.stop();
    }
    // Both sides of the race were exercised.
    if (process.env.MONITOR_DEBUG) console.log(outcomes.join(" "));
    assert.ok(outcomes.includes('S1') && outcomes.includes('S3'), outcomes.join(','));
  });

  it('a confirmed target whose problem record is removed is watched afresh', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(1_500);
    c.health.set('S2', 'service-down');
    await c.clock.advance(5_000);
    assert.strictEqual(c.failures.length, 1);
    assert.strictEqual(c.beats.get('S1')!.summary()[0].state, 'confirmed');
    c.health.set('S2', 'up');
    const rec = c.files.get('S4')!.get('problem', 'S2')!;
    await c.files.get('S4')!.edit({ file: 'problem', op: 'Del', record: rec });
    await c.clock.advance(2_000);
    assert.strictEqual(c.beats.get('S1')!.summary()[0].state, 'ok');
    // A new failure is a new episode with its own failure msg.
    c.health.set('S2', 'service-down');
    await c.clock.advance(5_000);
    assert.strictEqual(c.failures.length, 2);
    assert.strictEqual(c.failures[1].by, 'S1');
  });

  it('follows a group change at once: a new member enters the ring and is watched', async () => {
    c = cluster();
    c.start();
    await c.clock.advance(1_000);
    await c.files.get('S1')!.edit({ file: 'group', op: 'Add', record: ['S7', '127.0.1.7', 'RS1', '-'] });
    c.health.set('S7', 'up');
    await c.clock.advance(200);
    // Ring S1..S7: S6 watches S7 as P1, S1 watches S7 as P2 and no longer S6... S1 now watches S7 (P2) and S2 (P1).
    assert.deepStrictEqual(c.beats.get('S1')!.summary().map((w) => `${w.priority} ${w.target}`), ['P1 S2', 'P2 S7']);
    assert.deepStrictEqual(c.beats.get('S6')!.summary().map((w) => `${w.priority} ${w.target}`), ['P2 S5', 'P1 S7']);
  });
});
