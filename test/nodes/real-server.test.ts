// p2p-real-server and p2p-load-collector in node-red-node-test-helper, against the simulated
// real server (an SSH server on 127.0.5.x) and a real ReplicatedStore.
import * as assert from 'assert';
import * as fs from 'fs';
import helper from 'node-red-node-test-helper';
import * as os from 'os';
import * as path from 'path';
import { allocLoopbackRange, pickFreePort, type LoopbackRange } from '../../harness/net';
import { SimRealServer } from '../../harness/sim/sim-server';
import { waitFor as waitUntil } from '../../harness/wait';
import collectorNode = require('../../nodes/p2p-load-collector');
import realServerNode = require('../../nodes/p2p-real-server');
import storeNode = require('../../nodes/p2p-store');
import { sshKeyPair } from '../../harness/ssh-keys';

helper.init(require.resolve('node-red'));

const waitFor = (what: string, fn: () => boolean, timeoutMs: number) => waitUntil(fn, { what, timeoutMs, intervalMs: 20 });

describe('p2p-real-server and p2p-load-collector (sim real server)', function () {
  this.timeout(20000);
  const key = sshKeyPair();
  let sim: SimRealServer;
  let range: LoopbackRange;
  let rsAddress: string;
  before(() => {
    range = allocLoopbackRange();
    rsAddress = range.ip(1);
  });
  after(() => range.release());

  beforeEach(async () => {
    sim = new SimRealServer({ address: rsAddress, authorizedKeys: [key.public], cpus: 4 });
    await sim.start();
    await new Promise<void>((done) => {
      helper.startServer(done);
    });
  });
  const folders: string[] = [];
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((done) => {
      helper.stopServer(done);
    });
    await sim.stop();
    for (const f of folders.splice(0)) fs.rmSync(f, { recursive: true, force: true });
  });

  const rsConfig = (over: Record<string, unknown> = {}) => ({
    id: 'rs1',
    type: 'p2p-real-server',
    name: 'RS1',
    host: sim.address,
    port: sim.port,
    user: 'root',
    fingerprint: sim.fingerprint,
    connectTimeout: 2000,
    commandTimeout: 2000,
    ...over,
  });

  it('connects to the real server, exposes the driver and fans its status out', async () => {
    await helper.load([realServerNode], [rsConfig()], { rs1: { privateKey: key.private } });
    const rs = helper.getNode('rs1');
    await waitFor('connected', () => rs.connection.state === 'connected', 5000);
    sim.addDomain('S2', 'running');
    assert.deepStrictEqual(await rs.driver.listDomains(), [{ id: 1, name: 'S2', state: 'running' }]);
    const seen: { fill: string; text: string }[] = [];
    const user = { status: (s: { fill: string; text: string }) => seen.push(s) };
    rs.register(user);
    assert.deepStrictEqual(seen[0], { fill: 'green', shape: 'dot', text: 'connected' });
    // The host goes away: every registered node turns red with the reason.
    await sim.stop();
    await waitFor('red status', () => seen.some((s) => s.fill === 'red'), 5000);
    assert.match(seen.find((s) => s.fill === 'red')!.text, /unreachable/);
    rs.deregister(user);
    const n = seen.length;
    // Back on the same address and port (a new host key: the sim makes one per start, so pin it).
    sim = new SimRealServer({ address: rsAddress, port: sim.port, authorizedKeys: [key.public] });
    await sim.start();
    assert.strictEqual(seen.length, n, 'a deregistered node gets no more status');
  });

  it('reconnects with backoff after the host comes back, and refuses a host with another key', async () => {
    await helper.load([realServerNode], [rsConfig()], { rs1: { privateKey: key.private } });
    const rs = helper.getNode('rs1');
    await waitFor('connected', () => rs.connection.state === 'connected', 5000);
    const { port, hostKey } = sim;
    await sim.stop();
    await waitFor('disconnected', () => rs.connection.state === 'disconnected', 5000);
    // The same host (same key) comes back on the same port: the backoff loop reconnects by itself.
    sim = new SimRealServer({ address: rsAddress, port, authorizedKeys: [key.public], hostKey });
    await sim.start();
    await waitFor('reconnected', () => rs.connection.state === 'connected', 12000);
    assert.deepStrictEqual(await rs.driver.listDomains(), []);
    // Another machine answers on that address: the pinned key refuses it.
    await sim.stop();
    sim = new SimRealServer({ address: rsAddress, port, authorizedKeys: [key.public] });
    await sim.start();
    await waitFor('host key refused', () => rs.connection.lastError?.kind === 'host-key-mismatch', 12000);
    assert.strictEqual(sim.execCount, 0);
  });

  it('closes the SSH connection on redeploy within 15 s', async () => {
    await helper.load([realServerNode], [rsConfig()], { rs1: { privateKey: key.private } });
    const rs = helper.getNode('rs1');
    await waitFor('connected', () => rs.connection.state === 'connected', 5000);
    assert.strictEqual(sim.connectionCount, 1);
    const t0 = Date.now();
    await helper.unload();
    assert.ok(Date.now() - t0 < 15000);
    await waitFor('sim sees the close', () => sim.connectionCount === 0, 5000);
    assert.strictEqual(rs.connection.state, 'closed');
  });

  it('refuses a bad configuration with a clear error and connects nowhere', async () => {
    await helper.load([realServerNode], [rsConfig({ host: 'kvm1; rm -rf /' })], { rs1: { privateKey: key.private } });
    const rs = helper.getNode('rs1');
    assert.match(rs.failure, /hostname "kvm1; rm -rf \/" refused/);
    assert.strictEqual(rs.driver, undefined);
    assert.strictEqual(sim.execCount, 0);
  });

  it('reads the private key from a key file or an environment variable; a missing file is a clear error', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-key-'));
    folders.push(dir);
    const keyFile = path.join(dir, 'rs1_key');
    fs.writeFileSync(keyFile, key.private, { mode: 0o600 });
    await helper.load([realServerNode], [rsConfig({ keyFile })], {});
    let rs = helper.getNode('rs1');
    await waitFor('connected with the key file', () => rs.connection?.state === 'connected', 5000);
    assert.strictEqual(rs.keySource, 'file');
    await helper.unload();

    process.env.P2P_TEST_RS1_KEY = key.private.replace(/\n/g, '\\n');
    try {
      await helper.load([realServerNode], [rsConfig({ keyEnv: 'P2P_TEST_RS1_KEY', host: '${P2P_TEST_RS1_HOST}' })], {});
      rs = helper.getNode('rs1');
      assert.match(rs.failure, /P2P_TEST_RS1_HOST/, 'an unset variable in the host is named');
      await helper.unload();
      process.env.P2P_TEST_RS1_HOST = sim.address;
      await helper.load([realServerNode], [rsConfig({ keyEnv: 'P2P_TEST_RS1_KEY', host: '${P2P_TEST_RS1_HOST}' })], {});
      rs = helper.getNode('rs1');
      await waitFor('connected with the key variable', () => rs.connection?.state === 'connected', 5000);
      assert.strictEqual(rs.keySource, 'env');
      await helper.unload();
    } finally {
      delete process.env.P2P_TEST_RS1_KEY;
      delete process.env.P2P_TEST_RS1_HOST;
    }

    await helper.load([realServerNode], [rsConfig({ keyFile: path.join(dir, 'missing') })], {});
    rs = helper.getNode('rs1');
    assert.match(rs.failure, /missing.*ENOENT/);
    assert.ok(!String(rs.failure).includes('PRIVATE KEY'));
    assert.strictEqual(rs.driver, undefined);
    assert.strictEqual(sim.execCount, 0);
  });

  it('load collector with its own real server reads only that one and keeps its own status; one without warns and reads all', async () => {
    const storeAddress = range.ip(12);
    const storePort = await pickFreePort(storeAddress);
    const deadPort = await pickFreePort(rsAddress);
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-hv-store-'));
    folders.push(folder);
    sim.addDomain('S1', 'running');
    sim.load = [2.0, 0.5, 0.5];
    const flow = [
      rsConfig(),
      { ...rsConfig({ id: 'rs2', name: 'RS2', port: deadPort, connectTimeout: 500 }) },
      { id: 'st', type: 'p2p-store', hostname: 'S1', address: storeAddress, realServer: 'RS1', services: '-', folder, port: storePort, seeds: '' },
      { id: 'lc1', type: 'p2p-load-collector', store: 'st', realServer: 'rs1', interval: 3600, threshold: 0.1, wires: [['out']] },
      { id: 'lcAll', type: 'p2p-load-collector', store: 'st', interval: 3600, threshold: 0.1, wires: [[]] },
      { id: 'out', type: 'helper' },
    ];
    await helper.load([realServerNode, collectorNode, storeNode], flow, {
      rs1: { privateKey: key.private },
      rs2: { privateKey: key.private },
      st: { secret: 'node-test-secret' },
    });
    const st = helper.getNode('st');
    await waitFor('store started', () => st.storeStatus().state !== 'starting', 10000);
    const lc1 = helper.getNode('lc1');
    const statuses: { fill: string; text: string }[] = [];
    lc1.on('call:status', (call: { args: [{ fill: string; text: string }] }) => statuses.push(call.args[0]));
    const out = helper.getNode('out');
    const got = new Promise<any>((resolve) => out.once('input', (m: any) => resolve(m.payload)));
    lc1.receive({ payload: 'now' });
    const r = await got;
    assert.deepStrictEqual(r.readings.map((x: any) => x.realServer), ['RS1']);
    await waitFor('own status', () => statuses.some((s) => /^RS1: load 0\.50, 1 VMs/.test(s.text)), 5000);
    // Whatever the store says next (a change of its status) does not replace the collector's line.
    const last = statuses[statuses.length - 1];
    assert.match(last.text, /^RS1: load/);
    const warnings = helper.log().args.filter((a: any[]) => a[0]?.level === helper.log().WARN && a[0]?.id === 'lcAll');
    assert.ok(warnings.some((a: any[]) => /no real server set/.test(a[0].msg)), 'the collector without a real server warns');
  });

  it('load collector: writes realserver records, only on a change beyond the threshold, and marks down', async () => {
    const storeAddress = range.ip(11);
    const storePort = await pickFreePort(storeAddress);
    const deadPort = await pickFreePort(rsAddress);
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-hv-store-'));
    folders.push(folder);
    sim.addDomain('S1', 'running');
    sim.addDomain('S2', 'running');
    sim.addDomain('od1', 'paused');
    sim.load = [1.0, 0.5, 0.5];
    const flow = [
      rsConfig(),
      { ...rsConfig({ id: 'rs2', name: 'RS2', port: deadPort, connectTimeout: 500 }) },
      { id: 'st', type: 'p2p-store', hostname: 'S1', address: storeAddress, realServer: 'RS1', services: '-', folder, port: storePort, seeds: '' },
      { id: 'lc', type: 'p2p-load-collector', store: 'st', interval: 3600, threshold: 0.1, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ];
    await helper.load([realServerNode, collectorNode, storeNode], flow, {
      rs1: { privateKey: key.private },
      rs2: { privateKey: key.private },
      st: { secret: 'node-test-secret' },
    });
    const st = helper.getNode('st');
    await waitFor('store started', () => st.storeStatus().state !== 'starting', 10000);
    assert.notStrictEqual(st.storeStatus().state, 'error', st.storeStatus().text);
    const lc = helper.getNode('lc');
    const out = helper.getNode('out');
    // The interval's own round also sends (when it edited): wait for the answer to OUR message.
    let n = 0;
    const roundTrip = () =>
      new Promise<any>((resolve) => {
        const id = `probe-${++n}`;
        const onInput = (msg: any) => {
          if (msg._msgid !== id) return;
          out.off('input', onInput);
          resolve(msg.payload);
        };
        out.on('input', onInput);
        lc.receive({ _msgid: id, payload: 'now' });
      });
    // The first four fields (the capacity figures that follow are tested in test/unit/load-capacity).
    const rec = (rs: string) => st.files.get('realserver', rs)?.slice(0, 4);
    // The first interval round may already have run; either way the records are there after one more.
    await roundTrip();
    assert.deepStrictEqual(rec('RS1'), ['RS1', '0.25', '2', 'up']);
    assert.deepStrictEqual(rec('RS2'), ['RS2', '0.00', '0', 'down']);
    sim.load = [1.2, 0.5, 0.5]; // 0.30 per CPU: below the threshold
    let r = await roundTrip();
    assert.deepStrictEqual(r.edits, []);
    assert.deepStrictEqual(rec('RS1'), ['RS1', '0.25', '2', 'up']);
    sim.load = [2.0, 0.5, 0.5]; // 0.50 per CPU
    r = await roundTrip();
    assert.deepStrictEqual(
      r.edits.map((e: any) => [e.op, e.before.slice(0, 4), e.record.slice(0, 4)]),
      [['Mod', ['RS1', '0.25', '2', 'up'], ['RS1', '0.50', '2', 'up']]],
    );
    assert.strictEqual(r.edits[0].record.length, 8, 'with free memory, free vCPUs, their time and the VM sizes');
    // The sim's two running domains, as virsh dominfo gives their size (64 MiB, 1 vCPU each).
    assert.match(r.edits[0].record[7], /^\S+:64\/1 \S+:64\/1$/);
    await sim.stop();
    r = await roundTrip();
    assert.deepStrictEqual(rec('RS1'), ['RS1', '0.50', '2', 'down']);
    assert.strictEqual(r.readings.find((x: any) => x.realServer === 'RS1').ok, false);
    sim = new SimRealServer({ address: rsAddress, authorizedKeys: [key.public] }); // for afterEach
    await sim.start();
  });
});
