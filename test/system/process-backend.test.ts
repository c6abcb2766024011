// The simulated real server's VmBackend over real Node-RED processes: every virsh effect on a
// "domain" (suspend, resume, shutdown, destroy, start, clone, remove) checked on the process.
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, FlowNode, startCluster } from '../../harness/cluster/launcher';
import { ProcessBackend } from '../../harness/cluster/process-backend';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange, LoopbackRange } from '../../harness/net';
import { pidAlive, pidState } from '../../harness/procs';
import { waitFor } from '../../harness/wait';

const FLOW: FlowNode[] = [
  { id: 'tab1', type: 'tab', label: 'original' },
  { id: 'inj1', type: 'inject', z: 'tab1', repeat: '', once: false, wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', active: true, wires: [] },
];

async function answers(url: string): Promise<boolean> {
  try {
    return (await httpRequest(`${url}/settings`, { timeoutMs: 500 })).status === 200;
  } catch {
    return false;
  }
}

describe('process backend of the simulated real server', function () {
  this.timeout(60_000);
  let range: LoopbackRange;
  let cluster: Cluster;
  let backend: ProcessBackend;

  before(async function () {
    range = allocLoopbackRange();
    cluster = await startCluster({ ips: range.ips(1), names: ['ods'], flows: FLOW });
    backend = new ProcessBackend(cluster);
  });

  after(async function () {
    await cluster?.stopAll();
    range?.release();
  });

  it('suspend = SIGSTOP, resume = SIGCONT, and refuses the wrong state', async function () {
    const vm = backend.vm('ods');
    const pid = vm.pid!;
    await backend.suspend('ods');
    await waitFor(() => pidState(pid) === 'T', { timeoutMs: 10_000, what: 'ods stopped in /proc' });
    await assert.rejects(backend.suspend('ods'), /already suspended/);
    await backend.resume('ods');
    await waitFor(() => answers(vm.url), { timeoutMs: 15_000, what: 'ods answering after resume' });
    await assert.rejects(backend.resume('ods'), /not suspended/);
  });

  it('refuses to clone a running original', async function () {
    await assert.rejects(backend.clone('ods', 'od1', '52:54:00:00:00:01'), /it is running; shut it off first/);
    assert.ok(!backend.has('od1'));
  });

  it('shutdown = SIGTERM and the process is gone', async function () {
    const pid = backend.vm('ods').pid!;
    await backend.shutdown('ods');
    assert.ok(!pidAlive(pid));
    assert.strictEqual(backend.vm('ods').state, 'stopped');
    await assert.rejects(backend.shutdown('ods'), /not running/);
    await backend.destroy('ods'); // destroying a dead domain is a no-op
  });

  it('clone copies the user directory into a defined, not running VM with its own address', async function () {
    const src = backend.vm('ods');
    await backend.clone('ods', 'od1', '52:54:00:AB:CD:01');
    const od = backend.vm('od1');
    assert.strictEqual(od.state, 'defined');
    assert.strictEqual(od.pid, undefined);
    assert.strictEqual(od.mac, '52:54:00:ab:cd:01');
    assert.notStrictEqual(od.ip, src.ip);
    assert.notStrictEqual(od.userDir, src.userDir);
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(od.userDir, 'flows.json'), 'utf8')), FLOW);
    assert.ok(!fs.existsSync(path.join(od.userDir, 'node-red.log')), "the source's log was copied");
    await assert.rejects(backend.clone('ods', 'od1', '52:54:00:ab:cd:02'), /already exists/);
    await assert.rejects(backend.clone('ods', 'od2', 'not-a-mac'), /MAC/);
  });

  it('start spawns the clone on its own address with the copied flow; destroy = SIGKILL; remove deletes it', async function () {
    const od = backend.vm('od1');
    await backend.start('od1');
    assert.ok(od.pid !== undefined);
    await assert.rejects(backend.start('od1'), /already active/);
    await waitFor(() => answers(od.url), { timeoutMs: 30_000, what: `od1 admin API at ${od.url}` });
    const flows = JSON.parse((await httpRequest(`${od.url}/flows`)).body) as FlowNode[];
    assert.strictEqual(flows.find((n) => n.type === 'tab')?.label, 'original');
    assert.match(fs.readFileSync(path.join(od.userDir, 'settings.js'), 'utf8'), new RegExp(`"uiHost": "${od.ip.replace(/\./g, '\\.')}"`));

    const pid = od.pid!;
    await backend.destroy('od1');
    assert.ok(!pidAlive(pid));
    await backend.remove('od1');
    assert.ok(!fs.existsSync(od.userDir));
    assert.ok(!backend.has('od1'));
    await assert.rejects(backend.start('od1'), /no VM named "od1"/);
  });

  it('a domain can be defined without ever running, then started', async function () {
    const vm = await backend.define({ name: 'fresh', ip: range.ip(50) });
    assert.strictEqual(vm.state, 'defined');
    const ready = new ProcessBackend(cluster, { waitReady: true });
    await ready.start('fresh');
    assert.ok(await answers(vm.url));
    // destroy also ends a suspended domain (SIGKILL needs no SIGCONT).
    const pid = vm.pid!;
    await backend.suspend('fresh');
    await backend.destroy('fresh');
    assert.ok(!pidAlive(pid));
    assert.strictEqual(vm.state, 'stopped');
  });
});
