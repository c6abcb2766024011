// Whom a backup catches up with once it is a member (lib/recovery/role-catch-up.ts): the manager
// that called and the acting managers of the other recoveries in hand, serving members only; and
// to which ODs a manager sends its edits while its recovery is under way (the resumed ODs of the
// recoveries in hand), with real stores on loopback: that is what brings its commit to such an OD.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import { backupsInHand, catchUpPartners, CATCH_UP_WINDOW_MS, recoveriesUnderWay, sendEditsToBackupsInHand, warmBackupStreams } from '../../lib/recovery/role-catch-up';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const now = Date.parse('2026-12-03T18:00:00.000Z');
const iso = (msAgo: number) => new Date(now - msAgo).toISOString();
const group = [
  ['S1', '127.0.2.1', 'RS1', '-'],
  ['S2', '127.0.2.2', 'RS2', '-', 'fenced'],
  ['S3', '127.0.2.3', 'RS3', '-'],
  ['S4', '127.0.2.4', 'RS1', '-'],
  ['S5', '127.0.2.5', 'RS2', '-', 'fenced'],
  ['S6', '127.0.2.6', 'RS3', '-', 'maintenance'],
  ['S2b', '127.0.2.23', 'RS3', '-'],
];
const names = (x: { hostname: string }[]) => x.map((p) => p.hostname);

