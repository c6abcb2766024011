// Cluster events (lib/ops/events.ts): which file changes make which events, the stall check, and
// the one alerter per event that every VM computes alike.
import * as assert from 'assert';
import { alerterFor, EventDeduper, eventsFromChange, stalledRecoveries } from '../../lib/ops/events';
import type { ChangeEvent } from '../../lib/records/cluster-api';
import type { FileName, RecordFields } from '../../lib/records/files';
import { MemoryFiles } from '../support/memory-files';

const T = Date.parse('2026-01-01T03:12:00.000Z');
const SINCE = '2026-01-01T03:11:58.000Z';
const group = [
  ['S1', '127.0.1.1', 'RS1', '-'],
  ['S2', '127.0.1.2', 'RS2', '-'],
  ['S3', '127.0.1.3', 'RS3', '-'],
  ['S4', '127.0.1.4', 'RS1', '-'],
];
const files = (init: Partial<Record<FileName, RecordFields[]>> = {}) =>
  new MemoryFiles({ hostname: 'S3', address: '127.0.1.3', realServer: 'RS3', services: '-' }, { group, realserver: [['RS1', '0.1', '2', 'up'], ['RS2', '0.1', '1', 'up'], ['RS3', '0.1', '1', 'up']], ...init });
const change = (file: FileName, op: ChangeEvent['op'], record: RecordFields, before?: RecordFields, origin = 'S1', lamport = 7): ChangeEvent => ({
  file,
  op,
  record,
  before,
  line: '',
  origin,
  seq: 1,
  lamport,
  local: false,
  via: 'diff',
});

describe('ops: cluster events', () => {
  it('a failover in the problem file: detected, confirmed, fenced, recovered; one key per episode and kind', () => {
    const f = files();
    const steps = ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering', 'recovered'];
    let before: RecordFields | undefined;
    const kinds: string[] = [];
    for (const s of steps) {
      const rec = ['S2', 'S1', 'network', s, s === 'recovered' ? 'S2b' : '-', SINCE];
      for (const e of eventsFromChange(change('problem', before ? 'Mod' : 'Add', rec, before), f, T)) {
        kinds.push(`${e.kind}${e.alert ? '!' : ''}`);
        assert.strictEqual(e.key, `${e.kind}:S2:${SINCE}`);
        assert.strictEqual(e.subject, 'S2');
        if (e.kind === 'recovered') assert.strictEqual(e.text, 'S2: recovered by S2b');
      }
      before = rec;
    }
    assert.deepStrictEqual(kinds, ['failure-detected', 'failure-confirmed!', 'fenced', 'recovered!']);
    // A failed recovery carries its reason.
    const failed = eventsFromChange(change('problem', 'Mod', ['S2', 'S1', 'network', 'failed', '-', SINCE, 'fence: RS2 unreachable'], before), f, T);
    assert.strictEqual(failed[0].kind, 'recovery-failed');
    assert.strictEqual(failed[0].text, 'S2: recovery failed: fence: RS2 unreachable');
    // A Mod that keeps the status (a claim re-asserted) makes no event.
    assert.deepStrictEqual(eventsFromChange(change('problem', 'Mod', before!, before), f, T), []);
  });

  it('real servers down and up, maintenance of hosts and VMs, the OD pool emptied and refilled', () => {
    const f = files({ 'available-od': [] });
    const ev = (c: ChangeEvent) => eventsFromChange(c, f, T).map((e) => `${e.kind} ${e.subject}`);
    assert.deepStrictEqual(ev(change('realserver', 'Mod', ['RS2', '0.1', '1', 'down'], ['RS2', '0.1', '1', 'up'])), ['host-down RS2']);
    assert.deepStrictEqual(ev(change('realserver', 'Mod', ['RS2', '0.1', '1', 'up'], ['RS2', '0.1', '1', 'down'])), ['host-up RS2']);
    assert.deepStrictEqual(ev(change('realserver', 'Mod', ['RS2', '0.5', '1', 'up'], ['RS2', '0.1', '1', 'up'])), [], 'a load change is no event');
    assert.deepStrictEqual(ev(change('realserver', 'Mod', ['RS2', '0.1', '1', 'maintenance'], ['RS2', '0.1', '1', 'up'])), ['maintenance-on RS2']);
    assert.deepStrictEqual(ev(change('realserver', 'Mod', ['RS2', '0.1', '1', 'up'], ['RS2', '0.1', '1', 'maintenance'])), ['maintenance-off RS2']);
    assert.deepStrictEqual(ev(change('group', 'Mod', ['S2', '127.0.1.2', 'RS2', '-', 'maintenance'], group[1])), ['maintenance-on S2']);
    assert.deepStrictEqual(ev(change('group', 'Mod', group[1], ['S2', '127.0.1.2', 'RS2', '-', 'maintenance'])), ['maintenance-off S2']);
    assert.deepStrictEqual(ev(change('available-od', 'Del', ['OD1', '127.0.1.121', 'RS1'])), ['od-pool-empty available-od']);
    f.data.set('available-od', [['OD4', '127.0.1.124', 'RS1']]);
    assert.deepStrictEqual(ev(change('available-od', 'Add', ['OD4', '127.0.1.124', 'RS1'])), ['od-pool-refilled available-od']);
  });

  it('a recovery under way longer than the bound is stalled, once per episode key', () => {
    const f = files({ problem: [['S2', 'S1', 'network', 'recovering', '-', SINCE], ['S4', 'S3', 'network', 'recovered', 'S4b', SINCE]] });
    const since = Date.parse(SINCE);
    assert.deepStrictEqual(stalledRecoveries(f, since + 119_000, 120_000, 'S3'), []);
    const s = stalledRecoveries(f, since + 121_000, 120_000, 'S3');
    assert.deepStrictEqual(s.map((e) => [e.kind, e.subject, e.alert, e.key]), [['recovery-stalled', 'S2', true, `recovery-stalled:S2:${SINCE}`]]);
    assert.match(s[0].text, /recovering for 121 s \(handled by S1\)/);
    const d = new EventDeduper();
    assert.strictEqual(d.first(s[0].key), true);
    assert.strictEqual(d.first(stalledRecoveries(f, since + 200_000, 120_000, 'S3')[0].key), false);
  });

  it('the alerter: the first member that is not the subject, not failing, not in maintenance, not on a down host', () => {
    assert.strictEqual(alerterFor('S2', files()), 'S1');
    assert.strictEqual(alerterFor('S1', files()), 'S2');
    const f = files({
      group: [['S1', '127.0.1.1', 'RS1', '-', 'maintenance'], ...group.slice(1)],
      problem: [['S2', 'S3', 'network', 'fencing', '-', SINCE]],
    });
    assert.strictEqual(alerterFor('S2', f), 'S3');
    const down = files({ realserver: [['RS1', '0.1', '2', 'down']] });
    assert.strictEqual(alerterFor('RS1', down), 'S2', 'S1 and S4 are on the down host');
    assert.strictEqual(alerterFor('S9', files({ group: [] })), undefined);
  });
});
