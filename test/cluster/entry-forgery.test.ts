// Forged entries through anti-entropy (issue 14, docs/security.md rule 10), against real Node-RED
// processes. Four VMs form a cluster; then S4 turns insider: its Node-RED is stopped and its store
// runs in this test process with S4's own files, key and the cluster secret (everything an attacker
// holding S4 has), with entries forged into its replica at Lamport times above everyone's:
//   - S1's own group record moved to another address, "by S1" (signed with S4's key);
//   - a confirmation of S2's failure in S1's name (S1 is one of S2's managers), "by S1";
//   - a confirmation of S3's failure "by S2", carrying a genuine signed diff of S2 that writes
//     something else (a real signature replayed as the proof of another entry);
//   - S2 marked fenced, by S4 itself (truthful origin, no authority).
// The insider answers the honest VMs' summaries and pulls with them and pushes them in its own
// rounds. Every honest VM must refuse each one (logged with the reason), keep converging with the
// others, and a newcomer whose only seed is the insider must join without taking any of them.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, startCluster, Vm } from '../../harness/cluster/launcher';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { semFlow, EDIT_PATH } from '../../harness/flows/sem-flow';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { loadOrCreateVmKey, VmKey } from '../../lib/sem/vm-key';
import { signEntry } from '../../lib/sem/entry-proof';
import type { Replica, SnapshotEntry } from '../../lib/sem/replica';
import type { RecordFields } from '../../lib/records/files';

const SECRET = 'entry-forgery-secret-0123456789abcdef';
const filesOf = (vm: Vm) => path.join(vm.userDir, 'p2p-ha');
const read = (vm: Vm, file: string) => {
  const p = path.join(filesOf(vm), file);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
};
const lineOf = (vm: Vm, file: string, key: string) => read(vm, file).split('\n').find((l) => l.startsWith(`${key}, `));