describe('recovery role catch-up partners', () => {
  it('the caller, and the manager of every other recovery under way or just done', () => {
    const problems = [
      ['S2', 'S1', 'network', 'recovering', 'S2b', iso(3000)],
      ['S5', 'S4', 'network', 'recovered', 'S5b', iso(3000)],
    ];
    assert.deepEqual(catchUpPartners('S2b', 'S1', group, problems, now), [
      { hostname: 'S1', address: '127.0.2.1' },
      { hostname: 'S4', address: '127.0.2.4' },
    ]);
  });

  it('not: recoveries outside the window or without a time, problems not in hand, itself, fenced members', () => {
    const problems = [
      ['S5', 'S4', 'network', 'recovering', 'S5b', iso(CATCH_UP_WINDOW_MS + 1)],
      ['S7', 'S3', 'network', 'fencing', 'S7b', '-'],
      ['S8', 'S3', 'network', 'detected', '-', iso(1000)],
      ['S9', 'S3', 'network', 'failed', '-', iso(1000)],
      ['S10', 'S2b', 'network', 'recovering', 'S10b', iso(1000)],
      ['S12', 'S2', 'network', 'recovering', 'S12b', iso(1000)],
    ];
    assert.deepEqual(names(catchUpPartners('S2b', 'S1', group, problems, now)), ['S1']);
  });

  it('a caller that is no member of these files, or fenced: nobody', () => {
    assert.deepEqual(catchUpPartners('S2b', 'S9', group, [], now), []);
    assert.deepEqual(catchUpPartners('S2b', 'S5', group, [], now), []);
    // A member in maintenance still gets diffs (a peer): it counts.
    assert.deepEqual(names(catchUpPartners('S2b', 'S6', group, [], now)), ['S6']);
  });

  it('recoveries under way: confirmed, fencing or recovering, detected within the window', () => {
    const problems = [
      ['S5', 'S4', 'network', 'recovering', 'S5b', iso(1000)],
      ['S3', 'S1', 'network', 'fencing', 'S3b', iso(1000)],
      ['S2', 'S1', 'network', 'recovered', 'S2b', iso(1000)],
      ['S6', 'S1', 'network', 'failed', '-', iso(1000)],
      ['S7', 'S1', 'network', 'detected', '-', iso(1000)],
      ['S8', 'S1', 'network', 'confirmed', '-', iso(CATCH_UP_WINDOW_MS + 1)],
      ['S9', 'S1', 'network', 'confirmed', '-', '-'],
    ];
    assert.deepEqual(recoveriesUnderWay(problems, now), ['S3', 'S5']);
    assert.deepEqual(recoveriesUnderWay([], now), []);
  });

  // Recoveries in hand as a manager's files show them, with the ODs available-od still lists.
  const inHandProblems = [
    ['S2', 'S1', 'network', 'recovering', 'S2b', iso(3000), '-', 'OD3'],
    ['S5', 'S4', 'network', 'recovering', 'S5b', iso(3000), '-', 'OD2'],
    ['S7', 'S4', 'network', 'recovering', 'S7b', iso(3000), '-', 'OD10'],
    ['S8', 'S3', 'network', 'fencing', 'S8b', iso(3000), '-', 'OD4'],
    ['S9', 'S3', 'network', 'recovered', 'S9b', iso(3000), '-', 'OD5'],
    ['S10', 'S3', 'network', 'recovering', 'S10b', iso(CATCH_UP_WINDOW_MS + 1), '-', 'OD6'],
    ['S11', 'S3', 'network', 'recovering', 'S11b', iso(3000), '-', 'OD7'],
    ['S12', 'S3', 'network', 'recovering', 'S12b', iso(3000)],
  ];
  const inHandOds = ['OD2', 'OD3', 'OD4', 'OD5', 'OD6', 'OD10'].map((o, i) => [o, `127.0.2.${100 + i}`, 'RS1']);

  it('the ODs a manager opens its stream to while its commit is to come: every recovery recovering, its own included', () => {
    const [problems, ods] = [inHandProblems, inHandOds];
    // Not: fencing (OD maybe not resumed), recovered, outside the window, an OD gone from
    // available-od (OD7), no OD named.
    assert.deepEqual(backupsInHand(problems, ods, now), [
      { target: 'S5', od: 'OD2', address: '127.0.2.100' },
      { target: 'S2', od: 'OD3', address: '127.0.2.101' },
      { target: 'S7', od: 'OD10', address: '127.0.2.105' },
    ]);
    const warmed: string[] = [];
    const files = { port: 4, records: (f: 'problem' | 'available-od') => (f === 'problem' ? problems : ods), warmStream: (t: { address: string; port: number }) => (warmed.push(`${t.address}:${t.port}`), false) };
    assert.deepEqual(warmBackupStreams(files, now), ['OD2', 'OD3', 'OD10']);
    assert.deepEqual(warmed, ['127.0.2.100:4', '127.0.2.101:4', '127.0.2.105:4']);
  });

  it("the ODs a manager sends its edits to while its recovery is under way: the other recoveries' (its own catches up after the role call)", () => {
    const [problems, ods] = [inHandProblems, inHandOds];
    let source: (() => readonly { hostname: string; address: string }[]) | undefined;
    const files = { records: (f: 'problem' | 'available-od') => (f === 'problem' ? problems : ods), addEditDestinations: (s: typeof source) => ((source = s), () => (source = undefined)) };
    const stop = sendEditsToBackupsInHand(files, 'S2', () => now);
    // Asked at each edit: OD3 (S2's own) left out; fencing, recovered, outside the window, gone from available-od, no OD: as above.
    assert.deepEqual(source!(), [
      { hostname: 'OD2', address: '127.0.2.100' },
      { hostname: 'OD10', address: '127.0.2.105' },
    ]);
    stop();
    assert.equal(source, undefined);
  });
});

