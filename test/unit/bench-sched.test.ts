// bench/stats.ts schedOf: a process's main thread from /proc (bench:sem's `sched_per_edit`): time on
// a core grows while it computes, the switch counts are read, a missing process gives undefined.
import { strict as assert } from 'assert';
import { schedOf } from '../../bench/stats';

describe('bench stats: schedOf', () => {
  it('reads time on a core, time waiting and context switches of a live process', () => {
    const a = schedOf(process.pid);
    assert.ok(a, 'this process is readable');
    const until = process.hrtime.bigint() + 30_000_000n;
    let x = 0;
    while (process.hrtime.bigint() < until) x += 1;
    const b = schedOf(process.pid)!;
    assert.ok(x > 0);
    assert.ok(b.onCpuMs - a.onCpuMs >= 10, `on a core: ${a.onCpuMs} -> ${b.onCpuMs} ms`);
    for (const k of ['waitMs', 'voluntary', 'involuntary'] as const) assert.ok(Number.isFinite(b[k]) && b[k] >= a[k], k);
  });

  it('undefined for no process', () => {
    assert.equal(schedOf(undefined), undefined);
    assert.equal(schedOf(2 ** 22 + 12345), undefined);
  });
});
