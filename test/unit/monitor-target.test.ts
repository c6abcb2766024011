// The state machine of one target with fake time: ok, suspect, reexamining, confirmed, cleared.
import * as assert from 'assert';
import { FakeClock } from '../support/fake-clock';
import { CheckResult, TargetMonitor, Transition } from '../../lib/monitor/target-monitor';
import type { StarvationView } from '../../lib/monitor/starvation';

type Health = 'up' | 'refused' | 'frozen' | 'service-down';

/** A target whose health the test sets; a frozen one answers nothing until the 500 ms timeout. */
function world(clock: FakeClock) {
  const state = { health: 'up' as Health, checks: [] as number[] };
  const check = (): Promise<CheckResult> => {
    state.checks.push(clock.now());
    const h = state.health;
    const delay = h === 'frozen' ? 500 : 1;
    return new Promise((resolve) => {
      clock.setTimeout(() => {
        if (h === 'up') resolve({ ok: true });
        else if (h === 'service-down') resolve({ ok: false, kind: 'service', reason: 'tcp:80: ECONNREFUSED' });
        else resolve({ ok: false, kind: 'network', reason: h === 'frozen' ? 'ping: timeout' : 'ping: ECONNREFUSED' });
      }, delay);
    });
  };
  return { state, check };
}

function record(m: TargetMonitor): Transition[] {
  const out: Transition[] = [];
  m.on('transition', (t: Transition) => out.push(t));
  return out;
}