describe('recovery: edits sent to the OD of the other recovery in hand (real stores)', function () {
  this.timeout(60_000);
  let net: LoopbackStores | undefined;
  afterEach(async () => {
    await net?.close();
    net = undefined;
  });

  it('opens the stream from a manager to a resumed OD before the commit (without it, the commit opens it: a POST beside the upgrade)', async () => {
    net = await LoopbackStores.open(2, 'warm-backup-streams-secret-0123456789', 'warm-backups');
    const s1 = net.store(1, { syncIntervalMs: 60_000 });
    await s1.start();
    const od = net.store(2, { hostname: 'OD2', autoJoin: false, seeds: [net.range.ip(1)], syncIntervalMs: 60_000 });
    await od.start();
    await waitFor(() => od.records('group').length === 1, { what: 'the OD caught up from its seed', timeoutMs: 20_000 });
    const target = { address: net.range.ip(2), port: s1.port };
    // S1 never sent the OD anything: no stream to it.
    assert.equal((s1 as unknown as { client: { streamOpen(t: unknown): boolean } }).client.streamOpen(target), false);
    await s1.edit({ file: 'available-od', op: 'Add', record: ['OD2', net.range.ip(2), 'RS2'] });
    await s1.edit({ file: 'problem', op: 'Add', record: ['S5', 'S1', 'network', 'recovering', 'S5b', new Date().toISOString(), '-', 'OD2'] });
    assert.deepEqual(warmBackupStreams(s1), ['OD2']);
    await waitFor(() => s1.warmStream(target), { what: "S1's stream to the OD open", timeoutMs: 20_000 });
    assert.equal((s1 as unknown as { client: { retained(): { streams: number; sockets: number } } }).client.retained().streams, 1);
  });

  it('brings the commit to an OD that is no member yet, acknowledged by it; a member at its address gets edits once; stopped, nothing more', async () => {
    net = await LoopbackStores.open(3, 'side-sends-backups-secret-0123456789', 'side-backups');
    const s1 = net.store(1, { syncIntervalMs: 60_000 });
    const s4 = net.store(2, { hostname: 'S4', seeds: [net.range.ip(1)], syncIntervalMs: 60_000 });
    await net.formIdentical([s1, s4]);
    const od = net.store(3, { hostname: 'OD2', autoJoin: false, seeds: [net.range.ip(1)], syncIntervalMs: 60_000 });
    await od.start();
    await waitFor(() => od.records('group').length === 2, { what: 'the OD caught up from its seed', timeoutMs: 20_000 });
    const since = new Date().toISOString();
    await s1.edit({ file: 'available-od', op: 'Add', record: ['OD2', net.range.ip(3), 'RS2'] });
    await s4.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'recovering', 'S5b', since, '-', 'OD2'] });
    await waitFor(() => s1.get('problem', 'S5') !== undefined, { what: "S4's recovery at S1", timeoutMs: 20_000 });
    const stop = sendEditsToBackupsInHand(s1, 'S2');
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'recovering', 'S2b', since, '-', 'OD3'] });
    const commit = await s1.editBatch([
      { file: 'problem', op: 'Mod', before: s1.get('problem', 'S2')!, record: ['S2', 'S1', 'network', 'recovered', 'S2b', since, '-', 'OD3'] },
      { file: 'group', op: 'Add', record: ['S2b', net.range.ip(9), 'RS3', '-'] },
    ]);
    // Acknowledged by the OD as by a member (durable there): it holds the commit now.
    assert.deepEqual(commit.acked.map((a) => a.peer).sort(), ['OD2', 'S4']);
    assert.ok(od.get('group', 'S2b'));
    assert.equal(od.get('problem', 'S2')?.[3], 'recovered');
    const log = fs.readFileSync(`${od.folder}/sem.log`, 'utf8');
    assert.doesNotMatch(log, / refused .*S2b/);
    // Stopped (S1's recovery is over): its edits go to the members only, S5 still recovering.
    stop();
    const after = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS9', '0.1', '1', 'up'] });
    assert.deepEqual(after.acked.map((a) => a.peer), ['S4']);
    // S4's commit makes the OD the member S5b (at the OD's address): S1's edits reach it once, as a member.
    await s4.editBatch([
      { file: 'problem', op: 'Mod', before: s4.get('problem', 'S5')!, record: ['S5', 'S4', 'network', 'recovered', 'S5b', since, '-', 'OD2'] },
      { file: 'group', op: 'Add', record: ['S5b', net.range.ip(3), 'RS2', '-'] },
    ]);
    await waitFor(() => s1.get('group', 'S5b') !== undefined, { what: "S4's commit at S1", timeoutMs: 20_000 });
    const again = sendEditsToBackupsInHand(s1, 'S2');
    await s1.edit({ file: 'problem', op: 'Add', record: ['S7', 'S1', 'network', 'recovering', 'S7b', since, '-', 'OD2'] });
    const once = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS10', '0.1', '1', 'up'] });
    assert.deepEqual(once.acked.map((a) => a.peer).sort(), ['S4', 'S5b']);
    again();
  });
});
