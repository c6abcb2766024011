// A simulated real server: an SSH server (ssh2's Server) on a loopback address that answers the
// command lines the VirshDriver sends (virsh, virt-clone, host load, file copy and run) with
// libvirt's own output format (virsh-format.ts), keeping a libvirt-like domain table. What a
// command does to a "VM" is delegated to a VmBackend (in memory for tests, Node-RED processes in
// the loopback cluster). Operation delays are settings, so the demo can look like real hardware.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'crypto';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Server, utils, type Connection, type ServerChannel } from 'ssh2';
import { sshFingerprint } from '../../lib/hv/ssh-connection';
import { parseCommandLine, ShellSyntaxError, type SimpleCommand } from './command-line';
import { MemoryBackend } from './memory-backend';
import type { VmBackend } from './vm-backend';
import { dominfo, fail, ok, table } from './virsh-format';
import { sshKeyPair } from '../ssh-keys';

export type SimOp = 'suspend' | 'resume' | 'start' | 'boot' | 'shutdown' | 'destroy' | 'managedsave' | 'define' | 'undefine' | 'clone' | 'exec';

/**
 * Delays that make the sim behave like a real server (the demo, bench:failover): medians measured
 * on these machines with real Debian-kernel guests under libvirt 9.0's QEMU driver, reached over
 * OpenSSH (see the machine notes and issue 13): suspend 24 ms, resume 21 ms, `virsh start`
 * returns in 0.5-0.7 s (600) but the guest is usable only 4.5-5 s later (boot 4750: the VM's
 * effect starts that much after the reply), destroy 0.3 s (300: `virsh destroy` returns once
 * QEMU is reaped; the 1.2-2.0 s seen first were this machine's PID 1 reaping orphans every ~2 s,
 * see harness/real/libvirtd.ts), managedsave 1.46 s, virt-clone --mac 0.33 s;
 * define/undefine/shutdown are test-driver times. Tests use 0.
 */
export const REALISTIC_DELAYS: Readonly<Record<SimOp, number>> = {
  suspend: 24,
  resume: 21,
  start: 600,
  boot: 4750,
  shutdown: 40,
  destroy: 300,
  managedsave: 1460,
  define: 30,
  undefine: 30,
  clone: 330,
  exec: 5,
};

/**
 * Which libvirt driver the sim behaves like where they differ (seen on libvirt 9.0): 'qemu' (the
 * default: a real server) accepts `suspend` of a paused domain and refuses `resume` of a running
 * one with `Requested operation is not valid: domain is already running`; 'test' (test:///default)
 * refuses both with `internal error: domain 'x' not running / not paused`. Both let `undefine`
 * of an active persistent domain succeed and leave it transient: it vanishes when it stops.
 */
export type SimFlavor = 'qemu' | 'test';

export interface SimDomain {
  name: string;
  uuid: string;
  id: number | null;
  state: 'running' | 'paused' | 'shut off';
  mac?: string;
  xml: string;
  /** A managed save image exists: the next start resumes it. */
  managedSave: boolean;
  /** `virsh autostart` flag (start with the host). */
  autostart?: boolean;
  /** False once undefined while active (transient): it vanishes when it stops. */
  persistent?: boolean;
}

/** Programs the simulated host knows (shell builtins `test` and `command` aside). */
const PROGRAMS = ['virsh', 'virt-clone', 'cat', 'nproc', 'mkdir', 'env'];


export interface SimOptions {
  /** Loopback address to listen on (each simulated real server its own 127.0.x.y). */
  address?: string;
  port?: number;
  /** OpenSSH public key lines allowed to log in. */
  authorizedKeys: string[];
  backend?: VmBackend;
  /** Milliseconds each operation takes (default 0: tests). */
  delays?: Partial<Record<SimOp, number>>;
  /** The libvirt driver imitated where drivers differ (default 'qemu'). */
  flavor?: SimFlavor;
  /** Folder the copied files live in (a path /x/y on the "host" is <sandbox>/x/y). Default: a new temp dir. */
  sandboxDir?: string;
  cpus?: number;
  memTotalKiB?: number;
  /** Host private key (OpenSSH format) to keep across restarts; default: a new one per instance. */
  hostKey?: string;
}

