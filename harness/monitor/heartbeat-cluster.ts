// A loopback cluster of real Node-RED processes, each running p2p-store + p2p-heartbeat, for the
// heartbeat's cluster tests and its benchmark (bench/detect.ts). Every VM has its own 127.A.B.n
// address (harness/net.ts), a tcp service on that address (served by this process, so a test can
// stop "S2's service port only"), and an HTTP endpoint to edit the files through p2p-sem-send.
// The heartbeat's messages are posted to a collector in this process, stamped on arrival.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import { Cluster, FlowNode, startCluster, Vm } from '../cluster/launcher';
import { httpRequest } from '../http';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../net';
import { sleep, waitFor } from '../wait';
import { parseFile, RecordFields } from '../../lib/records/files';

export interface HeartbeatEvent {
  vm: string;
  topic: string;
  payload: any;
  /** When this process received it (ms since epoch). */
  at: number;
}

export interface HeartbeatClusterOptions {
  count?: number;
  /** p2p-heartbeat node settings (interval, timeout, reexamNetwork, ...); defaults are the node's. */
  heartbeat?: Record<string, unknown>;
  keepDirs?: boolean;
}

const SECRET = 'cluster-test-secret';

type Service = { server: net.Server; sockets: Set<net.Socket> };

export class HeartbeatCluster {
  private busy: ChildProcess[] = [];

  private constructor(
    readonly events: HeartbeatEvent[],
    private readonly services: Map<string, Service>,
    readonly cluster: Cluster,
    readonly range: LoopbackRange,
    readonly semPort: number,
    readonly svcPort: number,
    private readonly collector: http.Server,
  ) {}

  static async start(opts: HeartbeatClusterOptions = {}): Promise<HeartbeatCluster> {
    const count = opts.count ?? 6;
    const range = allocLoopbackRange();
    const ips = range.ips(count);
    const collectorIp = range.ip(254);
    const events: HeartbeatEvent[] = [];
    const collector = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<HeartbeatEvent, 'at'>;
          events.push({ ...m, at: Date.now() });
        } catch {
          /* not from our flow */
        }
        res.end('ok');
      });
    });
    let semPort = 0;
    let svcPort = 0;
    let cluster: Cluster | undefined;
    try {
      const collectorPort = await pickPortFreeOnAll([collectorIp]);
      await new Promise<void>((resolve, reject) => {
        collector.once('error', reject);
        collector.listen(collectorPort, collectorIp, () => resolve());
      });
      semPort = await pickPortFreeOnAll(ips);
      svcPort = await pickPortFreeOnAll(ips);
      const names = ips.map((_, i) => `S${i + 1}`);
      const collectUrl = `http://${collectorIp}:${collectorPort}/event`;
      const flows = (vm: Vm): FlowNode[] => flowOf(vm, names, ips, semPort, svcPort, collectUrl, opts.heartbeat ?? {});
      const services = new Map<string, Service>();
      // The services listen before the VMs start, so the first checks find them.
      for (const [i, ip] of ips.entries()) services.set(names[i], await serve(ip, svcPort));
      try {
        cluster = await startCluster({ ips, flows, keepDirs: opts.keepDirs, settings: { httpNodeRoot: '/' } });
      } catch (e) {
        for (const s of services.values()) await closeService(s);
        throw e;
      }
      const out = new HeartbeatCluster(events, services, cluster, range, semPort, svcPort, collector);
      await out.waitConverged(60_000);
      return out;
    } catch (e) {
      await cluster?.stopAll();
      await new Promise<void>((r) => collector.close(() => r()));
      range.release();
      throw e;
    }
  }

  get names(): string[] {
    return this.cluster.vms.map((v) => v.name);
  }

  vm(name: string): Vm {
    return this.cluster.vm(name);
  }

  /** The records of one management file on one VM, as its text file on disk says. */
  file(name: string, file: 'group' | 'problem'): RecordFields[] {
    const p = path.join(this.vm(name).userDir, 'p2p-ha', file);
    try {
      return parseFile(file, fs.readFileSync(p, 'utf8'));
    } catch {
      return [];
    }
  }

  /** Wait until every running VM has every VM in its group file. */
  async waitConverged(timeoutMs = 30_000): Promise<void> {
    const n = this.cluster.vms.length;
    await waitFor(() => this.running().every((v) => this.file(v, 'group').length === n), {
      what: `a group of ${n} on every running VM`,
      timeoutMs,
      intervalMs: 200,
    });
  }

  running(): string[] {
    return this.cluster.vms.filter((v) => v.state === 'running').map((v) => v.name);
  }

  failures(): HeartbeatEvent[] {
    return this.events.filter((e) => e.topic === 'failure');
  }

  /** What a VM's heartbeat watches (its answer to an input msg). */
  async watching(name: string): Promise<any> {
    const r = await httpRequest(`${this.vm(name).url}/p2p-test/heartbeat`, { timeoutMs: 3000 });
    return JSON.parse(r.body);
  }

  /** Apply an edit through a VM's p2p-sem-send (POST /p2p-test/edit). */
  async edit(via: string, edit: object): Promise<void> {
    const r = await httpRequest(`${this.vm(via).url}/p2p-test/edit`, { method: 'POST', body: edit, timeoutMs: 5000 });
    if (r.status !== 200) throw new Error(`edit through ${via} refused: ${r.status} ${r.body}`);
  }

  /** Remove every problem record (through a running VM), so every heartbeat watches afresh. */
  async clearProblems(): Promise<void> {
    // A heartbeat that was watching a restarting VM may record one more suspicion (then cleared)
    // while this runs: delete again until the files stay empty.
    let last = '';
    for (let round = 0; round < 5; round++) {
      const via = this.running()[0];
      for (const rec of this.file(via, 'problem')) {
        await this.edit(via, { file: 'problem', op: 'Del', record: rec }).catch(() => undefined);
      }
      try {
        await waitFor(() => this.running().every((v) => this.file(v, 'problem').length === 0), {
          what: 'empty problem files everywhere',
          timeoutMs: 3000,
        });
        await sleep(300);
        if (this.running().every((v) => this.file(v, 'problem').length === 0)) return;
      } catch {
        /* another round */
      }
      last = this.running()
        .map((v) => `${v}: ${JSON.stringify(this.file(v, 'problem'))}`)
        .join('\n');
    }
    throw new Error(`the problem files would not stay empty:\n${last}`);
  }

  /** Wait until a (re)started VM's store answers its ping and its heartbeat answers. */
  async waitReady(name: string, timeoutMs = 30_000): Promise<void> {
    const vm = this.vm(name);
    await waitFor(
      async () => {
        const ping = await httpRequest(`http://${vm.ip}:${this.semPort}/p2p/ping`, { timeoutMs: 1000 });
        if (ping.status !== 200) return false;
        return (await this.watching(name)).me === name;
      },
      { what: `${name} ready (store ping and heartbeat)`, timeoutMs, intervalMs: 100 },
    );
  }

  async stopService(name: string): Promise<void> {
    const s = this.services.get(name);
    if (s) await closeService(s);
    this.services.delete(name);
  }

  async startService(name: string): Promise<void> {
    if (this.services.has(name)) return;
    this.services.set(name, await serve(this.vm(name).ip, this.svcPort));
  }

  /** Start `n` processes that each keep one CPU busy; stopBusy() (or stop()) ends them. */
  startBusy(n: number): void {
    for (let i = 0; i < n; i++) {
      const child = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
      this.busy.push(child);
    }
  }

  async stopBusy(): Promise<void> {
    const all = this.busy;
    this.busy = [];
    await Promise.all(
      all.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
  }

  async stop(): Promise<void> {
    await this.stopBusy();
    await this.cluster.stopAll();
    for (const s of this.services.values()) await closeService(s);
    this.services.clear();
    await new Promise<void>((r) => this.collector.close(() => r()));
    this.range.release();
  }
}

