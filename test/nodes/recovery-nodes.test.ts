// p2p-placer, p2p-backup-starter and p2p-od-replicator in Node-RED (node-red-node-test-helper),
// on the real p2p-store and against simulated real servers (SSH servers on this suite's own loopback addresses, speaking
// virsh, with an in-memory VM backend, running the installation procedure with /bin/sh).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import { sshKeyPair } from '../../harness/ssh-keys';
import { allocLoopbackRange, pickFreePort } from '../../harness/net';
import { waitFor } from '../../harness/wait';
import { SimRealServer } from '../../harness/sim/sim-server';
import type { ClusterFiles } from '../../lib/records/cluster-api';
import { joinAsPeer } from '../support/sem-wire';
import storeNode = require('../../nodes/p2p-store');
import realServerNode = require('../../nodes/p2p-real-server');
import placerNode = require('../../nodes/p2p-placer');
import starterNode = require('../../nodes/p2p-backup-starter');
import replicatorNode = require('../../nodes/p2p-od-replicator');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

const SECRET = 'recovery-node-secret';
// This suite's own /24 of loopback addresses, so parallel runs never collide.
const range = allocLoopbackRange();
const ME = range.ip(1);
const at = (host: number) => range.ip(host);
const PROCEDURE = `#!/bin/sh
# Test installation procedure: records what it was given, where the test can read it.
echo "$TARGET $TARGET_ADDRESS $BACKUP $BACKUP_ADDRESS $OD $REAL_SERVER $SERVICES" > "$SANDBOX/installed-$BACKUP"
`;

