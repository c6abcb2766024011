// p2p-events and p2p-maintenance in a Node-RED runtime (node-red-node-test-helper): two real
// p2p-stores (S1 on RS1, S2 on RS2) on this suite's own loopback addresses, replicating to each
// other. Every event reaches output 1 on both VMs; an alert reaches output 2 on one VM only.
// The maintenance node sets the state from a msg and refuses a bad one through done(err).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import storeNode = require('../../nodes/p2p-store');
import eventsNode = require('../../nodes/p2p-events');
import maintenanceNode = require('../../nodes/p2p-maintenance');
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

const range = allocLoopbackRange();
const A = range.ip(1);
const B = range.ip(2);

describe('ops nodes in Node-RED (events, maintenance)', function () {
  this.timeout(30_000);
  let dir: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ops-nodes-'));
    await new Promise<void>((resolve) => helper.startServer(() => resolve()));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function load() {
    const port = await pickPortFreeOnAll([A, B]);
    const store = (id: string, hostname: string, address: string, rs: string, seed: string) => ({
      id,
      type: 'p2p-store',
      hostname,
      address,
      realServer: rs,
      services: '-',
      folder: path.join(dir, hostname),
      port,
      seeds: seed,
      syncInterval: 500,
    });
    const flow = [
      { id: 'f1', type: 'tab' },
      store('st1', 'S1', A, 'RS1', B),
      store('st2', 'S2', B, 'RS2', A),
      { id: 'ev1', z: 'f1', type: 'p2p-events', store: 'st1', stall: 10, wires: [['all1'], ['alert1']] },
      { id: 'ev2', z: 'f1', type: 'p2p-events', store: 'st2', stall: 10, wires: [['all2'], ['alert2']] },
      { id: 'mt', z: 'f1', type: 'p2p-maintenance', store: 'st1', wires: [['mtout']] },
      { id: 'mt-nostore', z: 'f1', type: 'p2p-maintenance', store: '', wires: [['mtout']] },
      { id: 'c', z: 'f1', type: 'catch', scope: ['mt', 'mt-nostore'], wires: [['caught']] },
      ...['all1', 'alert1', 'all2', 'alert2', 'mtout', 'caught'].map((id) => ({ id, z: 'f1', type: 'helper' })),
    ];
    await helper.load([storeNode, eventsNode, maintenanceNode, catchNode], flow, { st1: { secret: 'ops-secret' }, st2: { secret: 'ops-secret' } });
    const got: Record<string, any[]> = {};
    for (const id of ['all1', 'alert1', 'all2', 'alert2', 'mtout', 'caught']) {
      got[id] = [];
      helper.getNode(id).on('input', (m: any) => got[id].push(m));
    }
    const st1 = helper.getNode('st1');
    const st2 = helper.getNode('st2');
    await waitFor(() => st1.files.records('group').length === 2 && st2.files.records('group').length === 2, { what: 'both in both group files', timeoutMs: 15_000 });
    return { st1, st2, got };
  }

  it('a real server down: host-down on both VMs, one alert from the alerter (S2: S1 is on the down host)', async () => {
    const { st1, st2, got } = await load();
    await st1.files.edit('realserver, Add, RS1, 0.10, 1, up');
    await waitFor(() => st2.files.get('realserver', 'RS1'), { what: 'RS1 on S2', timeoutMs: 10_000 });
    await st1.files.edit('realserver, Mod, RS1, 0.10, 1, up, RS1, 0.10, 1, down');
    await waitFor(() => got.all1.length >= 1 && got.all2.length >= 1 && got.alert2.length >= 1, { what: 'host-down everywhere', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500));
    for (const out of [got.all1, got.all2]) assert.deepEqual(out.map((m) => m.topic), ['p2p-ha/host-down']);
    assert.equal(got.alert1.length, 0, 'no alert from S1');
    assert.equal(got.alert2.length, 1);
    assert.equal(got.alert2[0].payload.alerter, 'S2');
    assert.equal(got.alert2[0].payload.text, 'RS1: real server down');
    assert.equal(got.all1[0].payload.key, got.all2[0].payload.key, 'one key for one event on every VM');
  });

  it('maintenance from a msg: the state replicates, both VMs see maintenance-on, one alert; a bad msg goes to catch, nothing changed', async () => {
    const { st2, got } = await load();
    helper.getNode('mt').receive({ payload: { vm: 'S2', on: true } });
    await waitFor(() => st2.files.get('group', 'S2')?.[4] === 'maintenance', { what: 'S2 in maintenance on S2', timeoutMs: 10_000 });
    // S2 applies the edit before it acknowledges it, and the node sends only once S1's edit has its
    // acknowledgements (through Node-RED's asynchronous send): wait for that msg, too.
    await waitFor(() => got.mtout.length >= 1, { what: "the maintenance node's msg", timeoutMs: 10_000 });
    assert.equal(got.mtout.length, 1);
    assert.equal(got.mtout[0].payload.changed, true);
    await waitFor(() => got.all1.length >= 1 && got.all2.length >= 1, { what: 'maintenance-on on both', timeoutMs: 10_000 });
    assert.equal(got.all2[0].topic, 'p2p-ha/maintenance-on');
    assert.equal(got.alert1.length + got.alert2.length, 1, 'one alert');
    assert.equal(got.alert1.length, 1, 'S1 alerts about S2');
    helper.getNode('mt').receive({ payload: { vm: 'S2', on: 'maybe' } });
    await waitFor(() => got.caught.length === 1, { what: 'the bad msg caught', timeoutMs: 10_000 });
    assert.match(got.caught[0].error.message, /on must be true or false/);
    helper.getNode('mt-nostore').receive({ payload: { vm: 'S2', on: false } });
    await waitFor(() => got.caught.length === 2, { what: 'the store-less node answers with an error', timeoutMs: 10_000 });
    assert.match(got.caught[1].error.message, /no p2p-store configured/);
    assert.equal(st2.files.get('group', 'S2')?.[4], 'maintenance', 'nothing changed');
  });

  it('a recovery that stays `recovering` past the stall bound is alerted once', async () => {
    const { st1, got } = await load();
    const since = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, '.000Z');
    await st1.files.edit(`problem, Add, S9, S1, network, recovering, -, ${since}`);
    await waitFor(() => got.alert1.concat(got.alert2).some((m) => m.topic === 'p2p-ha/recovery-stalled'), { what: 'recovery-stalled alert', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const stalled = got.alert1.concat(got.alert2).filter((m) => m.topic === 'p2p-ha/recovery-stalled');
    assert.equal(stalled.length, 1, 'once, from one VM');
    assert.match(stalled[0].payload.text, /S9: recovery recovering for \d+ s \(handled by S1\)/);
  });
});
