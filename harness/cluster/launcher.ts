// The local cluster launcher: N real Node-RED 4.1 processes on loopback, one per simulated VM.
// Used by the system and cluster tests, the benchmarks and the demo.
//
// API
//   startCluster(opts?: ClusterOptions): Promise<Cluster>
//     Starts the VMs (bounded parallelism, opts.parallel, default 3; see below), waits
//     until each admin API answers (deadline opts.startTimeoutMs per VM), deploys opts.flows to
//     each (POST /flows, full deployment), and resolves with the Cluster. On any failure every
//     process it started is stopped and the temp directories removed before it rejects.
//   ClusterOptions (all optional):
//     count (3) | names (S1..Sn) | ips (ipPrefix.1..n, ipPrefix default "127.0.1")
//     uiPorts            fixed ports per VM (default: a free port on each VM's own address)
//     flows              FlowNode[] or (vm) => FlowNode[]; credentials go inside node objects
//     parallel (3)       how many VMs boot at once
//     startTimeoutMs (60000), stopTimeoutMs (5000)
//     baseDir            where the user directories go (default a fresh temp dir, removed by stopAll)
//     keepDirs (false)   keep the user directories after stopAll (to read logs after a failure)
//     settings           extra Node-RED settings merged into each settings file (JSON values only)
//     credentialSecret   (default random, shared by the cluster so a cloned userDir still decrypts)
//     installPackage (true)  symlink userDir/node_modules/@p2p-ha/node-red-server-manager -> repo root
//     exitWithParent (true)  each Node-RED exits by itself if this process dies (even by SIGKILL)
//     env                extra environment for the Node-RED processes
//     vmEnv(vm)          extra environment for one VM's process (e.g. its P2P_HOSTNAME), over env
//   Cluster:
//     vms: Vm[]  each {name, ip, uiPort, url, userDir, pid, state, mac?}
//     vm(nameOrVm): Vm
//     deploy(vm, flows, {waitStarted = true}): POST /flows (full); resolves once Node-RED has
//       started the new flows (it answers the POST before starting them)
//     kill(vm, signal = 'SIGKILL'): sends the signal; for SIGKILL waits until the process is gone
//     stop(vm): SIGTERM (with SIGCONT if frozen), SIGKILL after stopTimeoutMs; waits for the exit
//     start(vm, {wait = true}): spawns again with the same userDir, address and port; waits for the
//       admin API unless wait is false. Also starts a VM that was only defined.
//     freeze(vm) / thaw(vm): SIGSTOP / SIGCONT
//     logs(vm): {nodeRed, stdout, stderr} — the Node-RED log file and the captured streams
//     define({name, ip?, uiPort?}): a new VM with its user directory, not running
//     clone(source, {name, ip?, uiPort?}): a new, not running VM whose user directory is a copy of
//       source's (flows, credentials, context); its settings are rewritten at its first start
//     remove(vm): stops it if running and deletes its user directory
//     stopAll(): stops every VM (in parallel), then removes baseDir unless keepDirs. Idempotent.
//
// Nothing outlives the launcher's process: stopAll, exit and signal handlers (SIGINT, SIGTERM,
// SIGHUP) SIGKILL every VM; if this process is SIGKILLed, each VM's settings.js watchdog sees its
// parent gone (/proc/self/stat) within a second and exits. Limit: a VM frozen (SIGSTOP) at that
// moment cannot run its watchdog and stays stopped until the next startCluster (or
// sweepOrphanedBaseDirs()) kills it and removes the dead launcher's temp directory.
//
// Helpers beside it: harness/wait.ts (waitFor), harness/net.ts (allocLoopbackRange,
// freeLoopbackIp, pickFreePort, pickPortFreeOnAll), harness/http.ts, harness/procs.ts.
//
// Files in each user directory: settings.js (rewritten at every start), flows.json,
// node-red.log (Node-RED's own log, one line per entry), stdout.log, stderr.log.
//
// Start times (bench/cluster-start.ts; 2 cores shared with other engineers' builds and tests):
//   one VM, start to admin API answering + one deploy: 1.5-1.9 s on a quiet machine (2.3 s median
//   under load ~9). Each boot costs 1.2-1.8 s of CPU (more when many boot at once): ~0.5 s to
//   Node-RED's first log line, ~1 s loading the core palette; it is CPU-bound.
//   six VMs: one at a time 10-15 s quiet / 20 s loaded; two at a time 6.8-8.7 s quiet / 10-27 s
//   loaded; three 6.3-10 s / 9.5-21 s; six 4.7-9.3 s / 7.5-28 s. Medians under load: 20.5, 22.4,
//   13.1, 12.0 s. The spread between runs exceeds the differences: the machine's other users
//   dominate. More parallelism wins under load (the scheduler shares CPU per process, so more
//   booting processes get a bigger share), at the cost of a memory spike (~110 MB each) and of
//   the other users' time; 3 is the default as the compromise.
//   UNUSED_CORE_NODES (below) as settings.nodesExcludes cuts a boot's CPU by ~20% (1.0-1.1 s).
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { httpRequest } from '../http';
import { pickFreePort } from '../net';
import { pidState, pidsUsingDir } from '../procs';
import { waitFor } from '../wait';

export interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

export type VmState = 'defined' | 'starting' | 'running' | 'frozen' | 'stopping' | 'stopped';

export interface Vm {
  readonly name: string;
  readonly ip: string;
  readonly uiPort: number;
  /** http://ip:uiPort (no trailing slash) */
  readonly url: string;
  readonly userDir: string;
  /** The running process's pid, undefined when not running. */
  readonly pid: number | undefined;
  readonly state: VmState;
  /** Set by clone (the simulated real server's MAC for the domain). */
  mac?: string;
}

export interface VmSpec {
  name: string;
  ip?: string;
  uiPort?: number;
}

export interface ClusterOptions {
  count?: number;
  names?: string[];
  ips?: string[];
  ipPrefix?: string;
  uiPorts?: number[];
  flows?: FlowNode[] | ((vm: Vm) => FlowNode[]);
  parallel?: number;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  baseDir?: string;
  keepDirs?: boolean;
  settings?: Record<string, unknown>;
  credentialSecret?: string;
  installPackage?: boolean;
  exitWithParent?: boolean;
  env?: NodeJS.ProcessEnv;
  vmEnv?: (vm: Vm) => NodeJS.ProcessEnv;
}

/**
 * Core node files a simulated VM's flows do not need (parsers, MQTT, websocket, file, exec...):
 * pass as `settings: { nodesExcludes: UNUSED_CORE_NODES }` to boot ~20% faster. Keeps inject,
 * debug, change, switch, catch, status, link, complete, delay, trigger, http in, tcp, tls.
 */
export const UNUSED_CORE_NODES: readonly string[] = [
  '10-mqtt.js', '22-websocket.js', '70-HTML.js', '70-XML.js', '70-YAML.js', '70-CSV.js',
  '06-httpproxy.js', '23-watch.js', '10-file.js', '90-exec.js', '32-udp.js', '80-template.js',
];

export interface VmLogs {
  nodeRed: string;
  stdout: string;
  stderr: string;
}

const PACKAGE_NAME = '@p2p-ha/node-red-server-manager';

/** The repository root: the nearest folder above this file whose package.json is ours. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === PACKAGE_NAME) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json named ${PACKAGE_NAME} above ${__dirname}`);
    dir = up;
  }
}

/** Node-RED's red.js as installed for this repository (node-red ~4.1). */
export function nodeRedScript(root = packageRoot()): string {
  return require.resolve('node-red/red.js', { paths: [root] });
}

// ---- processes that must not outlive this one ---------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const dirsToRemove = new Set<string>();
let hooksInstalled = false;