describe('recovery nodes in Node-RED (sim real servers)', function () {
  this.timeout(30_000);
  const key = sshKeyPair();
  let dir: string;
  let sims: SimRealServer[] = [];
  let semPort: number;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-recovery-nodes-'));
    semPort = await pickFreePort(ME);
    sims = [1, 2, 3].map((i) => new SimRealServer({ address: at(10 + i), authorizedKeys: [key.public], hostKey: sshKeyPair().private }));
    for (const s of sims) await s.start();
    await new Promise<void>((resolve) => {
      helper.startServer(() => resolve());
    });
  });

  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((resolve) => {
      helper.stopServer(() => resolve());
    });
    for (const s of sims) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const rs = (i: number) => ({
    id: `rs${i}`,
    type: 'p2p-real-server',
    name: `RS${i}`,
    host: sims[i - 1].address,
    port: sims[i - 1].port,
    user: 'root',
    fingerprint: sims[i - 1].fingerprint,
    connectTimeout: 1000,
    commandTimeout: 3000,
  });

  function flow(extra: object[]) {
    return [
      { id: 'f1', type: 'tab' },
      { id: 'store', type: 'p2p-store', hostname: 'S1', address: ME, realServer: 'RS1', services: 'tcp:80', folder: path.join(dir, 'S1'), port: semPort, seeds: '', syncInterval: 60000, requestTimeout: 300 },
      rs(1),
      rs(2),
      rs(3),
      { id: 'out', z: 'f1', type: 'helper' },
      { id: 'caught', z: 'f1', type: 'helper' },
      { id: 'nofit', z: 'f1', type: 'helper' },
      { id: 'failed', z: 'f1', type: 'helper' },
      ...extra,
    ];
  }
  const creds = { store: { secret: SECRET }, rs1: { privateKey: key.private }, rs2: { privateKey: key.private }, rs3: { privateKey: key.private } };

  /** Six VMs on three real servers, one OD on each, S2 confirmed failed by S1. */
  async function seed(files: ClusterFiles) {
    const now = new Date().toISOString();
    // S2..S6 join as real VMs do (each its own record, signed by its own key): S1's store refuses
    // to add another VM's record itself (edit authority).
    for (const [i, rsName] of [[2, 'RS2'], [3, 'RS3'], [4, 'RS1'], [5, 'RS2'], [6, 'RS3']] as const) {
      await joinAsPeer(ME, semPort, SECRET, path.join(dir, 'peer-keys'), [`S${i}`, at(i), rsName, 'tcp:80'], i);
    }
    const edits = [
      'realserver, Add, RS1, 0.50, 2, up',
      'realserver, Add, RS2, 0.40, 2, up',
      'realserver, Add, RS3, 0.10, 2, up',
      `available-od, Add, OD1, ${at(21)}, RS1`,
      `available-od, Add, OD2, ${at(22)}, RS2`,
      `available-od, Add, OD3, ${at(23)}, RS3`,
      `problem, Add, S2, S1, network, confirmed, -, ${now}`,
    ];
    for (const e of edits) await files.edit(e);
    sims.forEach((s, i) => {
      for (const vm of [`S${i + 1}`, `S${i + 4}`]) s.addDomain(vm, 'running');
      s.addDomain(`OD${i + 1}`, 'paused');
      fs.mkdirSync(path.join(s.sandboxDir, 'var/lib/p2p-ha/install'), { recursive: true });
      fs.writeFileSync(path.join(s.sandboxDir, 'var/lib/p2p-ha/install/S2.sh'), PROCEDURE);
    });
  }

  async function load(nodes: object[], extraTypes: unknown[] = []) {
    await helper.load([storeNode, realServerNode, catchNode, ...extraTypes], flow(nodes), creds);
    const store = helper.getNode('store') as unknown as { files: ClusterFiles; storeStatus(): { state: string } };
    await waitFor(() => store.storeStatus().state !== 'starting' && store.files.get('group', 'S1'), { what: 'store started', timeoutMs: 10_000 });
    for (const i of [1, 2, 3]) {
      const r = helper.getNode(`rs${i}`) as unknown as { connection: { state: string } };
      await waitFor(() => r.connection.state === 'connected', { what: `RS${i} connected`, timeoutMs: 10_000 });
    }
    await seed(store.files);
    return store.files;
  }

  function collect(id: string) {
    const msgs: any[] = [];
    helper.getNode(id).on('input', (m: any) => msgs.push(m));
    return msgs;
  }

  it('placer: the least loaded real server with an OD, with the candidates; when none fits the failure goes on, the reason on output 2', async () => {
    const files = await load([
      { id: 'placer', z: 'f1', type: 'p2p-placer', store: 'store', wires: [['out'], ['nofit']] },
      { id: 'c', z: 'f1', type: 'catch', scope: ['placer'], wires: [['caught']] },
    ], [placerNode]);
    const out = collect('out');
    const nofit = collect('nofit');
    const caught = collect('caught');
    helper.getNode('placer').receive({ topic: 'failure', payload: { target: 'S2', realServer: 'RS2' } });
    await waitFor(() => out.length === 1, { what: 'placement', timeoutMs: 10_000 });
    assert.equal(out[0].placement.realServer, 'RS3');
    assert.equal(out[0].placement.od, 'OD3');
    assert.deepEqual(out[0].placement.candidates.map((c: any) => c.realServer), ['RS3', 'RS2', 'RS1']);
    helper.getNode('placer').receive({ payload: { targets: [{ target: 'S3', realServer: 'RS3' }, { target: 'S6', realServer: 'RS3' }] } });
    await waitFor(() => out.length === 2, { what: 'placements', timeoutMs: 10_000 });
    assert.deepEqual(out[1].placements.map((p: any) => p.placement.od), ['OD3', 'OD2']);
    for (const od of files.records('available-od')) await files.edit({ file: 'available-od', op: 'Del', record: od });
    helper.getNode('placer').receive({ payload: { target: 'S2' } });
    await waitFor(() => out.length === 3 && nofit.length === 1, { what: 'no-fit msgs', timeoutMs: 10_000 });
    assert.match(out[2].placement.error, /no available OD/);
    assert.equal(out[2].payload.target, 'S2', 'the failure goes on to the starter');
    assert.equal(nofit[0].topic, 'no-placement');
    assert.match(nofit[0].payload.reason, /no available OD/);
    assert.equal(caught.length, 0);
    helper.getNode('placer').receive({ payload: {} });
    await waitFor(() => caught.length === 1, { what: 'bad input error', timeoutMs: 10_000 });
    assert.match(caught[0].error.message, /payload.target/);
  });

  it('backup starter, Fig. 1: fences S2, resumes OD3 on RS3, runs S2.sh there, edits the files; every step a msg', async () => {
    const files = await load([{ id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', procedureDir: '/var/lib/p2p-ha/install', roleMode: 'none', confirmWait: 2, maxOdAttempts: 3, adminPort: 1880, wires: [['out']] }], [starterNode]);
    const out = collect('out');
    helper.getNode('starter').receive({ topic: 'failure', payload: { target: 'S2', address: `${at(2)}`, realServer: 'RS2', kind: 'network', detectedBy: 'S1' } });
    await waitFor(() => out.some((m) => m.topic === 'recovered'), { what: 'recovered msg', timeoutMs: 10000 });
    // As they happened: place and resume beside the fence (marked), then install and role, edits.
    assert.deepEqual(new Set(out.map((m) => m.topic)), new Set(['recovery/fence', 'recovery/place', 'recovery/resume', 'recovery/install', 'recovery/role', 'recovery/edits', 'recovered']));
    assert.deepEqual(out.filter((m) => m.payload?.parallel === 'fence').map((m) => m.topic), ['recovery/place', 'recovery/resume']);
    assert.deepEqual(out.slice(-2).map((m) => m.topic), ['recovery/edits', 'recovered']);
    const r = out[out.length - 1].payload;
    assert.deepEqual([r.backup, r.od, r.realServer, r.fence], ['S2b', 'OD3', 'RS3', 'destroyed']);
    assert.equal(sims[1].domains.get('S2')!.state, 'shut off');
    assert.equal(sims[2].domains.get('OD3')!.state, 'running');
    assert.equal(fs.readFileSync(path.join(sims[2].sandboxDir, 'installed-S2b'), 'utf8').trim(), `S2 ${at(2)} S2b ${at(23)} OD3 RS3 tcp:80`);
    assert.deepEqual(files.get('group', 'S2')!.slice(0, 5), ['S2', `${at(2)}`, 'RS2', 'tcp:80', 'fenced']);
    assert.equal(sims[1].domains.get('S2')!.autostart, false, 'autostart turned off on RS2');
    assert.deepEqual(files.get('group', 'S2b'), ['S2b', `${at(23)}`, 'RS3', 'tcp:80']);
    assert.equal(files.get('available-od', 'OD3'), undefined);
    assert.deepEqual(files.get('problem', 'S2')!.slice(0, 5), ['S2', 'S1', 'network', 'recovered', 'S2b']);
  });

  it('backup starter: host unreachable with one manager only starts nothing; problem failed, error to catch', async () => {
    const files = await load([
      { id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', procedureDir: '/var/lib/p2p-ha/install', roleMode: 'none', confirmWait: 1, maxOdAttempts: 3, adminPort: 1880, wires: [['out']] },
      { id: 'c', z: 'f1', type: 'catch', scope: ['starter'], wires: [['caught']] },
    ], [starterNode]);
    const caught = collect('caught');
    await sims[1].stop(); // RS2 gone (its VMs with it, or only the path to it: the starter cannot tell)
    helper.getNode('starter').receive({ payload: { target: 'S2', detectedBy: 'S1' } });
    await waitFor(() => caught.length === 1, { what: 'error', timeoutMs: 10000 });
    assert.match(caught[0].error.message, /confirmed only by S1/);
    assert.equal(files.get('problem', 'S2')![3], 'failed');
    assert.equal(sims[2].domains.get('OD3')!.state, 'paused');
    assert.ok(files.get('group', 'S2'));
  });

  it('backup starter: a host without virsh fails the fence with program-missing; nothing starts, the problem says why, output 2 says so', async () => {
    const files = await load([
      { id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', procedureDir: '/var/lib/p2p-ha/install', roleMode: 'none', confirmWait: 1, wires: [['out'], ['failed']] },
      { id: 'c', z: 'f1', type: 'catch', scope: ['starter'], wires: [['caught']] },
    ], [starterNode]);
    const failed = collect('failed');
    const caught = collect('caught');
    sims[1].missingPrograms.add('virsh');
    helper.getNode('starter').receive({ payload: { target: 'S2', detectedBy: 'S1' } });
    await waitFor(() => failed.length === 1 && caught.length === 1, { what: 'failure msgs', timeoutMs: 10000 });
    assert.deepEqual([failed[0].topic, failed[0].payload.target, failed[0].payload.step, failed[0].payload.kind], ['failed', 'S2', 'fence', 'program-missing']);
    const p = files.get('problem', 'S2')!;
    assert.equal(p[3], 'failed');
    assert.match(p[6], /program-missing/);
    assert.equal(sims[1].domains.get('S2')!.state, 'running');
    assert.equal(sims[2].domains.get('OD3')!.state, 'paused', 'the OD resumed beside the fence is back asleep');
    assert.ok(files.get('available-od', 'OD3'));
    assert.deepEqual(files.get('group', 'S2')!.slice(0, 5), ['S2', `${at(2)}`, 'RS2', 'tcp:80', 'member'], 'not fenced');
    assert.equal(files.get('group', 'S2b'), undefined);
  });

  it('placer -> starter when nothing fits: the failed server is still fenced, the problem failed with the reason on both second outputs', async () => {
    const files = await load([
      { id: 'placer', z: 'f1', type: 'p2p-placer', store: 'store', wires: [['starter'], ['nofit']] },
      { id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', roleMode: 'none', wires: [['out'], ['failed']] },
    ], [placerNode, starterNode]);
    for (const od of files.records('available-od')) await files.edit({ file: 'available-od', op: 'Del', record: od });
    const nofit = collect('nofit');
    const failed = collect('failed');
    helper.getNode('placer').receive({ payload: { target: 'S2', detectedBy: 'S1' } });
    await waitFor(() => failed.length === 1 && nofit.length === 1, { what: 'no-fit and failed msgs', timeoutMs: 10000 });
    assert.equal(failed[0].payload.kind, 'no-placement');
    assert.equal(sims[1].domains.get('S2')!.state, 'shut off', 'fenced all the same');
    assert.equal(files.get('group', 'S2')![4], 'fenced');
    const p = files.get('problem', 'S2')!;
    assert.equal(p[3], 'failed');
    assert.match(p[6], /no available OD/);
  });

  it('backup starter: an OD taken by another manager is skipped for the next one', async () => {
    const files = await load([{ id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', roleMode: 'none', wires: [['out']] }], [starterNode]);
    sims[2].domains.get('OD3')!.state = 'running'; // another manager resumed it a moment ago
    const out = collect('out');
    helper.getNode('starter').receive({ payload: { target: 'S2', detectedBy: 'S1' } });
    await waitFor(() => out.some((m) => m.topic === 'recovered'), { what: 'recovered', timeoutMs: 10000 });
    const r = out.find((m) => m.topic === 'recovered').payload;
    assert.deepEqual(r.lostRaces, ['OD3']);
    assert.equal(r.od, 'OD2');
    assert.ok(files.get('available-od', 'OD3'), 'the loser does not delete the OD it lost');
  });

  it('od replicator: clones the ODS into the reserved identities of its real server, suspends, edits the files', async () => {
    const files = await load([{ id: 'rep', z: 'f1', type: 'p2p-od-replicator', store: 'store', ods: 'ODS-{rs}', reidentify: 'none', interval: 60, debounce: 0.1, wires: [['out']] }], [replicatorNode]);
    const out = collect('out');
    sims.forEach((s, i) => s.addDomain(`ODS-RS${i + 1}`, 'shut off'));
    // Six VMs, three real servers: two ODs each; S1 replicates for RS1 (the first live manager).
    await files.edit(`reservation, Add, OD11, ${at(31)}, RS1`);
    await files.edit(`reservation, Add, OD21, ${at(32)}, RS2`);
    await waitFor(() => out.some((m) => m.topic === 'replication/done'), { what: 'OD11 made', timeoutMs: 10000 });
    assert.equal(sims[0].domains.get('OD11')!.state, 'paused');
    assert.equal(files.get('reservation', 'OD11'), undefined);
    // RS2 is another manager's (S2): nothing cloned there by S1.
    assert.equal(sims[1].domains.has('OD21'), false);
    assert.ok(files.get('reservation', 'OD21'));
    const steps = out.filter((m) => m.payload.od === 'OD11').map((m) => m.topic);
    assert.deepEqual(steps, ['replication/clone', 'replication/start', 'replication/reidentify', 'replication/suspend', 'replication/edits', 'replication/done']);
    const asked: any[] = [];
    helper.getNode('out').on('input', (m: any) => asked.push(m));
    helper.getNode('rep').receive({});
    await waitFor(() => asked.some((m) => m.topic === 'od-pool'), { what: 'plan msg', timeoutMs: 10_000 });
    const plan = asked.find((m) => m.topic === 'od-pool').payload;
    assert.deepEqual(plan.replicatesFor, ['RS1']);
    assert.equal(plan.plan.target, 2);
  });

  it('backup starter: copies the valid procedures of its folder to every real server (hash compare: the shared hv case)', async () => {
    const src = path.join(dir, 'procedures');
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, 'S7.sh'), 'echo "install S7"\n');
    fs.writeFileSync(path.join(src, 'Bad.sh'), 'if then (\n');
    await load([{ id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', roleMode: 'none', procedureSource: src, wires: [['out']] }], [starterNode]);
    const copy = (i: number, name: string) => path.join(sims[i].sandboxDir, 'var/lib/p2p-ha/install', name);
    await waitFor(() => sims.every((_s, i) => fs.existsSync(copy(i, 'S7.sh'))), { what: 'S7.sh on every real server', timeoutMs: 10000 });
    for (const i of [0, 1, 2]) {
      assert.equal(fs.readFileSync(copy(i, 'S7.sh'), 'utf8'), 'echo "install S7"\n');
      assert.equal(fs.existsSync(copy(i, 'Bad.sh')), false, 'a procedure /bin/sh cannot parse is not copied');
      assert.equal(fs.readFileSync(copy(i, 'S2.sh'), 'utf8'), PROCEDURE, 'files not in the folder are left alone');
    }
  });

  it('close during a recovery waiting for a confirmation ends it within the deadline', async () => {
    await load([{ id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', roleMode: 'none', confirmWait: 60, wires: [['out']] }], [starterNode]);
    await sims[1].stop();
    helper.getNode('starter').receive({ payload: { target: 'S2', detectedBy: 'S1' } });
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    await helper.unload();
    assert.ok(Date.now() - t0 < 15000, `closed in ${Date.now() - t0} ms`);
  });

  it('refuses bad settings with a clear status and starts nothing', async () => {
    await load([{ id: 'starter', z: 'f1', type: 'p2p-backup-starter', store: 'store', procedureDir: '../etc', wires: [['out']] }, { id: 'c', z: 'f1', type: 'catch', scope: ['starter'], wires: [['caught']] }], [starterNode]);
    const caught = collect('caught');
    helper.getNode('starter').receive({ payload: { target: 'S2' } });
    await waitFor(() => caught.length === 1, { what: 'error', timeoutMs: 10_000 });
    assert.match(caught[0].error.message, /procedure folder/);
    assert.equal(sims[1].domains.get('S2')!.state, 'running');
  });
});