describe('forged entries through anti-entropy are refused by every honest VM (real Node-RED processes)', function () {
  this.timeout(240_000);
  let range: LoopbackRange;
  let cluster: Cluster;
  let semPort: number;
  let ips: string[];
  let insider: ReplicatedStore | undefined;
  const honest = ['S1', 'S2', 'S3'];
  const flow = (vm: Vm, seeds: string[]) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: SECRET, seeds, syncIntervalMs: 500 });

  before(async () => {
    range = allocLoopbackRange();
    ips = range.ips(5);
    semPort = await pickPortFreeOnAll(ips);
    const four = ips.slice(0, 4);
    cluster = await startCluster({ count: 4, ips: four, flows: (vm) => flow(vm, four) });
    await waitFor(() => cluster.vms.every((vm) => (read(vm, 'group').match(/^S\d, .*, [A-Za-z0-9+/]{43}=$/gm) ?? []).length === 4), {
      what: 'four members with their keys in every group file',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await insider?.stop().catch(() => undefined);
    await cluster?.stopAll();
    range?.release();
  });

  it('S4 turned insider: forged entries for S1\'s group record and confirmations are refused everywhere, logged, and the honest VMs keep converging', async () => {
    const s4 = cluster.vm('S4');
    await cluster.stop(s4);
    const s4Key = loadOrCreateVmKey(filesOf(s4), 'S4');
    const as = (h: string): VmKey => ({ ...s4Key, hostname: h });
    insider = new ReplicatedStore({
      identity: { hostname: 'S4', address: s4.ip, realServer: 'RS1', services: '-' },
      folder: filesOf(s4),
      secret: SECRET,
      port: semPort,
      seeds: ips.slice(0, 3),
      syncIntervalMs: 500,
    });
    insider.on('warning', () => undefined);
    const replica = (insider as unknown as { replica: Replica }).replica;
    const L = replica.clock + 1000;
    const now = new Date().toISOString();
    const s1 = replica.get('group', 'S1')!;
    const s2 = replica.get('group', 'S2')!;
    const movedS1: RecordFields = [s1[0], '127.0.0.66', s1[2], s1[3], s1[4], s1[5]];
    const confirmS2: RecordFields = ['S2', 'S1', 'service', 'confirmed', '-', now];
    const confirmS3: RecordFields = ['S3', 'S2', 'network', 'confirmed', '-', now];
    const fencedS2: RecordFields = [s2[0], s2[1], s2[2], s2[3], 'fenced', s2[5]];
    // A genuine proof of S2 (its own group record's signed diff), replayed for another entry.
    const genuineS2 = replica.entries([['group', 'S2']])[0][5];
    assert.ok(genuineS2?.d, 'S2\'s record carries its signed diff');
    const forged: SnapshotEntry[] = [
      ['group', 'S1', movedS1, L, 'S1', signEntry(as('S1'), 'group', 'S1', movedS1, L)],
      ['problem', 'S2', confirmS2, L, 'S1', signEntry(as('S1'), 'problem', 'S2', confirmS2, L)],
      ['problem', 'S3', confirmS3, L, 'S2', genuineS2],
      ['group', 'S2', fencedS2, L, 'S4', signEntry(s4Key, 'group', 'S2', fencedS2, L)],
    ];
    replica.merge({ clock: L, seqs: {}, entries: forged });
    await insider.start();
    assert.equal(insider.get('group', 'S1')![1], '127.0.0.66', 'the insider holds (and serves) the forgeries');

    const refusedAll = (vm: Vm) => {
      const log = read(vm, 'sem.log');
      return (
        /not merged: group S1 \(origin S1, Lamport \d+\): not signed by the key S1 publishes/.test(log) &&
        /not merged: problem S2 \(origin S1, Lamport \d+\): not signed by the key S1 publishes/.test(log) &&
        /not merged: problem S3 \(origin S2, Lamport \d+\): its proof is a diff of S2 that does not write it/.test(log) &&
        /not merged: S4 may not change the group record of S2/.test(log)
      );
    };
    // S3 pulls from S4 (its ring successor), S4 pushes to S1 (its successor); S2 meets S4 as a random partner.
    await waitFor(() => honest.every((h) => refusedAll(cluster.vm(h))), { what: 'each forgery refused, with its reason, in every honest VM\'s log', timeoutMs: 60_000, intervalMs: 500 });
    for (const h of honest) {
      const vm = cluster.vm(h);
      assert.doesNotMatch(read(vm, 'group'), /127\.0\.0\.66/, `${h}: S1 moved`);
      assert.doesNotMatch(read(vm, 'group'), /fenced/, `${h}: S2 fenced`);
      assert.equal(lineOf(vm, 'problem', 'S2'), undefined, `${h}: a confirmation of S2 in S1's name`);
      assert.equal(lineOf(vm, 'problem', 'S3'), undefined, `${h}: a confirmation of S3 in S2's name`);
    }

    // The honest VMs keep converging: an edit made during the attack reaches every one of them,
    // and their files are identical.
    const r = await httpRequest(cluster.vm('S2').url + EDIT_PATH, { method: 'POST', body: 'available-od, Add, ODF1, 127.0.2.31, RS1', timeoutMs: 10_000 });
    assert.equal(r.status, 200, r.body);
    await waitFor(() => honest.every((h) => /^ODF1, /m.test(read(cluster.vm(h), 'available-od'))), { what: 'the edit on every honest VM', timeoutMs: 20_000 });
    // (The text files follow each VM's state within an interval: compared until they agree.)
    const differing = () =>
      ['group', 'problem', 'available-od', 'realserver'].flatMap((file) => honest.filter((h) => read(cluster.vm(h), file) !== read(cluster.vm('S1'), file)).map((h) => `${h}'s ${file}`));
    await waitFor(() => differing().length === 0, { what: 'the honest VMs\' files identical to S1\'s', timeoutMs: 10_000 }).catch((e: Error) => {
      throw new Error(`${e.message}: ${differing().join(', ')} differ`);
    });
  });

  it('a newcomer whose only seed is the insider joins with the honest records and none of the forgeries', async () => {
    const s5 = await cluster.define({ name: 'S5', ip: ips[4] });
    await cluster.start(s5);
    await cluster.deploy(s5, flow(s5, [ips[3]]));
    const s1 = cluster.vm('S1');
    await waitFor(
      () => ['group', 'problem', 'available-od'].every((f) => read(s5, f) !== '' && read(s5, f) === read(s1, f)) && /^S5, /m.test(read(s1, 'group')),
      { what: 'S5 a member, with the same files as S1', timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.match(lineOf(s5, 'group', 'S1') ?? '', new RegExp(`^S1, ${s1.ip.replace(/\./g, '\\.')}, `), 'S1 at its true address on the newcomer');
    assert.equal(lineOf(s5, 'problem', 'S2'), undefined);
    assert.match(read(s5, 'sem.log'), /not merged: group S1 \(origin S1, Lamport \d+\): not signed by the key S1 publishes/, 'the newcomer refused the forgery from its seed');
  });
});