/** A tcp service that keeps connections open (as a real one does) until it is stopped. */
function serve(ip: string, port: number): Promise<Service> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve({ server, sockets }));
  });
}

/** Stop a service as its process dying would: no more connections, the open ones closed. */
function closeService(s: Service): Promise<void> {
  for (const sock of s.sockets) sock.destroy();
  return new Promise((r) => s.server.close(() => r()));
}

function flowOf(
  vm: Vm,
  names: string[],
  ips: string[],
  semPort: number,
  svcPort: number,
  collectUrl: string,
  heartbeat: Record<string, unknown>,
): FlowNode[] {
  const i = names.indexOf(vm.name);
  return [
    { id: 'tab', type: 'tab', label: `heartbeat ${vm.name}` },
    {
      id: 'store',
      type: 'p2p-store',
      hostname: vm.name,
      address: vm.ip,
      realServer: i < names.length / 2 ? 'RS1' : 'RS2',
      services: `tcp:${svcPort}`,
      folder: '',
      port: semPort,
      seeds: ips.filter((ip) => ip !== vm.ip).join(' '),
      syncInterval: 1000,
      credentials: { secret: SECRET },
    },
    { id: 'hb', z: 'tab', type: 'p2p-heartbeat', store: 'store', ...heartbeat, wires: [['route']] },
    // GET /p2p-test/heartbeat asks the heartbeat what it watches; its answer goes back as the reply.
    { id: 'ask-in', z: 'tab', type: 'http in', url: '/p2p-test/heartbeat', method: 'get', wires: [['hb']] },
    {
      id: 'route',
      z: 'tab',
      type: 'function',
      func: 'return msg.res ? [null, msg] : [msg, null];',
      outputs: 2,
      wires: [['fmt'], ['ask-out']],
    },
    { id: 'ask-out', z: 'tab', type: 'http response', statusCode: '200', wires: [] },
    {
      id: 'fmt',
      z: 'tab',
      type: 'function',
      func: `msg.payload = { vm: ${JSON.stringify(vm.name)}, topic: msg.topic, payload: msg.payload };\nmsg.headers = { 'content-type': 'application/json' };\nreturn msg;`,
      outputs: 1,
      wires: [['post']],
    },
    { id: 'post', z: 'tab', type: 'http request', method: 'POST', ret: 'txt', url: collectUrl, paytoqs: 'ignore', wires: [[]] },
    { id: 'edit-in', z: 'tab', type: 'http in', url: '/p2p-test/edit', method: 'post', wires: [['send']] },
    { id: 'send', z: 'tab', type: 'p2p-sem-send', store: 'store', wires: [['edit-ok']] },
    { id: 'edit-ok', z: 'tab', type: 'http response', statusCode: '200', wires: [] },
    { id: 'catch', z: 'tab', type: 'catch', scope: ['send'], wires: [['edit-err']] },
    {
      id: 'edit-err',
      z: 'tab',
      type: 'function',
      func: 'msg.statusCode = 400;\nmsg.payload = String(msg.error && msg.error.message);\nreturn msg;',
      outputs: 1,
      wires: [['edit-bad']],
    },
    { id: 'edit-bad', z: 'tab', type: 'http response', wires: [] },
  ];
}
