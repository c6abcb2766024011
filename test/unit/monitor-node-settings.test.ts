// The heartbeat node's settings and status line.
import * as assert from 'assert';
import { isolationStatus, parseSettings, statusOf } from '../../lib/monitor/node-settings';
import { ISOLATION_DEFAULTS } from '../../lib/monitor/isolation';

describe('monitor: node settings and status line', () => {
  it('parses the editor settings into ms, defaults left out', () => {
    assert.deepStrictEqual(parseSettings({}), { heartbeat: {}, cpuThreshold: 0.5, isolation: ISOLATION_DEFAULTS });
    assert.deepStrictEqual(parseSettings({ interval: '200', timeout: 100, reexamNetwork: '600', cpuWait: '0', isolationTime: '6000', isolationMargin: 2500 }), {
      heartbeat: { intervalMs: 200, timeoutMs: 100, reexamNetworkMs: 600 },
      cpuThreshold: 0,
      isolation: { ...ISOLATION_DEFAULTS, tIsoMs: 6000, marginMs: 2500 },
    });
  });

  it('refuses bad settings with a clear error', () => {
    assert.throws(() => parseSettings({ interval: 'fast' }), /interval is "fast": expected 50\.\.600000 ms/);
    assert.throws(() => parseSettings({ timeout: -1 }), /timeout is -1/);
    assert.throws(() => parseSettings({ interval: 500, timeout: 500 }), /timeout \(500 ms\) must be shorter than the interval \(500 ms\)/);
    assert.throws(() => parseSettings({ cpuWait: 150 }), /cpuWait is 150/);
    assert.throws(() => parseSettings({ isolationTime: 'soon' }), /isolationTime is "soon"/);
    assert.throws(() => parseSettings({ isolationTime: 1000 }), /T_iso \(1000 ms\) must be longer than the freshness window/);
    assert.throws(() => parseSettings({ isolationMargin: 100 }), /isolation margin \(100 ms\) must be at least/);
  });

  it('isolation status: red when stopped (isolated or fenced), yellow without a majority, else the watches decide', () => {
    const st = { voters: ['S1', 'S2', 'S3'], needed: 2, reachable: ['S1'], stop: true, why: '' };
    assert.deepStrictEqual(isolationStatus({ ...st, state: 'isolated' }, true), { fill: 'red', shape: 'dot', text: 'isolated: service stopped (1/3 reachable, 2 needed)' });
    assert.strictEqual(isolationStatus({ ...st, state: 'fenced' }, true)!.text, 'fenced (replaced): service stopped until re-admitted');
    assert.strictEqual(isolationStatus({ ...st, stop: false, state: 'no-majority' }, false)!.fill, 'yellow');
    assert.strictEqual(isolationStatus({ ...st, stop: false, state: 'majority', reachable: ['S1', 'S2'] }, false), undefined);
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
