// The heartbeat node's settings and status line.
import * as assert from 'assert';
import { parseSettings, statusOf } from '../../lib/monitor/node-settings';

describe('monitor: node settings and status line', () => {
  it('parses the editor settings into ms, defaults left out', () => {
    assert.deepStrictEqual(parseSettings({}), { heartbeat: {}, cpuThreshold: 0.5 });
    assert.deepStrictEqual(parseSettings({ interval: '200', timeout: 100, reexamNetwork: '600', cpuWait: '0' }), {
      heartbeat: { intervalMs: 200, timeoutMs: 100, reexamNetworkMs: 600 },
      cpuThreshold: 0,
    });
  });

  it('refuses bad settings with a clear error', () => {
    assert.throws(() => parseSettings({ interval: 'fast' }), /interval is "fast": expected 50\.\.600000 ms/);
    assert.throws(() => parseSettings({ timeout: -1 }), /timeout is -1/);
    assert.throws(() => parseSettings({ interval: 500, timeout: 500 }), /timeout \(500 ms\) must be shorter than the interval \(500 ms\)/);
    assert.throws(() => parseSettings({ cpuWait: 150 }), /cpuWait is 150/);
  });

  it('status: green list, yellow countdown, red failure with who handles it, grey when alone', () => {
    assert.deepStrictEqual(statusOf([], 'S1', undefined), { fill: 'grey', shape: 'ring', text: 'S1: watching nobody' });
    const ok = [
      { target: 'S2', priority: 'P1' as const, state: 'ok' },
      { target: 'S6', priority: 'P2' as const, state: 'ok' },
    ];
    assert.deepStrictEqual(statusOf(ok, 'S1', undefined), { fill: 'green', shape: 'dot', text: 'watching P1 S2, P2 S6' });
    assert.strictEqual(statusOf(ok, 'S1', 'event loop 300 ms late').fill, 'yellow');
    const suspect = [{ ...ok[0], state: 'reexamining', kind: 'network', remainingMs: 1234 }, ok[1]];
    assert.deepStrictEqual(statusOf(suspect, 'S1', undefined), { fill: 'yellow', shape: 'ring', text: 'S2 reexamining (network): 1.2 s left' });
    const acted = [{ ...ok[0], state: 'confirmed', kind: 'network', phase: 'acted' as const }];
    assert.deepStrictEqual(statusOf(acted, 'S1', undefined), { fill: 'red', shape: 'dot', text: 'S2 failed (network): handled here' });
    const other = [{ ...ok[1], state: 'confirmed', kind: 'service', phase: 'stood-down' as const, winner: 'S5' }];
    assert.deepStrictEqual(statusOf(other, 'S1', undefined), { fill: 'red', shape: 'ring', text: 'S6 failed (service): S5 handles it' });
  });
});
