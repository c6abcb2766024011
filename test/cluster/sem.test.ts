// Six real Node-RED processes on loopback, each with its own address, replicating their
// management files by SEM (issue 2).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, startCluster, Vm } from '../../harness/cluster/launcher';
import { pickPortFreeOnAll, allocLoopbackRange } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { semFlow, EDIT_PATH, BURST_PATH } from '../../harness/flows/sem-flow';
import { FILE_NAMES } from '../../lib/records/files';
import { encodeDiff } from '../../lib/sem/sem-protocol';
import { semPost } from '../support/sem-wire';

const SECRET = 'cluster-secret-for-tests';

const filesOf = (vm: Vm) => path.join(vm.userDir, 'p2p-ha');
const readFiles = (vm: Vm) =>
  FILE_NAMES.map((f) => {
    const p = path.join(filesOf(vm), f);
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  }).join('\u0000');

/** Edit a VM's files through its flow (http in -> p2p-sem-send): the body becomes msg.payload. */
async function edit(vm: Vm, payload: unknown) {
  const r = await httpRequest(vm.url + EDIT_PATH, {
    method: 'POST',
    body: payload,
    headers: typeof payload === 'string' ? { 'Content-Type': 'text/plain' } : {},
    timeoutMs: 10_000,
  });
  return { status: r.status, body: JSON.parse(r.body) };
}

