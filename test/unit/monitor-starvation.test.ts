// The starvation meter with fake time: late ticks and CPU stall open starved windows.
import * as assert from 'assert';
import { FakeClock } from '../support/fake-clock';
import { readRunQueueWaitUs, StarvationMeter } from '../../lib/monitor/starvation';

describe('monitor: starvation meter (fake time)', () => {
  let clock: FakeClock;
  let meter: StarvationMeter;
  beforeEach(() => {
    clock = new FakeClock();
  });
  afterEach(() => meter?.stop());

  it('a punctual loop is never starved', async () => {
    meter = new StarvationMeter({ clock, readCpuStallUs: () => undefined });
    meter.start();
    const t0 = clock.now();
    await clock.advance(5_000);
    assert.strictEqual(meter.inconclusive(t0, clock.now()), false);
    assert.strictEqual(meter.maxLagMs, 0);
  });

  it('a loop frozen 600 ms makes checks in and just after that time inconclusive, until the hold-off ends', async () => {
    meter = new StarvationMeter({ clock, readCpuStallUs: () => undefined });
    meter.start();
    await clock.advance(1_000);
    const frozeAt = clock.now();
    clock.jump(600); // the process did not run: the next tick is 600 ms late
    assert.strictEqual(meter.inconclusive(frozeAt, clock.now()), true, 'overdue tick counts at once');
    await clock.advance(50);
    assert.ok(meter.lastLagMs >= 500, `lag ${meter.lastLagMs}`);
    assert.strictEqual(meter.inconclusive(frozeAt + 100, frozeAt + 200), true);
    // Hold-off: a check ending 400 ms after the tick fired still does not count.
    await clock.advance(400);
    assert.strictEqual(meter.inconclusive(clock.now() - 100, clock.now()), true);
    await clock.advance(300);
    assert.strictEqual(meter.inconclusive(clock.now() - 100, clock.now()), false);
    assert.strictEqual(meter.inconclusive(frozeAt - 1_000, frozeAt - 500), false, 'before the freeze it counted');
  });

  it('a late tick under the threshold (200 ms) is not starvation', async () => {
    meter = new StarvationMeter({ clock, readCpuStallUs: () => undefined });
    meter.start();
    await clock.advance(1_000);
    clock.jump(200);
    await clock.advance(50);
    assert.strictEqual(meter.inconclusive(clock.now() - 500, clock.now()), false);
  });

  it('CPU wait of this thread above the threshold is starvation; 0 disables it', async () => {
    let stallUs = 0;
    meter = new StarvationMeter({ clock, readCpuStallUs: () => stallUs });
    meter.start();
    await clock.advance(1_000);
    assert.strictEqual(meter.inconclusive(clock.now() - 500, clock.now()), false);
    // From now on some task waits for a CPU 90% of the time.
    const from = clock.now();
    for (let i = 0; i < 10; i++) {
      stallUs += 90_000;
      await clock.advance(100);
    }
    assert.strictEqual(meter.inconclusive(from, clock.now()), true);
    assert.ok(meter.lastCpuStall > 0.8);
    meter.stop();
    const off = new StarvationMeter({ clock, readCpuStallUs: () => (stallUs += 90_000), cpuThreshold: 0 });
    off.start();
    await clock.advance(2_000);
    assert.strictEqual(off.inconclusive(clock.now() - 1000, clock.now()), false);
    off.stop();
  });

  it("reads this thread's run-queue wait from Linux schedstat", () => {
    const a = readRunQueueWaitUs();
    assert.ok(typeof a === 'number' && a >= 0, String(a));
    assert.strictEqual(readRunQueueWaitUs('/nonexistent'), undefined);
  });

  it('stop() leaves no timer', async () => {
    meter = new StarvationMeter({ clock, readCpuStallUs: () => 0 });
    meter.start();
    await clock.advance(300);
    meter.stop();
    assert.strictEqual(clock.pending, 0);
  });
});
