// POST /p2p-ha/rehearse in a Node-RED runtime (node-red-node-test-helper) on a runtime without a
// backup starter: the rehearsal runs with the plan's defaults over this runtime's store and says
// so; with no p2p-real-server for the target's host and no heartbeat (no isolation gate) the plan
// would not start a second copy, and the answer says why; bad input is refused with 400; the
// files are the same after.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import storeNode = require('../../nodes/p2p-store');
import starterNode = require('../../nodes/p2p-backup-starter');
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';

helper.init(require.resolve('node-red'));

const range = allocLoopbackRange();
const A = range.ip(1);
const B = range.ip(2);

describe('POST /p2p-ha/rehearse in Node-RED', function () {
  this.timeout(30_000);
  let dir: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-rehearse-node-'));
    await new Promise<void>((resolve) => helper.startServer(() => resolve()));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers with the plan\'s defaults and the reason it would stop; refuses a bad name; changes nothing', async () => {
    const port = await pickPortFreeOnAll([A, B]);
    const store = (id: string, hostname: string, address: string, rs: string, seed: string) => ({
      id, type: 'p2p-store', hostname, address, realServer: rs, services: '-', folder: path.join(dir, hostname), port, seeds: seed, syncInterval: 500,
    });
    await helper.load([storeNode, starterNode], [{ id: 'f1', type: 'tab' }, store('st1', 'S1', A, 'RS1', B), store('st2', 'S2', B, 'RS2', A)], {
      st1: { secret: 'rehearse-node-secret' },
      st2: { secret: 'rehearse-node-secret' },
    });
    const st1 = helper.getNode('st1');
    await waitFor(() => st1.files.records('group').length === 2, { what: 'S2 in S1\'s group file', timeoutMs: 15_000 });
    const before = JSON.stringify(['group', 'problem', 'realserver', 'available-od'].map((f) => st1.files.records(f)));
    const r = await helper.request().post('/p2p-ha/rehearse').send({ target: 'S2' }).expect(200);
    assert.equal(r.body.settingsFrom, 'defaults');
    assert.equal(r.body.target, 'S2');
    assert.equal(r.body.fence.how, 'host-not-reached');
    assert.match(r.body.fence.stateNow, /no driver configured for RS2/);
    assert.equal(r.body.outcome.ok, false);
    assert.equal(r.body.outcome.step, 'confirm');
    assert.deepEqual(r.body.wouldRun, []);
    const bad = await helper.request().post('/p2p-ha/rehearse').send({ target: 'S2; reboot' }).expect(400);
    assert.match(bad.body.error, /not a VM name/);
    await helper.request().post('/p2p-ha/rehearse').send({ target: 'S7' }).expect(400);
    assert.equal(JSON.stringify(['group', 'problem', 'realserver', 'available-od'].map((f) => st1.files.records(f))), before, 'the rehearsal changed a file');
  });
});