describe('SEM between six Node-RED processes', function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let semPort: number;
  let ips: string[];

  before(async () => {
    const range = allocLoopbackRange();
    ips = Array.from({ length: 7 }, (_, i) => range.ip(i + 1));
    semPort = await pickPortFreeOnAll(ips);
    const six = ips.slice(0, 6);
    cluster = await startCluster({
      count: 6,
      ips: six,
      flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: SECRET, seeds: six, burst: true }),
    });
    // Every VM has joined: each group file lists all six.
    await waitFor(() => cluster.vms.every((vm) => (fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8').match(/^S\d/gm) ?? []).length === 6), {
      what: 'six members in every group file',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await cluster?.stopAll();
  });

  const allIdentical = () => {
    const live = cluster.vms.filter((v) => v.state === 'running');
    const first = readFiles(live[0]);
    return live.every((v) => readFiles(v) === first);
  };

  it('an edit on S1 reaches the files of S2..S6', async () => {
    const r = await edit(cluster.vms[0], 'available-od, Add, OD1, 127.0.2.1, RS1');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.acked.map((a: { peer: string }) => a.peer).sort(), ['S2', 'S3', 'S4', 'S5', 'S6']);
    for (const vm of cluster.vms.slice(1)) {
      // Acknowledged = durable and applied; the text file follows within an interval (lib/sem/text-files.ts).
      await waitFor(() => /^OD1, 127\.0\.2\.1, RS1$/m.test(fs.readFileSync(path.join(filesOf(vm), 'available-od'), 'utf8')), {
        what: `the edit in ${vm.name}'s available-od file`,
        timeoutMs: 10_000,
      });
      // The SEM log is a buffered stream: its line may land a moment after the acknowledgement.
      // The edit is logged `applied` when the diff brought it, or `synced` when an anti-entropy
      // exchange carrying it won the race (the late diff is then answered 409 "contained", which
      // S1 counts as an acknowledgement: lib/sem/anti-entropy.ts): on a loaded machine either.
      await waitFor(() => /(?:applied|synced) available-od, Add, OD1, 127\.0\.2\.1, RS1 \| origin=S1/.test(fs.readFileSync(path.join(filesOf(vm), 'sem.log'), 'utf8')), {
        what: `the applied (or synced) line in ${vm.name}'s SEM log`,
        timeoutMs: 30_000,
      }).catch((e: Error) => {
        const about = fs.readFileSync(path.join(filesOf(vm), 'sem.log'), 'utf8').split('\n').filter((l) => l.includes('OD1'));
        throw new Error(`${e.message}\n${vm.name}'s SEM log lines about OD1:\n${about.join('\n')}`);
      });
    }
  });

  it("bench:sem's burst loop makes its edits in S1's own flow, one after the other, and refuses a broken chain without a change", async () => {
    const burst = (body: unknown) => httpRequest(cluster.vms[0].url + BURST_PATH, { method: 'POST', body, timeoutMs: 20_000 }).then((r) => ({ status: r.status, body: JSON.parse(r.body) }));
    const r = await burst({ count: 5, first: 0, name: 'RSB', gapMs: 1 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.edits.length, 5);
    for (const e of r.body.edits) assert.deepEqual(e.acked.map((a: { peer: string }) => a.peer).sort(), ['S2', 'S3', 'S4', 'S5', 'S6']);
    const starts = r.body.edits.map((e: { start: number }) => e.start);
    assert.deepEqual(starts, [...starts].sort((a, b) => a - b), 'one edit after the other');
    assert.deepEqual(r.body.prev, ['RSB', '0.004', '4', 'up']);
    await waitFor(() => /^RSB, 0\.004, 4, up$/m.test(fs.readFileSync(path.join(filesOf(cluster.vm('S6')), 'realserver'), 'utf8')), {
      what: "the burst's last edit in S6's realserver file",
      timeoutMs: 10_000,
    });
    // A chain whose `before` is not the record's value: the first edit is refused, nothing applied.
    const before = fs.readFileSync(path.join(filesOf(cluster.vm('S1')), 'realserver'), 'utf8');
    const bad = await burst({ count: 3, first: 10, name: 'RSB', prev: ['RSB', '9.999', '9', 'up'] });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.done, 0);
    assert.equal(fs.readFileSync(path.join(filesOf(cluster.vm('S1')), 'realserver'), 'utf8'), before);
    // The loop is free again after the refusal.
    const again = await burst({ count: 1, first: 5, name: 'RSB', prev: r.body.prev });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  it('a peer stopped during 50 edits and started again ends with files identical to the others', async () => {
    const s4 = cluster.vm('S4');
    await cluster.stop(s4);
    for (let i = 0; i < 50; i++) {
      const before = i === 0 ? null : ['RS1', `${(i - 1) / 100}`, `${i - 1}`, 'up'];
      const record = ['RS1', `${i / 100}`, `${i}`, 'up'];
      const r = await edit(cluster.vms[i % 2], before ? { file: 'realserver', op: 'Mod', before, record } : { file: 'realserver', op: 'Add', record });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.failed.some((f: { peer: string }) => f.peer === 'S4'), 'S4 is down and cannot have acknowledged');
    }
    assert.notEqual(readFiles(s4), readFiles(cluster.vms[0]));
    await cluster.start(s4);
    // Identical and showing the last edit (the text files follow the state within an interval).
    const last = () => /^RS1, 0\.49, 49, up$/m.test(fs.readFileSync(path.join(filesOf(s4), 'realserver'), 'utf8'));
    await waitFor(() => last() && allIdentical(), { what: 'all six VMs with identical files, the last edit in them, after S4 came back', timeoutMs: 30_000, intervalMs: 200 });
  });

  it('forged, replayed, malformed, unknown-file and oversized messages are refused, applied nowhere, and every runtime stays up', async () => {
    await waitFor(allIdentical, { what: 'identical files before the attacks', timeoutMs: 20_000 });
    const s2 = cluster.vm('S2');
    const s1 = { folder: filesOf(cluster.vm('S1')), hostname: 'S1' };
    const wire = (body: string, secret = SECRET, signer?: typeof s1) => semPost(s2.ip, semPort, '/p2p/sem/diff', body, { secret, signer }).then((r) => r.status);
    const del = (origin: string, seq: number) =>
      encodeDiff({ file: 'group', op: 'Del', record: ['S3', cluster.vm('S3').ip, 'RS3', '-'], origin, seq, lamport: 10_000 });

    const forged = del('S1', 100_000);
    assert.equal(await wire(forged, 'not-the-cluster-secret'), 401, 'forged');
    // A diff of S1 that every VM holds, whichever path it came by (live, or an anti-entropy pull
    // that raced with it: the merged entry's proof marks its number as seen): the same number
    // again, signed with S1's own key (read from its user directory), is a replay at each of them.
    const seen = await edit(cluster.vms[0], 'available-od, Add, OD-REPLAY, 127.0.2.9, RS1');
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    await waitFor(allIdentical, { what: 'identical files after the edit', timeoutMs: 20_000 });
    const before = readFiles(cluster.vms[0]);
    const replayed = del('S1', seen.body.seq);
    for (const vm of cluster.vms.slice(1)) {
      const r = await semPost(vm.ip, semPort, '/p2p/sem/diff', replayed, { secret: SECRET, signer: s1 });
      assert.equal(r.status, 409, `replayed to ${vm.name}: ${r.body}`);
    }
    // The cluster secret alone does not speak for S1.
    assert.equal(await wire(replayed), 401, 'not signed by S1');
    const malformed = '{"v":1,"type":"diff","origin":"S1","seq":';
    assert.equal(await wire(malformed), 400, 'not JSON');
    const badRecord = JSON.stringify({ ...JSON.parse(del('S1', 100_001)), record: ['S3; rm -rf /', '127.0.0.1', 'RS1', '-'] });
    assert.equal(await wire(badRecord), 422, 'malformed record');
    const unknown = JSON.stringify({ ...JSON.parse(del('S1', 100_002)), file: 'passwd', record: ['root'] });
    assert.equal(await wire(unknown), 422, 'unknown file');
    const huge = JSON.stringify({ ...JSON.parse(del('S1', 100_003)), pad: 'x'.repeat(200_000) });
    const status = await wire(huge).catch(() => 413);
    assert.equal(status, 413, 'oversized');
    // Plain text where the cluster encrypts: refused.
    assert.equal((await semPost(s2.ip, semPort, '/p2p/sem/diff', forged, { secret: SECRET, plain: true })).status, 400, 'plain text');
    // A malformed Diff.dat line through the node is refused at the sender.
    const r = await edit(cluster.vms[0], 'group, Del, S3');
    assert.equal(r.status, 400);

    // Give any wrongly accepted diff the time to spread, then check nothing changed anywhere.
    await new Promise((res) => setTimeout(res, 1500));
    for (const vm of cluster.vms) {
      assert.equal(readFiles(vm), before, `${vm.name}'s files changed`);
      const admin = await httpRequest(vm.url + '/settings', { timeoutMs: 5000 });
      assert.equal(admin.status, 200, `${vm.name}'s runtime is down`);
    }
    const s2log = fs.readFileSync(path.join(filesOf(s2), 'sem.log'), 'utf8');
    for (const why of [/refused forged/, new RegExp(`refused replayed diff: S1 #${seen.body.seq} `), /refused malformed message/, /refused invalid record/, /refused unknown file/, /refused message too large/]) {
      assert.match(s2log, why);
    }
  });

  it('a new VM joins from one seed\'s snapshot and every VM then lists it', async () => {
    const s7 = await cluster.define({ name: 'S7', ip: ips[6] });
    await cluster.start(s7);
    await cluster.deploy(s7, semFlow(s7, 6, { semPort, secret: SECRET, seeds: [ips[0]] }));
    await waitFor(() => cluster.vms.every((vm) => /^S7, /m.test(fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8'))), {
      what: 'S7 in every group file',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await waitFor(allIdentical, { what: 'seven VMs with identical files', timeoutMs: 20_000, intervalMs: 200 });
    // The ring now has seven members: S7 is watched by S6 (P1) and S1 (P2).
    const operation = fs.readFileSync(path.join(filesOf(s7), 'operation'), 'utf8');
    assert.match(operation, /^P1, S6, S7$/m);
    assert.match(operation, /^P2, S1, S7$/m);
  });
});