describe('monitor: target state machine (fake time)', () => {
  let clock: FakeClock;
  let m: TargetMonitor;
  afterEach(() => m?.stop());

  function make(w: ReturnType<typeof world>, extra: Partial<ConstructorParameters<typeof TargetMonitor>[0]> = {}) {
    m = new TargetMonitor({ target: 'S2', check: w.check, clock, ...extra });
    return m;
  }

  beforeEach(() => {
    clock = new FakeClock();
  });

  it('a healthy target is checked every interval and never suspected', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(10_000);
    assert.deepStrictEqual(t, []);
    assert.strictEqual(m.state, 'ok');
    assert.ok(w.state.checks.length >= 10 && w.state.checks.length <= 11, `checks ${w.state.checks.length}`);
  });

  it('a dead manager is suspected, re-examined and confirmed right at the 2 s network re-examination', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(3_300);
    w.state.health = 'refused';
    await clock.advance(4_000);
    assert.deepStrictEqual(
      t.map((x) => x.to),
      ['suspect', 'reexamining', 'confirmed'],
    );
    const c = t[2];
    assert.strictEqual(c.kind, 'network');
    assert.strictEqual(c.timings.reexaminationMs, 2000);
    assert.ok(c.timings.elapsedMs >= 2000 && c.timings.elapsedMs <= 2002, `elapsed ${c.timings.elapsedMs}`);
    assert.strictEqual(m.state, 'confirmed');
    // Confirmed is final: no more checks until reset.
    const n = w.state.checks.length;
    await clock.advance(5_000);
    assert.strictEqual(w.state.checks.length, n);
  });

  it('a host that times out is confirmed when the re-examination time is up, not a timeout later', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(1_500);
    w.state.health = 'frozen';
    await clock.advance(4_000);
    const c = t.find((x) => x.to === 'confirmed')!;
    assert.ok(c, 'confirmed');
    assert.ok(c.timings.elapsedMs >= 2000 && c.timings.elapsedMs <= 2001, `elapsed ${c.timings.elapsedMs}`);
  });

  it('a service fault is re-examined for 3 s', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(1_000);
    w.state.health = 'service-down';
    await clock.advance(5_000);
    const c = t.find((x) => x.to === 'confirmed')!;
    assert.strictEqual(c.kind, 'service');
    assert.ok(c.timings.elapsedMs >= 3000 && c.timings.elapsedMs <= 3002, `elapsed ${c.timings.elapsedMs}`);
  });

  it('a service fault that becomes a network failure is confirmed as network after 2 s', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(1_000);
    w.state.health = 'service-down';
    await clock.advance(1_200);
    w.state.health = 'refused';
    await clock.advance(3_000);
    const c = t.find((x) => x.to === 'confirmed')!;
    assert.strictEqual(c.kind, 'network');
    assert.ok(c.timings.elapsedMs >= 2000 && c.timings.elapsedMs <= 2002, `elapsed ${c.timings.elapsedMs}`);
  });

  it('a peer frozen for 1 s is suspected and cleared (recovered by itself), never confirmed', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(2_900);
    w.state.health = 'frozen';
    await clock.advance(1_000);
    w.state.health = 'up';
    await clock.advance(5_000);
    assert.deepStrictEqual(
      t.map((x) => x.to),
      ['suspect', 'reexamining', 'cleared'],
    );
    assert.strictEqual(m.state, 'ok');
    assert.ok(t[2].timings.elapsedMs < 2000);
  });

  it('one failed check followed by a good one is suspect then cleared', async () => {
    const w = world(clock);
    const t = record(make(w));
    m.start();
    await clock.advance(1_500);
    w.state.health = 'refused';
    await clock.advance(600);
    w.state.health = 'up';
    await clock.advance(2_000);
    assert.deepStrictEqual(
      t.map((x) => x.to),
      ['suspect', 'cleared'],
    );
  });

  it('failed checks overlapping a starvation of the monitor do not count', async () => {
    const w = world(clock);
    let starvedUntil = 0;
    const starvation: StarvationView = { inconclusive: (_from, to) => to <= starvedUntil };
    const t = record(make(w, { starvation }));
    const seen: unknown[] = [];
    m.on('inconclusive', (x) => seen.push(x));
    m.start();
    await clock.advance(1_000);
    // The monitor is starved for 5 s while the peer fails: no suspicion at all.
    starvedUntil = clock.now() + 5_000;
    w.state.health = 'frozen';
    await clock.advance(4_000);
    assert.deepStrictEqual(t, []);
    assert.ok(seen.length >= 3);
    w.state.health = 'up';
    await clock.advance(3_000);
    assert.deepStrictEqual(t, []);
  });

  it('starvation in the middle of a re-examination restarts its count', async () => {
    const w = world(clock);
    let starved: [number, number] = [0, 0];
    const starvation: StarvationView = { inconclusive: (from, to) => from <= starved[1] && starved[0] <= to };
    const t = record(make(w, { starvation }));
    m.start();
    await clock.advance(1_000);
    w.state.health = 'refused';
    await clock.advance(1_300);
    const detectedAt = t[0].timings.detectedAt;
    starved = [clock.now(), clock.now() + 1_000];
    await clock.advance(6_000);
    const c = t.find((x) => x.to === 'confirmed')!;
    assert.ok(c);
    // Counted from the first conclusive failure after the starved second, not from detection.
    assert.ok(c.timings.at >= starved[1] + 2000, `confirmed ${c.timings.at - detectedAt} ms after detection`);
    assert.ok(c.timings.inconclusive >= 1);
  });

  it('reset() after confirmation watches afresh; stop() leaves no timer', async () => {
    const w = world(clock);
    const t = record(make(w, { startGraceMs: 0 }));
    m.start();
    w.state.health = 'refused';
    await clock.advance(3_000);
    assert.strictEqual(m.state, 'confirmed');
    w.state.health = 'up';
    m.reset();
    await clock.advance(3_000);
    assert.strictEqual(m.state, 'ok');
    assert.strictEqual(t.length, 3);
    m.stop();
    await clock.advance(10);
    assert.strictEqual(clock.pending, 0);
  });

  it('start-up grace: a peer still booting when this monitor starts is not suspected (no false "detected")', async () => {
    const w = world(clock);
    const t = record(make(w));
    const unseen: unknown[] = [];
    m.on('unseen', (u) => unseen.push(u));
    w.state.health = 'refused';
    m.start();
    await clock.advance(5_000);
    w.state.health = 'up';
    await clock.advance(20_000);
    assert.deepStrictEqual(t, []);
    assert.ok(unseen.length >= 4, `unseen checks ${unseen.length}`);
    assert.strictEqual(m.state, 'ok');
  });

  it('start-up grace is bounded: a target that never answers is suspected by the first check after it, and confirmed', async () => {
    const w = world(clock);
    const t = record(make(w, { startGraceMs: 15_000 }));
    w.state.health = 'refused';
    const t0 = clock.now();
    m.start();
    await clock.advance(14_900);
    assert.strictEqual(t.length, 0, 'nothing during the grace');
    await clock.advance(4_000);
    assert.deepStrictEqual(
      t.map((x) => x.to),
      ['suspect', 'reexamining', 'confirmed'],
    );
    const after = t[0].timings.detectedAt - t0;
    assert.ok(after >= 15_000 && after <= 16_000, `detected ${after} ms after start`);
  });

  it('start-up grace ends once the target has answered: a failure right after is suspected at once', async () => {
    const w = world(clock);
    const t = record(make(w, { startGraceMs: 15_000 }));
    m.start();
    await clock.advance(1_500);
    w.state.health = 'refused';
    await clock.advance(1_000);
    assert.deepStrictEqual(t.map((x) => x.to).slice(0, 1), ['suspect']);
    await clock.advance(2_500);
    assert.strictEqual(m.state, 'confirmed');
  });

  it('start-up grace counts from the first start only: reset() does not grant it again', async () => {
    const w = world(clock);
    const t = record(make(w, { startGraceMs: 5_000 }));
    w.state.health = 'refused';
    m.start();
    await clock.advance(8_000);
    assert.strictEqual(m.state, 'confirmed');
    m.reset();
    await clock.advance(200);
    assert.strictEqual(t[t.length - 1].to, 'suspect');
  });

  it('nudge() checks at once instead of waiting for the interval', async () => {
    const w = world(clock);
    make(w);
    m.start();
    await clock.advance(100);
    const n = w.state.checks.length;
    m.nudge();
    await clock.advance(10);
    assert.strictEqual(w.state.checks.length, n + 1);
  });

  it('refuses nonsense settings', () => {
    const w = world(clock);
    assert.throws(() => new TargetMonitor({ target: 'S2', check: w.check, clock, intervalMs: 0 }), /intervalMs/);
    assert.throws(() => new TargetMonitor({ target: 'S2', check: w.check, clock, startGraceMs: -1 }), /startGraceMs/);
    assert.throws(() => new TargetMonitor({ target: 'S2', check: w.check, clock, reexamNetworkMs: NaN }), /reexamNetworkMs/);
  });
});