function killAllNow(): void {
  for (const child of liveChildren) {
    try {
      // SIGKILL also ends a SIGSTOPped process.
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveChildren.clear();
  for (const dir of dirsToRemove) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort at exit */
    }
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllNow();
      // Keep the default behaviour (die by this signal) unless someone else handles it too.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

// ---- settings file ------------------------------------------------------------------------------

function settingsSource(base: Record<string, unknown>): string {
  // The log handler and the parent watchdog are code, so the file is JS around a JSON object.
  return `// Written by harness/cluster/launcher.ts at each start of this VM; edits are lost.
'use strict';
const fs = require('fs');
const path = require('path');
const logFile = path.join(__dirname, 'node-red.log');
const LEVELS = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace', 98: 'audit', 99: 'metric' };
function text(v) {
  if (v instanceof Error) return v.stack || v.message;
  return typeof v === 'string' ? v : JSON.stringify(v);
}
// Exit when the launcher that spawned this process is gone (even killed with SIGKILL), so a
// crashed test never leaves Node-RED processes behind. The parent pid is read from /proc because
// process.ppid is fixed at start in Node 20.
const parent = Number(process.env.P2P_HA_LAUNCHER_PID || 0);
if (parent > 0) {
  setInterval(() => {
    let ppid = -1;
    try { ppid = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[1]); } catch (e) {}
    if (ppid !== parent) process.exit(3);
  }, 1000).unref();
}
module.exports = Object.assign(${JSON.stringify(base, null, 2)}, {
  logging: {
    console: { level: 'info', metrics: false, audit: false },
    file: {
      level: 'info', metrics: false, audit: false,
      handler: function () {
        return function (m) {
          const where = m.type ? '[' + m.type + (m.name ? ':' + m.name : '') + '] ' : '';
          const line = new Date(m.timestamp || Date.now()).toISOString() + ' [' + (LEVELS[m.level] || m.level) + '] ' + where + text(m.msg) + '\\n';
          try { fs.appendFileSync(logFile, line); } catch (e) {}
        };
      },
    },
  },
});
`;
}

// ---- the cluster --------------------------------------------------------------------------------

class VmProc implements Vm {
  pid: number | undefined;
  state: VmState = 'defined';
  mac?: string;
  child: ChildProcess | undefined;
  exited: Promise<void> = Promise.resolve();
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The port was chosen by the launcher (so it may choose another if someone takes it). */
  autoPort: boolean;

  constructor(
    readonly name: string,
    readonly ip: string,
    public uiPort: number,
    readonly userDir: string,
    autoPort: boolean,
  ) {
    this.autoPort = autoPort;
  }

  get url(): string {
    return `http://${this.ip}:${this.uiPort}`;
  }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const IPV4_LOOPBACK_RE = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function checkSpec(name: string, ip: string): void {
  if (!NAME_RE.test(name)) throw new Error(`VM name ${JSON.stringify(name)} is not [A-Za-z0-9_.-], 1-63 characters`);
  const m = IPV4_LOOPBACK_RE.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) {
    // Only loopback: tests must never send traffic off this machine.
    throw new Error(`VM ${name}: address ${JSON.stringify(ip)} is not a 127.x.y.z loopback address`);
  }
}

export class Cluster {
  private readonly procs = new Map<string, VmProc>();
  private stoppedAll = false;
  private readonly root: string;
  private readonly redJs: string;
  private readonly secret: string;

  constructor(
    readonly baseDir: string,
    private readonly opts: ClusterOptions,
    private readonly ownsBaseDir: boolean,
  ) {
    this.root = packageRoot();
    this.redJs = nodeRedScript(this.root);
    this.secret = opts.credentialSecret ?? crypto.randomBytes(16).toString('hex');
    installExitHooks();
    if (ownsBaseDir && !opts.keepDirs) dirsToRemove.add(baseDir);
  }

  get vms(): Vm[] {
    return [...this.procs.values()];
  }

  vm(v: string | Vm): Vm {
    return this.proc(v);
  }

  private proc(v: string | Vm): VmProc {
    const name = typeof v === 'string' ? v : v.name;
    const p = this.procs.get(name);
    if (!p) throw new Error(`no VM named ${JSON.stringify(name)} in this cluster (have ${[...this.procs.keys()].join(', ') || 'none'})`);
    return p;
  }

  /** A new VM with its own user directory, defined but not running. */
  async define(spec: VmSpec): Promise<Vm> {
    if (this.stoppedAll) throw new Error('cluster already stopped');
    const ip = spec.ip ?? this.nextIp();
    checkSpec(spec.name, ip);
    if (this.procs.has(spec.name)) throw new Error(`VM ${spec.name} already exists`);
    for (const p of this.procs.values()) {
      if (p.ip === ip) throw new Error(`VM ${spec.name}: address ${ip} is already used by ${p.name}`);
    }
    const uiPort = spec.uiPort ?? (await pickFreePort(ip));
    const userDir = path.join(this.baseDir, spec.name);
    const p = new VmProc(spec.name, ip, uiPort, userDir, spec.uiPort === undefined);
    // Claim the name before any await below, so two concurrent defines cannot both take it.
    this.procs.set(spec.name, p);
    fs.mkdirSync(userDir, { recursive: true });
    this.installPackage(userDir);
    return p;
  }

  /** A new VM, not running, whose user directory is a copy of `source`'s (which should not be running). */
  async clone(source: string | Vm, spec: VmSpec): Promise<Vm> {
    const src = this.proc(source);
    const p = (await this.define(spec)) as VmProc;
    // Everything the source has (flows, credentials under the same cluster secret, context,
    // .config files, node_modules as installed or linked) except its logs.
    fs.rmSync(p.userDir, { recursive: true, force: true });
    fs.cpSync(src.userDir, p.userDir, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (from) => path.dirname(from) !== src.userDir || !from.endsWith('.log'),
    });
    return p;
  }

  async remove(v: string | Vm): Promise<void> {
    const p = this.proc(v);
    await this.stop(p);
    fs.rmSync(p.userDir, { recursive: true, force: true });
    this.procs.delete(p.name);
  }

  async start(v: string | Vm, o: { wait?: boolean } = {}): Promise<void> {
    const p = this.proc(v);
    if (this.stoppedAll) throw new Error('cluster already stopped');
    if (p.child) throw new Error(`VM ${p.name} is already ${p.state} (pid ${p.pid})`);
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    // If someone else took an auto-chosen port between the pick and the bind, pick again.
    for (let attempt = 1; ; attempt++) {
      this.spawn(p);
      if (o.wait === false) {
        // Running in libvirt's sense: the process is there; the caller probes its API itself.
        p.state = 'running';
        return;
      }
      try {
        await this.waitReady(p, timeoutMs);
        return;
      } catch (err) {
        const logs = this.logs(p);
        // red.js logs "Error: port in use" and exits 1 when its listen fails with EADDRINUSE.
        const portTaken = p.state === 'stopped' && /Error: port in use|EADDRINUSE/.test(logs.nodeRed + logs.stdout);
        if (!(portTaken && p.autoPort && attempt < 3)) {
          await this.stop(p);
          throw err;
        }
        p.uiPort = await pickFreePort(p.ip);
      }
    }
  }

  private spawn(p: VmProc): void {
    const settingsPath = path.join(p.userDir, 'settings.js');
    const settings: Record<string, unknown> = {
      ...(this.opts.settings ?? {}),
      uiHost: p.ip,
      uiPort: p.uiPort,
      userDir: p.userDir,
      flowFile: 'flows.json',
      credentialSecret: this.secret,
      telemetry: { enabled: false },
      // No update-notification dialog, no request to the public catalogue.
      editorTheme: { ...((this.opts.settings?.editorTheme as object | undefined) ?? {}), palette: { catalogues: [] }, tours: false },
    };
    fs.writeFileSync(settingsPath, settingsSource(settings));
    const out = fs.openSync(path.join(p.userDir, 'stdout.log'), 'a');
    const err = fs.openSync(path.join(p.userDir, 'stderr.log'), 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [this.redJs, '--userDir', p.userDir, '--settings', settingsPath], {
        cwd: p.userDir,
        // Files, not pipes: a busy or dead test process can never block a VM on a full pipe.
        stdio: ['ignore', out, err],
        env: {
          ...process.env,
          ...(this.opts.env ?? {}),
          ...(this.opts.vmEnv?.(p) ?? {}),
          P2P_HA_LAUNCHER_PID: this.opts.exitWithParent === false ? '' : String(process.pid),
          P2P_HA_VM_NAME: p.name,
        },
      });
    } finally {
      fs.closeSync(out);
      fs.closeSync(err);
    }
    p.child = child;
    p.pid = child.pid;
    p.state = 'starting';
    p.exitInfo = undefined;
    liveChildren.add(child);
    p.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        if (p.child === child) {
          p.child = undefined;
          p.pid = undefined;
          p.state = 'stopped';
          p.exitInfo = { code, signal };
        }
        resolve();
      });
      // A spawn failure (no exit event follows in some cases) must not hang the waiters.
      child.once('error', (e) => {
        fs.appendFileSync(path.join(p.userDir, 'stderr.log'), `launcher: spawn failed: ${e.message}\n`);
        if (child.exitCode === null && child.pid === undefined) {
          liveChildren.delete(child);
          p.child = undefined;
          p.pid = undefined;
          p.state = 'stopped';
          p.exitInfo = { code: null, signal: null };
          resolve();
        }
      });
    });
  }

  private async waitReady(p: VmProc, timeoutMs: number): Promise<void> {
    const child = p.child;
    const status = await waitFor(
      async () => {
        if (p.child !== child) return 'exited';
        const r = await httpRequest(`${p.url}/settings`, { timeoutMs: 1000 });
        return r.status === 200 ? 'ready' : false;
      },
      { timeoutMs, intervalMs: 100, what: `${p.name}'s admin API at ${p.url}` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(p)}`);
    });
    if (status === 'exited') {
      const how = p.exitInfo ? `code ${p.exitInfo.code}, signal ${p.exitInfo.signal}` : 'unknown';
      throw new Error(`${p.name} exited while starting (${how})\n${this.tail(p)}`);
    }
    p.state = 'running';
  }

  private tail(p: VmProc): string {
    const l = this.logs(p);
    const last = (s: string): string => s.split('\n').slice(-15).join('\n');
    return `--- ${p.name} node-red.log (end) ---\n${last(l.nodeRed)}\n--- stderr (end) ---\n${last(l.stderr)}`;
  }

  /**
   * Full deployment through the admin API. Node-RED answers once the flows are saved and the old
   * ones stopped, but starts the new ones after answering; so this waits for the "Started flows"
   * log line that follows (unless waitStarted is false), and a test may send traffic right away.
   */
  async deploy(v: string | Vm, flows: FlowNode[], o: { waitStarted?: boolean } = {}): Promise<void> {
    const p = this.proc(v);
    // Only the log written after the POST is read (a busy VM's log can be large).
    const logFile = path.join(p.userDir, 'node-red.log');
    const offset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const started = (): boolean => {
      const fd = fs.openSync(logFile, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const buf = Buffer.alloc(Math.max(0, size - offset));
        fs.readSync(fd, buf, 0, buf.length, offset);
        // English, or Japanese when a test runs the runtime with lang: 'ja'.
        return /\[info\] (?:Started flows|フローを開始しました)$/m.test(buf.toString('utf8'));
      } finally {
        fs.closeSync(fd);
      }
    };
    const r = await httpRequest(`${p.url}/flows`, {
      method: 'POST',
      headers: { 'Node-RED-Deployment-Type': 'full', 'Node-RED-API-Version': 'v1' },
      body: flows,
      timeoutMs: 30_000,
    });
    if (r.status !== 204 && r.status !== 200) {
      throw new Error(`deploy to ${p.name} (${p.url}) answered ${r.status}: ${r.body.slice(0, 500)}`);
    }
    if (o.waitStarted === false) return;
    await waitFor(started, { timeoutMs: 30_000, intervalMs: 20, what: `${p.name} to start the deployed flows` }).catch(
      (err: Error) => {
        throw new Error(`${err.message}\n${this.tail(p)}`);
      },
    );
  }

  /** Send `signal`; for SIGKILL, resolve once the process is gone; for SIGSTOP, once the kernel
   * shows it stopped (a signal is delivered asynchronously: /proc showed 'R' just after kill() on a
   * loaded CI machine), as `virsh suspend` returns only once the guest is paused. */
  async kill(v: string | Vm, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc(v);
    if (!p.child || p.pid === undefined) throw new Error(`VM ${p.name} is not running (${p.state})`);
    const pid = p.pid;
    process.kill(pid, signal);
    if (signal === 'SIGSTOP') {
      p.state = 'frozen';
      const stopped = () => ['T', 't', 'Z', undefined].includes(pidState(pid));
      await waitFor(stopped, { timeoutMs: 10_000, intervalMs: 2, what: `${p.name} (pid ${pid}) stopped by SIGSTOP` });
    } else if (signal === 'SIGCONT') p.state = 'running';
    else if (signal === 'SIGKILL') await p.exited;
  }

  freeze(v: string | Vm): Promise<void> {
    return this.kill(v, 'SIGSTOP');
  }

  thaw(v: string | Vm): Promise<void> {
    return this.kill(v, 'SIGCONT');
  }

  /** SIGTERM (a frozen VM is thawed so it can act on it), SIGKILL after stopTimeoutMs. */
  async stop(v: string | Vm): Promise<void> {
    const p = this.proc(v);
    const child = p.child;
    if (!child || child.pid === undefined) return;
    p.state = 'stopping';
    try {
      process.kill(child.pid, 'SIGTERM');
      process.kill(child.pid, 'SIGCONT');
    } catch {
      /* already exiting */
    }
    const deadline = this.opts.stopTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      p.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadline);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* exited meanwhile */
      }
      await p.exited;
    }
  }

  logs(v: string | Vm): VmLogs {
    const p = this.proc(v);
    const read = (f: string): string => {
      try {
        return fs.readFileSync(path.join(p.userDir, f), 'utf8');
      } catch {
        return '';
      }
    };
    return { nodeRed: read('node-red.log'), stdout: read('stdout.log'), stderr: read('stderr.log') };
  }

  async stopAll(): Promise<void> {
    if (this.stoppedAll) return;
    this.stoppedAll = true;
    await Promise.all([...this.procs.values()].map((p) => this.stop(p)));
    if (this.ownsBaseDir && !this.opts.keepDirs) {
      fs.rmSync(this.baseDir, { recursive: true, force: true });
      dirsToRemove.delete(this.baseDir);
    }
  }

  private installPackage(userDir: string): void {
    if (this.opts.installPackage === false) return;
    const link = path.join(userDir, 'node_modules', ...PACKAGE_NAME.split('/'));
    if (fs.existsSync(link)) return;
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(this.root, link, 'dir');
  }

  /** The next unused host number in the prefix of the existing VMs (for clones). */
  private nextIp(): string {
    const used = new Set([...this.procs.values()].map((p) => p.ip));
    const prefix = this.opts.ipPrefix ?? [...this.procs.values()][0]?.ip.split('.').slice(0, 3).join('.') ?? '127.0.1';
    for (let h = 1; h <= 254; h++) {
      const ip = `${prefix}.${h}`;
      if (!used.has(ip)) return ip;
    }
    throw new Error(`no free address left in ${prefix}.0/24`);
  }
}

const BASE_PREFIX = 'p2p-ha-cluster-';
/** In a temp base directory the launcher may delete: the pid of the process that owns it. */
const OWNER_FILE = '.launcher-owner-pid';

/**
 * Clean up after launchers that died without cleaning up (SIGKILLed, e.g. by a test runner's
 * timeout): their VMs exit by their watchdog, except frozen ones, and the files stay. This kills
 * what still runs from such a base directory and removes it. Only temp base directories marked
 * with an owner pid (not keepDirs) whose owner is dead are touched. startCluster calls it.
 */
export function sweepOrphanedBaseDirs(): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(BASE_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = path.join(os.tmpdir(), entry);
    try {
      const owner = Number(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8'));
      if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
      try {
        process.kill(owner, 0);
        continue; // owner alive
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
      for (const pid of pidsUsingDir(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* no owner file, or another sweeper got there first */
    }
  }
}

/** Run `task` over `items` with at most `limit` running at once; the first failure rejects (after the running ones settle). */
async function boundedParallel<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++];
      try {
        await task(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const count = opts.names?.length ?? opts.ips?.length ?? opts.count ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 254) throw new Error(`cluster size ${count} not in 1..254`);
  const names = opts.names ?? Array.from({ length: count }, (_, i) => `S${i + 1}`);
  const prefix = opts.ipPrefix ?? '127.0.1';
  const ips = opts.ips ?? Array.from({ length: count }, (_, i) => `${prefix}.${i + 1}`);
  if (names.length !== count || ips.length !== count || (opts.uiPorts && opts.uiPorts.length !== count)) {
    throw new Error(`names (${names.length}), ips (${ips.length}) and uiPorts (${opts.uiPorts?.length ?? '-'}) must all have ${count} entries`);
  }
  const ownsBaseDir = opts.baseDir === undefined;
  if (ownsBaseDir) sweepOrphanedBaseDirs();
  const baseDir = opts.baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), BASE_PREFIX));
  fs.mkdirSync(baseDir, { recursive: true });
  if (ownsBaseDir && !opts.keepDirs) fs.writeFileSync(path.join(baseDir, OWNER_FILE), String(process.pid));
  const cluster = new Cluster(baseDir, opts, ownsBaseDir);
  try {
    for (let i = 0; i < count; i++) await cluster.define({ name: names[i], ip: ips[i], uiPort: opts.uiPorts?.[i] });
    await boundedParallel(cluster.vms, opts.parallel ?? 3, async (vm) => {
      await cluster.start(vm);
      const flows = typeof opts.flows === 'function' ? opts.flows(vm) : opts.flows;
      if (flows) await cluster.deploy(vm, flows);
    });
    return cluster;
  } catch (err) {
    await cluster.stopAll();
    throw err;
  }
}
