// The local cluster launcher against real Node-RED processes: each VM on its own loopback
// address, deploy through the admin API, freeze/thaw, kill/start, and nothing left running after
// stopAll or after a start that fails half-way.
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Cluster, FlowNode, packageRoot, startCluster, sweepOrphanedBaseDirs } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange, LoopbackRange, pickFreePort } from '../../harness/net';
import { pidAlive, pidState, pidsUsingDir } from '../../harness/procs';
import { waitFor } from '../../harness/wait';

function injectDebugFlow(label: string): FlowNode[] {
  return [
    { id: 'tab1', type: 'tab', label },
    { id: 'inj1', type: 'inject', z: 'tab1', name: 'tick', repeat: '', once: false, topic: '', payload: '', payloadType: 'date', wires: [['dbg1']] },
    { id: 'dbg1', type: 'debug', z: 'tab1', name: 'out', active: true, complete: 'payload', wires: [] },
  ];
}

/** Resolves to the error code of a request that could not be answered (ECONNREFUSED, timeout...). */
async function failure(url: string, timeoutMs: number): Promise<string> {
  try {
    const r = await httpRequest(url, { timeoutMs });
    return `answered ${r.status}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

describe('cluster launcher (real Node-RED processes)', function () {
  this.timeout(120_000);
  let range: LoopbackRange;
  let cluster: Cluster;

  before(async function () {
    range = allocLoopbackRange();
    cluster = await startCluster({ ips: range.ips(3), flows: (vm) => injectDebugFlow(`flow of ${vm.name}`) });
  });

  after(async function () {
    await cluster?.stopAll();
    range?.release();
  });

  it('starts each VM on its own address with the flow deployed', async function () {
    assert.deepStrictEqual(
      cluster.vms.map((v) => [v.name, v.ip, v.state]),
      range.ips(3).map((ip, i) => [`S${i + 1}`, ip, 'running']),
    );
    for (const vm of cluster.vms) {
      assert.strictEqual(vm.url, `http://${vm.ip}:${vm.uiPort}`);
      const r = await httpRequest(`${vm.url}/flows`);
      assert.strictEqual(r.status, 200);
      const tab = (JSON.parse(r.body) as FlowNode[]).find((n) => n.type === 'tab');
      assert.strictEqual(tab?.label, `flow of ${vm.name}`);
      assert.ok(fs.existsSync(path.join(vm.userDir, 'settings.js')));
      assert.match(cluster.logs(vm).nodeRed, /Server now running at/);
    }
    // Bound to its own address only: S1's port on S2's address is not S1.
    const [s1, s2] = cluster.vms;
    if (s1.uiPort !== s2.uiPort) assert.strictEqual(await failure(`http://${s2.ip}:${s1.uiPort}/settings`, 1000), 'ECONNREFUSED');
  });

  it('serves this package to Node-RED from the symlinked build', async function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { name: string; 'node-red': { nodes: Record<string, string> } };
    const r = await httpRequest(`${cluster.vms[0].url}/nodes`, { headers: { Accept: 'application/json' } });
    const ours = (JSON.parse(r.body) as Array<{ module: string; name: string; err?: unknown }>).filter((s) => s.module === pkg.name);
    assert.deepStrictEqual(ours.map((s) => s.name).sort(), Object.keys(pkg['node-red'].nodes).sort());
    // Loaded through the symlink: the nodes' own requires (lib/, ssh2...) resolve from the repository.
    for (const set of ours) assert.strictEqual(set.err, undefined, `${set.name}: ${JSON.stringify(set.err)}`);
  });

  it('deploys a new flow, with credentials stored encrypted', async function () {
    const vm = cluster.vms[1];
    const flows: FlowNode[] = [
      ...injectDebugFlow('redeployed'),
      { id: 'req1', type: 'http request', z: 'tab1', method: 'GET', url: 'http://127.0.0.1:1/', authType: 'basic', credentials: { user: 'u', password: 'secret-pw' }, wires: [[]] },
    ];
    await cluster.deploy(vm, flows);
    const got = JSON.parse((await httpRequest(`${vm.url}/flows`)).body) as FlowNode[];
    assert.strictEqual(got.find((n) => n.type === 'tab')?.label, 'redeployed');
    const cred = fs.readFileSync(path.join(vm.userDir, 'flows_cred.json'), 'utf8');
    assert.ok(!cred.includes('secret-pw'), 'credentials file holds the password in clear');
    await assert.rejects(cluster.deploy(vm, 'not flows' as unknown as FlowNode[]), /answered 400/);
  });

  it('freezes (SIGSTOP) and thaws (SIGCONT) a VM', async function () {
    const vm = cluster.vms[2];
    const pid = vm.pid!;
    await cluster.freeze(vm);
    assert.strictEqual(vm.state, 'frozen');
    await waitFor(() => pidState(pid) === 'T', { timeoutMs: 10_000, what: `${vm.name} stopped state in /proc` });
    // The kernel still accepts the connection (listen backlog) but nobody answers.
    assert.match(await failure(`${vm.url}/settings`, 500), /no answer within 500 ms/);
    await cluster.thaw(vm);
    assert.strictEqual(vm.state, 'running');
    assert.strictEqual((await httpRequest(`${vm.url}/settings`, { timeoutMs: 3000 })).status, 200);
  });

  it('kills a VM and starts it again with the same directory, address and port', async function () {
    const vm = cluster.vms[1];
    const { pid, uiPort, url } = vm;
    await cluster.kill(vm, 'SIGKILL');
    assert.strictEqual(vm.state, 'stopped');
    assert.strictEqual(vm.pid, undefined);
    assert.ok(!pidAlive(pid!), `pid ${pid} still alive after SIGKILL`);
    assert.strictEqual(await failure(`${url}/settings`, 1000), 'ECONNREFUSED');
    await assert.rejects(cluster.kill(vm), /not running/);

    await cluster.start(vm);
    assert.strictEqual(vm.state, 'running');
    assert.notStrictEqual(vm.pid, pid);
    assert.strictEqual(vm.uiPort, uiPort);
    const got = JSON.parse((await httpRequest(`${url}/flows`)).body) as FlowNode[];
    assert.strictEqual(got.find((n) => n.type === 'tab')?.label, 'redeployed', 'the deployed flow did not survive the restart');
    await assert.rejects(cluster.start(vm), /already running/);
  });

  it('chooses another port when its own was taken before the VM could bind it', async function () {
    const vm = await cluster.define({ name: 'S4', ip: range.ip(4) });
    const taken = vm.uiPort;
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(taken, vm.ip, resolve));
    try {
      await cluster.start(vm);
      assert.notStrictEqual(vm.uiPort, taken);
      assert.strictEqual((await httpRequest(`${vm.url}/settings`)).status, 200);
      assert.match(cluster.logs(vm).nodeRed, /port in use/);
    } finally {
      blocker.close();
    }
    await cluster.remove(vm);
    assert.ok(!fs.existsSync(vm.userDir));
  });

  it('stopAll leaves no process and no directory behind', async function () {
    const pids = cluster.vms.map((v) => v.pid!);
    // The check below can see them (Node-RED renames itself, so not by command line alone).
    assert.deepStrictEqual(pidsUsingDir(cluster.baseDir).sort(), [...pids].sort());
    await cluster.freeze(cluster.vms[0]); // a frozen VM must stop too
    await cluster.stopAll();
    for (const pid of pids) assert.ok(!pidAlive(pid), `pid ${pid} survived stopAll`);
    assert.deepStrictEqual(pidsUsingDir(cluster.baseDir), []);
    assert.ok(!fs.existsSync(cluster.baseDir), `${cluster.baseDir} not removed`);
    assert.deepStrictEqual(cluster.vms.map((v) => v.state), ['stopped', 'stopped', 'stopped']);
  });

  it('a start that fails half-way stops what it started', async function () {
    // S3's port is taken on S3's address by a listener of ours, so S3's Node-RED cannot bind.
    const r = allocLoopbackRange();
    const ips = r.ips(3);
    const ports = [await pickFreePort(ips[0]), await pickFreePort(ips[1]), await pickFreePort(ips[2])];
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(ports[2], ips[2], resolve));
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-launcher-fail-'));
    try {
      await assert.rejects(
        startCluster({ ips, uiPorts: ports, baseDir, parallel: 2, flows: injectDebugFlow('x') }),
        (err: Error) => {
          assert.match(err.message, /S3 exited while starting/);
          return true;
        },
      );
      assert.deepStrictEqual(pidsUsingDir(baseDir), []);
    } finally {
      blocker.close();
      for (const pid of pidsUsingDir(baseDir)) process.kill(pid, 'SIGKILL');
      fs.rmSync(baseDir, { recursive: true, force: true });
      r.release();
    }
  });

  it('VMs exit by themselves when the launcher dies by SIGKILL; a frozen one is swept later', async function () {
    const r = allocLoopbackRange();
    const launcher = path.join(__dirname, '../../harness/cluster/launcher.js');
    // The launcher in a child process: two VMs, the second frozen, then it prints what it started.
    const script = `require(${JSON.stringify(launcher)}).startCluster({ ips: ${JSON.stringify(r.ips(2))} })
      .then(async (c) => { await c.freeze(c.vms[1]); console.log(JSON.stringify({ baseDir: c.baseDir, pids: c.vms.map((v) => v.pid) })); },
        (e) => { console.error(e); process.exit(1); });`;
    const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let started: { baseDir: string; pids: number[] } | undefined;
    try {
      let out = '';
      parent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      started = await waitFor(() => (out.includes('}') ? (JSON.parse(out) as { baseDir: string; pids: number[] }) : false), {
        timeoutMs: 45_000,
        what: 'the launcher child process to print its VMs',
      });
      const [running, frozen] = started.pids;
      parent.kill('SIGKILL');
      await waitFor(() => !pidAlive(running), { timeoutMs: 20_000, what: `orphaned VM ${running} to exit by its watchdog` });
      assert.strictEqual(pidState(frozen), 'T', 'the frozen orphan should still be there (its watchdog cannot run)');
      assert.ok(fs.existsSync(started.baseDir));
      sweepOrphanedBaseDirs();
      await waitFor(() => !pidAlive(frozen), { timeoutMs: 20_000, what: `the sweep to kill frozen orphan ${frozen}` });
      assert.ok(!fs.existsSync(started.baseDir), 'the dead launcher\'s directory was not swept');
    } finally {
      parent.kill('SIGKILL');
      if (started) {
        for (const pid of pidsUsingDir(started.baseDir)) process.kill(pid, 'SIGKILL');
        fs.rmSync(started.baseDir, { recursive: true, force: true });
      }
      r.release();
    }
  });
});