type Reply = { stdout: string; stderr: string; code: number };
const reply = (stdout: string, stderr = '', code = 0): Reply => ({ stdout, stderr, code });
const virshFail = (stderr: string): Reply => reply('\n', stderr, 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SimRealServer {
  readonly address: string;
  port = 0;
  /** The host key's fingerprint, `SHA256:...`, to pin in the client. */
  readonly fingerprint: string;
  /** The host private key (to restart this "host" with the same identity). */
  readonly hostKey: string;
  readonly backend: VmBackend;
  readonly domains = new Map<string, SimDomain>();
  delays: Partial<Record<SimOp, number>>;
  /** Every exec request received, in order (also ones refused): tests count them. */
  readonly execLog: string[] = [];
  /** When each command of execLog (same index) was asked for, epoch ms (bench:failover lays the
   * simulated delays of a recovery's commands on the clock to count overlapping ones once). */
  readonly execStarts: number[] = [];
  /**
   * Programs taken off this host's PATH, as dash reports them: `sh: 1: virsh: not found`, exit
   * 127, and `command -v virsh` fails (dash says the same with exit 127 for a file on PATH that
   * is not executable, so that case is this one too).
   */
  readonly missingPrograms = new Set<string>();
  /** Host load reported by `cat /proc/loadavg` (1, 5, 15 minutes). */
  load: [number, number, number] = [0.1, 0.1, 0.1];
  cpus: number;
  memTotalKiB: number;
  memAvailableKiB: number;
  private sandbox?: string;
  private readonly givenSandbox?: string;
  private readonly server: Server;
  private readonly allowed: { type: string; blob: Buffer }[];
  private readonly connections = new Set<Connection>();
  /** Raw TCP sockets, also those that never finished the SSH handshake. */
  private readonly sockets = new Set<import('net').Socket>();
  private readonly children = new Set<ReturnType<typeof spawn>>();
  private nextId = 1;
  readonly flavor: SimFlavor;
  /** Guests still booting after `virsh start` returned (delays.boot): their effect comes later. */
  private readonly booting = new Map<string, NodeJS.Timeout>();

  constructor(options: SimOptions) {
    this.flavor = options.flavor ?? 'qemu';
    this.address = options.address ?? '127.0.0.1';
    this.port = options.port ?? 0;
    this.backend = options.backend ?? new MemoryBackend();
    this.delays = options.delays ?? {};
    this.cpus = options.cpus ?? 4;
    this.memTotalKiB = options.memTotalKiB ?? 16 * 1024 * 1024;
    this.memAvailableKiB = Math.floor(this.memTotalKiB * 0.75);
    this.givenSandbox = options.sandboxDir;
    this.allowed = options.authorizedKeys.map((line) => {
      const k = utils.parseKey(line);
      if (k instanceof Error) throw new Error(`sim: cannot read authorized key: ${k.message}`);
      const key = Array.isArray(k) ? k[0] : k;
      return { type: key.type, blob: key.getPublicSSH() };
    });
    // A fresh host key unless one is given (a restarted host keeps its key).
    this.hostKey = options.hostKey ?? sshKeyPair().private;
    const parsed = utils.parseKey(this.hostKey);
    if (parsed instanceof Error) throw parsed;
    this.fingerprint = sshFingerprint((Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH());
    this.server = new Server({ hostKeys: [this.hostKey] }, (conn) => this.onConnection(conn));
    // ssh2's Server wraps a net.Server (`_srv`, not public API): its sockets are what stop() must end.
    (this.server as unknown as { _srv: import('net').Server })._srv.on('connection', (sock) => {
      // As sshd answers: without TCP_NODELAY each reply (data, exit status, EOF, close as separate
      // small writes) waited on Nagle + the client's delayed ACK, ~40 ms per command, which a real
      // OpenSSH sshd does not add (exec of `true` 4-8 ms here, harness/real/sshd.ts).
      sock.setNoDelay(true);
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
    });
  }

  /** SSH connections open now (a client that closed is gone from here). */
  get connectionCount(): number {
    return this.connections.size;
  }

  get execCount(): number {
    return this.execLog.length;
  }

  /** The folder copied files live in; made at first use (removed by stop() unless it was given). */
  get sandboxDir(): string {
    if (!this.sandbox) this.sandbox = this.givenSandbox ?? fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-sim-rs-'));
    return this.sandbox;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.address, () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  /** Stop listening and drop every client (a client mid-handshake too: its socket is destroyed). */
  /** Stop a pending boot (the domain was destroyed or shut down before it was usable). */
  private cancelBoot(name: string): boolean {
    const t = this.booting.get(name);
    if (t) clearTimeout(t);
    return this.booting.delete(name);
  }

  /** A domain that stopped: a transient one (undefined while active) is gone. */
  private stopped(d: SimDomain): void {
    d.state = 'shut off';
    d.id = null;
    if (d.persistent === false) this.domains.delete(d.name);
  }

  async stop(): Promise<void> {
    for (const name of [...this.booting.keys()]) this.cancelBoot(name);
    for (const c of this.children) c.kill('SIGKILL');
    for (const c of this.connections) c.end();
    const force = setTimeout(() => {
      for (const sock of this.sockets) sock.destroy();
    }, 300);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    clearTimeout(force);
    if (this.sandbox && !this.givenSandbox) fs.rmSync(this.sandbox, { recursive: true, force: true });
    this.sandbox = undefined;
  }

  /** Seed a domain (a template or an existing VM) without a command. */
  addDomain(name: string, state: SimDomain['state'] = 'shut off', mac = randomMac()): SimDomain {
    const d: SimDomain = {
      name,
      uuid: randomUUID(),
      id: state === 'shut off' ? null : this.nextId++,
      state,
      mac,
      xml: minimalXml(name, mac),
      managedSave: false,
    };
    this.domains.set(name, d);
    return d;
  }

  private onConnection(conn: Connection): void {
    this.connections.add(conn);
    conn.on('close', () => this.connections.delete(conn));
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const match = this.allowed.find(
        (a) => a.type === ctx.key.algo && a.blob.length === ctx.key.data.length && timingSafeEqual(a.blob, ctx.key.data),
      );
      if (!match) return ctx.reject(['publickey']);
      if (ctx.signature) {
        const k = utils.parseKey(ctx.key.data);
        const key = k instanceof Error ? undefined : Array.isArray(k) ? k[0] : k;
        if (!key || key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(['publickey']);
      }
      ctx.accept();
    });
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => {
          const ch = acceptExec();
          this.execLog.push(info.command);
          this.execStarts.push(Date.now());
          const input: Buffer[] = [];
          ch.on('data', (d: Buffer) => input.push(d));
          ch.on('end', () => {
            this.execute(info.command, Buffer.concat(input), ch).then(
              (r) => finish(ch, r),
              (e) => finish(ch, reply('', `sim: ${(e as Error).message}\n`, 1)),
            );
          });
        });
      });
    });
  }

  private async execute(command: string, stdin: Buffer, ch: ServerChannel): Promise<Reply> {
    let cmds: SimpleCommand[];
    try {
      cmds = parseCommandLine(command);
    } catch (e) {
      if (e instanceof ShellSyntaxError) return reply('', `sh: sim: ${e.message}\n`, 2);
      throw e;
    }
    await sleep(this.delays.exec ?? 0);
    let out = '';
    let err = '';
    for (const c of cmds) {
      const r = await this.simple(c, stdin, ch);
      out += r.stdout;
      err += r.stderr;
      if (r.code !== 0) return reply(out, err, r.code);
    }
    return reply(out, err, 0);
  }

  private async simple(c: SimpleCommand, stdin: Buffer, ch: ServerChannel): Promise<Reply> {
    const [prog, ...args] = c.argv;
    if (this.missingPrograms.has(prog)) return reply('', `sh: 1: ${prog}: not found\n`, 127);
    if (c.redirect !== undefined) {
      if (prog === 'cat' && args.length === 0) {
        const p = this.sandboxPath(c.redirect);
        fs.writeFileSync(p, stdin);
        return reply('');
      }
      return unsupported(c);
    }
    switch (prog) {
      case 'virsh':
        return this.virsh(args, stdin);
      case 'sha256sum': {
        // As coreutils: one `<hash>  <path>` line per readable file, exit 1 if any is missing.
        let out = '';
        let err = '';
        for (const a of args.filter((x) => x !== '--')) {
          const p = this.sandboxPath(a);
          if (!fs.existsSync(p)) {
            err += `sha256sum: ${a}: No such file or directory\n`;
            continue;
          }
          out += `${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}  ${a}\n`;
        }
        return reply(out, err, err ? 1 : 0);
      }
      case 'virt-clone':
        return this.virtClone(args);
      case 'cat':
        if (args.length === 1 && args[0] === '/proc/loadavg') {
          return reply(`${this.load.map((l) => l.toFixed(2)).join(' ')} 1/${100 + this.domains.size} ${process.pid}\n`);
        }
        if (args.length === 1 && args[0] === '/proc/meminfo') {
          const kb = (n: number) => `${String(n).padStart(8)} kB`;
          return reply(
            `MemTotal:       ${kb(this.memTotalKiB)}\nMemFree:        ${kb(Math.floor(this.memAvailableKiB / 2))}\n` +
              `MemAvailable:   ${kb(this.memAvailableKiB)}\n`,
          );
        }
        return unsupported(c);
      case 'nproc':
        return args.length === 0 ? reply(`${this.cpus}\n`) : unsupported(c);
      case 'mkdir':
        if (args.length === 2 && args[0] === '-p') {
          fs.mkdirSync(this.sandboxPath(args[1]), { recursive: true });
          return reply('');
        }
        return unsupported(c);
      case 'env':
        return this.runFile(args, ch);
      case 'command':
        // `command -v PROG`: dash prints the path and exits 0, or exits 127 for an unknown one.
        if (args.length === 2 && args[0] === '-v') {
          const known = PROGRAMS.includes(args[1]) && !this.missingPrograms.has(args[1]);
          return known ? reply(`/usr/bin/${args[1]}\n`) : reply('', '', 127);
        }
        return unsupported(c);
      case 'test':
        // `test -f FILE` / `test -r FILE` in the sandbox. The sim runs as root, which reads any
        // file: readability is taken from the mode bits, as for the unprivileged SSH user.
        if (args.length === 2 && (args[0] === '-f' || args[0] === '-r')) {
          const st = fs.statSync(this.sandboxPath(args[1]), { throwIfNoEntry: false });
          const yes = args[0] === '-f' ? !!st?.isFile() : !!st && (st.mode & 0o444) !== 0;
          return reply('', '', yes ? 0 : 1);
        }
        return unsupported(c);
      default:
        return unsupported(c);
    }
  }

  /** A host path inside the sandbox; `..` cannot climb out (the driver refuses it anyway). */
  private sandboxPath(p: string): string {
    if (!p.startsWith('/')) throw new Error(`path ${p} is not absolute`);
    const full = path.resolve(this.sandboxDir, '.' + p);
    if (!full.startsWith(this.sandboxDir + path.sep) && full !== this.sandboxDir) throw new Error(`path ${p} escapes the sandbox`);
    return full;
  }

  /** `env K=V ... /bin/sh FILE`: run the file for real, with /bin/sh, inside the sandbox folder. */
  private async runFile(args: string[], ch: ServerChannel): Promise<Reply> {
    const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: this.sandboxDir, SANDBOX: this.sandboxDir };
    let i = 0;
    for (; i < args.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(args[i]); i++) {
      const eq = args[i].indexOf('=');
      env[args[i].slice(0, eq)] = args[i].slice(eq + 1);
    }
    if (args[i] !== '/bin/sh' || args.length !== i + 2) return reply('', 'sim: env: only `env VAR=value... /bin/sh FILE` is supported\n', 127);
    const file = this.sandboxPath(args[i + 1]);
    if (!fs.existsSync(file)) return reply('', `/bin/sh: 0: cannot open ${args[i + 1]}: No such file\n`, 2);
    if ((fs.statSync(file).mode & 0o444) === 0) return reply('', `/bin/sh: 0: cannot open ${args[i + 1]}: Permission denied\n`, 2);
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', [file], { cwd: this.sandboxDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.children.add(child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      // The client gave up (timeout, close): stop the script, as sshd's SIGHUP would.
      const onClose = () => child.kill('SIGKILL');
      ch.once('close', onClose);
      child.on('close', (code) => {
        this.children.delete(child);
        ch.off('close', onClose);
        resolve(reply(Buffer.concat(out).toString(), Buffer.concat(err).toString(), code ?? 137));
      });
    });
  }

  private async virsh(args: string[], stdin: Buffer): Promise<Reply> {
    if (args[0] === '-c' || args[0] === '--connect') args = args.slice(2);
    const [sub, ...rest] = args;
    const flags = rest.filter((a) => a.startsWith('--'));
    const pos = rest.filter((a) => !a.startsWith('--'));
    const name = pos[0];
    if (sub === 'list') {
      const doms = [...this.domains.values()].filter((d) => flags.includes('--all') || d.state !== 'shut off');
      // virsh lists active domains by id first, then inactive ones by name.
      const active = doms.filter((d) => d.id !== null).sort((a, b) => a.id! - b.id!);
      const inactive = doms.filter((d) => d.id === null).sort((a, b) => a.name.localeCompare(b.name));
      const all = [...active, ...inactive];
      if (flags.includes('--name')) return reply(all.map((d) => d.name + '\n').join('') + '\n');
      return reply(table(['Id', 'Name', 'State'], all.map((d) => [d.id === null ? '-' : String(d.id), d.name, d.state])));
    }
    if (sub === 'define') {
      if (pos[0] !== '/dev/stdin') return unsupported({ argv: ['virsh', ...args] });
      await sleep(this.delays.define ?? 0);
      return this.define(stdin.toString('utf8'));
    }
    if (name === undefined) return virshFail(`error: command '${sub}' requires <domain> option\n`);
    const d = this.domains.get(name);
    if (!d) return virshFail(fail.noDomain(name));
    switch (sub) {
      case 'domstate':
        return reply(ok.domstate(d.state));
      case 'domiflist':
        return reply(table(['Interface', 'Type', 'Source', 'Model', 'MAC'], interfaces(d)));
      case 'dominfo': {
        // The size the domain was defined with (its XML's <memory> and <vcpu>).
        const unit = /<memory\s+unit=['"]([A-Za-z]+)['"]/.exec(d.xml)?.[1] ?? 'KiB';
        const mem = Number(/<memory[^>]*>(\d+)<\/memory>/.exec(d.xml)?.[1] ?? 0);
        const memKiB = unit === 'MiB' ? mem * 1024 : unit === 'GiB' ? mem * 1024 * 1024 : mem;
        const vcpus = Number(/<vcpu[^>]*>(\d+)<\/vcpu>/.exec(d.xml)?.[1] ?? 1);
        return reply(dominfo({ ...d, vcpus, memKiB, persistent: d.persistent !== false, autostart: !!d.autostart }));
      }
      case 'suspend':
        await sleep(this.delays.suspend ?? 0);
        // The QEMU driver accepts a suspend of a paused domain (exit 0); the test driver does not.
        if (d.state === 'paused' && this.flavor === 'qemu') return reply(ok.suspend(name));
        if (d.state !== 'running') return virshFail(fail.notRunning('suspend', name));
        await this.backend.suspend(name);
        d.state = 'paused';
        return reply(ok.suspend(name));
      case 'resume':
        await sleep(this.delays.resume ?? 0);
        if (d.state === 'running' && this.flavor === 'qemu') return virshFail(fail.alreadyRunning(name));
        if (d.state !== 'paused') return virshFail(fail.notPaused(name));
        await this.backend.resume(name);
        d.state = 'running';
        return reply(ok.resume(name));
      case 'start':
        await sleep(this.delays.start ?? 0);
        if (d.state !== 'shut off') return virshFail(fail.alreadyActive());
        // A managed save image is resumed (the process backend keeps the stopped process).
        if (d.managedSave) await this.backend.resume(name);
        else if ((this.delays.boot ?? 0) > 0) {
          // `virsh start` returns when QEMU runs; the guest is usable only after its boot.
          this.booting.set(
            name,
            setTimeout(() => {
              this.booting.delete(name);
              this.backend.start(name).catch(() => undefined);
            }, this.delays.boot),
          );
        } else await this.backend.start(name);
        d.managedSave = false;
        d.state = 'running';
        d.id = this.nextId++;
        return reply(ok.start(name));
      case 'shutdown':
        await sleep(this.delays.shutdown ?? 0);
        if (d.state !== 'running') return virshFail(fail.notRunning('shutdown', name));
        if (!this.cancelBoot(name)) await this.backend.shutdown(name);
        this.stopped(d);
        return reply(ok.shutdown(name));
      case 'destroy':
        await sleep(this.delays.destroy ?? 0);
        if (d.state === 'shut off') return virshFail(fail.destroyInactive(name));
        if (!this.cancelBoot(name)) await this.backend.destroy(name);
        this.stopped(d);
        return reply(ok.destroy(name));
      case 'managedsave':
        await sleep(this.delays.managedsave ?? 0);
        if (d.state === 'shut off') return virshFail(fail.saveInactive(name));
        // Saved to "disk": the process backend keeps it stopped until the next start.
        if (d.state === 'running') await this.backend.suspend(name);
        d.state = 'shut off';
        d.id = null;
        d.managedSave = true;
        return reply(ok.managedsave(name));
      case 'autostart':
        d.autostart = !flags.includes('--disable');
        return reply(d.autostart ? ok.autostartOn(name) : ok.autostartOff(name));
      case 'undefine':
        await sleep(this.delays.undefine ?? 0);
        // Both real drivers undefine an active persistent domain: it becomes transient and
        // vanishes when it stops (the driver's undefine() refuses this itself).
        if (d.state !== 'shut off') {
          d.persistent = false;
          d.managedSave = false;
          return reply(ok.undefine(name));
        }
        if (this.backend.remove) await this.backend.remove(name);
        this.domains.delete(name);
        return reply(ok.undefine(name));
      default:
        return unsupported({ argv: ['virsh', ...args] });
    }
  }

  private define(xml: string): Reply {
    const name = /<name>([^<]*)<\/name>/.exec(xml)?.[1];
    if (!/^\s*<domain[\s>]/.test(xml) || !/<\/domain>\s*$/.test(xml)) return virshFail(fail.defineBad('not a complete <domain> document'));
    if (!name) return virshFail(fail.defineBad('missing domain name'));
    const uuid = /<uuid>([^<]*)<\/uuid>/.exec(xml)?.[1];
    const mac = /<mac\s+address=['"]([^'"]*)['"]/.exec(xml)?.[1]?.toLowerCase();
    const existing = this.domains.get(name);
    if (existing) {
      if (uuid !== existing.uuid) return virshFail(fail.defineExists(name, existing.uuid));
      existing.xml = xml;
      existing.mac = mac;
    } else {
      this.domains.set(name, { name, uuid: uuid ?? randomUUID(), id: null, state: 'shut off', mac, xml, managedSave: false });
    }
    return reply(ok.define(name, '/dev/stdin'));
  }

  private async virtClone(args: string[]): Promise<Reply> {
    const opt = (flag: string) => {
      const i = args.indexOf(flag);
      return i >= 0 ? args[i + 1] : undefined;
    };
    const original = opt('--original');
    const name = opt('--name');
    const requested = opt('--mac');
    if (!original || !name || !args.includes('--auto-clone')) {
      return reply('', 'ERROR    sim: only --original X --name Y [--mac M] --auto-clone is supported\n', 1);
    }
    await sleep(this.delays.clone ?? 0);
    const src = this.domains.get(original);
    if (!src) return reply('', fail.cloneNotFound(original), 1);
    if (src.state !== 'shut off') return reply('', fail.cloneNotShutoff(), 1);
    if (this.domains.has(name)) return reply('', fail.cloneNameInUse(name), 1);
    const mac = (requested ?? randomMac()).toLowerCase();
    if ([...this.domains.values()].some((d) => d.mac === mac)) return reply('', fail.cloneMacInUse(mac), 1);
    await this.backend.clone(original, name, mac);
    const uuid = randomUUID();
    const xml = src.xml
      .replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`)
      .replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${uuid}</uuid>`)
      .replace(/(<mac\s+address=['"])[^'"]*/, `$1${mac}`);
    this.domains.set(name, { name, uuid, id: null, state: 'shut off', mac, xml, managedSave: false });
    return reply(ok.clone(name));
  }
}

function finish(ch: ServerChannel, r: Reply): void {
  if (r.stdout) ch.write(r.stdout);
  if (r.stderr) ch.stderr.write(r.stderr);
  ch.exit(r.code);
  ch.end();
}

function unsupported(c: SimpleCommand): Reply {
  return reply('', `sim: unsupported command: ${c.argv.join(' ').slice(0, 200)}\n`, 127);
}

function interfaces(d: SimDomain): string[][] {
  const rows: string[][] = [];
  for (const m of d.xml.matchAll(/<interface\s+type=['"]([^'"]+)['"]>([\s\S]*?)<\/interface>/g)) {
    const body = m[2];
    const macAddr = /<mac\s+address=['"]([^'"]*)['"]/.exec(body)?.[1] ?? '-';
    const source = /<source\s+(?:network|bridge|dev)=['"]([^'"]*)['"]/.exec(body)?.[1] ?? '-';
    const target = /<target\s+dev=['"]([^'"]*)['"]/.exec(body)?.[1] ?? '-';
    const model = /<model\s+type=['"]([^'"]*)['"]/.exec(body)?.[1] ?? '-';
    rows.push([target, m[1], source, model, macAddr]);
  }
  return rows;
}

/** A locally administered unicast MAC in QEMU's 52:54:00 range, as virt-clone would pick. */
export function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

export function minimalXml(name: string, mac: string): string {
  return (
    `<domain type='test'>\n  <name>${name}</name>\n  <memory unit='KiB'>65536</memory>\n  <vcpu>1</vcpu>\n` +
    `  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n` +
    `    <interface type='network'>\n      <mac address='${mac}'/>\n      <source network='default'/>\n    </interface>\n` +
    `  </devices>\n</domain>\n`
  );
}
