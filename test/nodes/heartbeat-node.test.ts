// p2p-heartbeat in a Node-RED runtime (node-red-node-test-helper) on a real p2p-store (S1), with
// two real ReplicatedStore peers (S2, S3) on their own loopback addresses: a three-member ring in
// which S1 watches S2 as P1 and S3 as P2. Short settings keep the tests quick.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import storeNode = require('../../nodes/p2p-store');
import heartbeatNode = require('../../nodes/p2p-heartbeat');
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';

helper.init(require.resolve('node-red'));

const SECRET = 'test-secret-heartbeat';
const A = '127.0.9.1';
const B = '127.0.9.2';
const C = '127.0.9.3';

describe('p2p-heartbeat node in Node-RED', function () {
  this.timeout(60_000);
  let dir: string;
  let port: number;
  let svcPort: number;
  let service: net.Server | undefined;
  const peers: ReplicatedStore[] = [];

  function startService(): Promise<void> {
    service = net.createServer((s) => s.destroy());
    return new Promise((resolve, reject) => {
      service!.once('error', reject);
      service!.listen(svcPort, B, () => resolve());
    });
  }
  function stopService(): Promise<void> {
    const s = service;
    service = undefined;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-heartbeat-'));
    port = await pickPortFreeOnAll([A, B, C]);
    svcPort = await pickPortFreeOnAll([B]);
    await new Promise<void>((resolve) => {
      helper.startServer(() => resolve());
    });
  });

  afterEach(async () => {
    await helper.unload();
    for (const p of peers.splice(0)) await p.stop().catch(() => undefined);
    await stopService();
    await new Promise<void>((resolve) => {
      helper.stopServer(() => resolve());
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const settings = { interval: 200, timeout: 100, reexamNetwork: 600, reexamService: 800, takeoverGrace: 300, settle: 100, cpuWait: 0 };

  function flow(extra: object = {}) {
    return [
      { id: 'f1', type: 'tab' },
      { id: 'store', z: 'f1', type: 'p2p-store', hostname: 'S1', address: A, realServer: 'RS1', services: '-', folder: path.join(dir, 'S1'), port, seeds: `${B} ${C}`, syncInterval: 500 },
      { id: 'hb', z: 'f1', type: 'p2p-heartbeat', store: 'store', ...settings, ...extra, wires: [['out']] },
      { id: 'out', z: 'f1', type: 'helper' },
    ];
  }

  async function peer(hostname: string, address: string, services: string): Promise<ReplicatedStore> {
    const p = new ReplicatedStore({
      identity: { hostname, address, realServer: 'RS2', services },
      folder: path.join(dir, hostname),
      port,
      secret: SECRET,
      seeds: [A],
      syncIntervalMs: 500,
    });
    peers.push(p);
    await p.start();
    return p;
  }

  /** S1 in Node-RED, S2 (with a tcp service) and S3 as plain stores; resolves once S1 watches both. */
  async function load(extra: object = {}) {
    await startService();
    await helper.load([storeNode, heartbeatNode], flow(extra), { store: { secret: SECRET } });
    const store = helper.getNode('store') as unknown as { files: ReplicatedStore };
    await waitFor(() => store.files.get('group', 'S1'), { what: 'S1 in its own group file', timeoutMs: 10_000 });
    const s2 = await peer('S2', B, `tcp:${svcPort}`);
    const s3 = await peer('S3', C, '-');
    await waitFor(() => store.files.records('group').length === 3, { what: 'a group of three on S1', timeoutMs: 10_000 });
    const hb = helper.getNode('hb');
    const out = helper.getNode('out');
    const ask = () =>
      new Promise<any>((resolve) => {
        out.once('input', resolve);
        hb.receive({ topic: 'status' });
      });
    await waitFor(async () => (await ask()).payload.watching.map((w: any) => `${w.priority} ${w.target}`).join(',') === 'P1 S2,P2 S3', {
      what: 'S1 watching S2 (P1) and S3 (P2)',
      timeoutMs: 10_000,
    });
    return { files: store.files, s2, s3, hb, out, ask };
  }

  function nextMsg(out: any, topic: string): Promise<any> {
    return new Promise((resolve) => {
      const on = (m: any) => {
        if (m.topic !== topic) return;
        resolve(m);
      };
      out.on('input', on);
    });
  }

  it('answers any input with what it watches', async () => {
    const { ask } = await load();
    // A probe times out after 100 ms here: on a loaded machine one may miss and make a target
    // suspect for a moment. Ask until both are ok (a deadline, not a speed claim).
    const m = await waitFor(
      async () => {
        const a = await ask();
        return a.payload.watching.every((w: any) => w.state === 'ok') ? a : undefined;
      },
      { what: 'both targets ok in the answer', timeoutMs: 10_000 },
    );
    assert.equal(m.payload.me, 'S1');
    assert.deepEqual(
      m.payload.watching.map((w: any) => [w.target, w.priority, w.state]),
      [
        ['S2', 'P1', 'ok'],
        ['S3', 'P2', 'ok'],
      ],
    );
    assert.equal(m.payload.settings.reexamNetworkMs, 600);
  });

  it("S2's manager stopped: a network failure msg after the re-examination, recorded on every peer", async () => {
    const { files, s2, s3, out } = await load();
    const failure = nextMsg(out, 'failure');
    const t0 = Date.now();
    await s2.stop();
    const m = await failure;
    const ms = Date.now() - t0;
    assert.equal(m.payload.target, 'S2');
    assert.equal(m.payload.kind, 'network');
    assert.equal(m.payload.priority, 'P1');
    assert.equal(m.payload.detectedBy, 'S1');
    assert.equal(m.payload.address, B);
    assert.equal(m.payload.realServer, 'RS2');
    assert.match(m.payload.reason, /ping: manager-not-answering/);
    assert.ok(m.payload.timings.elapsedMs >= 600, `elapsed ${m.payload.timings.elapsedMs}`);
    assert.ok(ms >= 600, `took ${ms} ms`);
    assert.deepEqual(files.get('problem', 'S2')!.slice(0, 5), ['S2', 'S1', 'network', 'confirmed', '-']);
    await waitFor(() => s3.get('problem', 'S2')?.join() === files.get('problem', 'S2')!.join(), { what: 'the problem record on S3', timeoutMs: 10_000 });
  });

  it("S2's service port closed: a service fault", async () => {
    const { out, files } = await load();
    const failure = nextMsg(out, 'failure');
    await stopService();
    const m = await failure;
    assert.equal(m.payload.target, 'S2');
    assert.equal(m.payload.kind, 'service');
    assert.equal(m.payload.timings.reexaminationMs, 800);
    assert.match(m.payload.reason, new RegExp(`tcp:${svcPort}: service-down`));
    assert.equal(files.get('problem', 'S2')![2], 'service');
  });

  it('a service down for less than the re-examination is recovered-by-itself', async () => {
    // A re-examination long enough that the service is back well within it even when this process
    // is descheduled between the two steps below (800 ms was the whole margin on a loaded machine).
    const { out, files } = await load({ reexamService: 5000 });
    const recovered = nextMsg(out, 'recovered-by-itself');
    let failed = false;
    out.on('input', (m: any) => {
      if (m.topic === 'failure') failed = true;
    });
    await stopService();
    await waitFor(() => files.get('problem', 'S2')?.[3] === 'reexamining', { what: 'S2 reexamining', timeoutMs: 10_000 });
    await startService();
    const m = await recovered;
    assert.equal(m.payload.target, 'S2');
    assert.equal(m.payload.kind, 'service');
    assert.equal(files.get('problem', 'S2')![3], 'cleared');
    assert.equal(failed, false);
  });

  it('refuses a timeout not shorter than the interval, and starts nothing', async () => {
    await helper.load([storeNode, heartbeatNode], flow({ interval: 200, timeout: 200 }), { store: { secret: SECRET } });
    const hb = helper.getNode('hb');
    const errors = helper
      .log()
      .args.filter((a: any[]) => a[0].level === helper.log().ERROR && a[0].id === hb.id)
      .map((a: any[]) => a[0].msg);
    assert.ok(errors.some((e: string) => /timeout \(200 ms\) must be shorter than the interval/.test(e)), JSON.stringify(errors));
    let answered = false;
    helper.getNode('out').on('input', () => (answered = true));
    hb.receive({});
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false);
  });
});
