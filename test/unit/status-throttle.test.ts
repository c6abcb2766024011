// A node's status that follows one event per diff (nodes/common/status-throttle.ts): a burst shows
// its first value at once and its last value when the interval ends, nothing in between; close()
// drops what was pending.
import { strict as assert } from 'assert';
import { ThrottledStatus } from '../../nodes/common/status-throttle';

const until = async (cond: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
};

describe('throttled node status', () => {
  it('a burst shows its first value at once and its last when the interval ends', async () => {
    const shown: number[] = [];
    const s = new ThrottledStatus<number>((v) => shown.push(v), 500);
    for (let i = 1; i <= 100; i++) s.set(i); // synchronous: all inside one interval
    assert.deepEqual(shown, [1]);
    await until(() => shown.length > 1, 5000);
    assert.deepEqual(shown, [1, 100]);
    s.close();
  });

  it('close() drops a pending value', async () => {
    const shown: number[] = [];
    const s = new ThrottledStatus<number>((v) => shown.push(v), 200);
    s.set(1);
    s.set(2);
    s.close();
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(shown, [1]);
  });
});
