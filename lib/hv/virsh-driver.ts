// The hypervisor driver: the real `virsh` and `virt-clone` command lines, run on a real server
// through a CommandRunner (an SSH connection; a local shell in the benchmark), and the parsers for
// their real output (formats captured from libvirt 9.0 / virt-clone 4.1, see harness/sim/virsh-format.ts).
// Every argument is validated and quoted before anything is executed.
import { HvError, type CommandRunner, type ExecOptions, type ExecResult } from './ssh-connection';
import * as v from './validate';

export type DomainState =
  | 'running'
  | 'idle'
  | 'paused'
  | 'in shutdown'
  | 'shut off'
  | 'crashed'
  | 'pmsuspended'
  | 'blocked'
  | 'no state';

export interface DomainInfo {
  /** libvirt's id while the domain is active, null when shut off (virsh prints `-`). */
  id: number | null;
  name: string;
  state: DomainState | string;
}

export interface InterfaceInfo {
  interface: string;
  type: string;
  source: string;
  model: string;
  mac: string;
}

export interface HostLoad {
  load1: number;
  load5: number;
  load15: number;
  cpus: number;
  /** load1 / cpus: 1 means every CPU busy; comparable between hosts of different sizes. */
  perCpu: number;
}

export interface HostMemory {
  totalKiB: number;
  availableKiB: number;
}

export interface DriverOptions {
  /** libvirt connection URI (`virsh -c URI`); unset: the host's default (LIBVIRT_DEFAULT_URI or qemu:///system). */
  uri?: string;
  /** A label for messages (the real server's name). */
  label?: string;
  /** Deadline for slow operations (virt-clone, managedsave, the installation procedure). */
  slowTimeoutMs?: number;
}

/** Domains counted as VMs doing work (a suspended OD waits and is not counted). */
export const ACTIVE_STATES: readonly string[] = ['running', 'idle', 'blocked', 'in shutdown'];

export const LOAD_COMMAND = 'cat /proc/loadavg && nproc';
export const MEMINFO_COMMAND = 'cat /proc/meminfo';
/** Domain XML is sent on stdin; refuse absurd sizes before sending anything. */
const MAX_XML = 1024 * 1024;
const MAX_FILE = 4 * 1024 * 1024;

/**
 * Split a virsh table (` Id   Name   State` / dashes / rows) by the header's column offsets: a
 * cell may hold spaces (`shut off`), columns are where the header words start.
 */
export function parseTable(text: string): Record<string, string>[] {
  const lines = text.split('\n');
  const h = lines.findIndex((l) => l.trim() !== '');
  if (h < 0 || !/^-+$/.test((lines[h + 1] ?? '').trim())) throw new Error(`not a virsh table: ${JSON.stringify(text.slice(0, 120))}`);
  const header = lines[h];
  const cols: { name: string; at: number }[] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(header))) cols.push({ name: m[0], at: m.index });
  const rows: Record<string, string>[] = [];
  for (const line of lines.slice(h + 2)) {
    if (line.trim() === '') continue;
    const row: Record<string, string> = {};
    cols.forEach((c, i) => {
      row[c.name] = line.slice(c.at, i + 1 < cols.length ? cols[i + 1].at : undefined).trim();
    });
    rows.push(row);
  }
  return rows;
}

export function parseDomainList(text: string): DomainInfo[] {
  return parseTable(text).map((r) => ({
    id: r.Id === '-' || r.Id === undefined ? null : Number(r.Id),
    name: r.Name,
    state: r.State,
  }));
}

export function parseIfList(text: string): InterfaceInfo[] {
  return parseTable(text).map((r) => ({
    interface: r.Interface,
    type: r.Type,
    source: r.Source,
    model: r.Model,
    mac: r.MAC.toLowerCase(),
  }));
}

export function parseLoad(text: string): HostLoad {
  const [first, second] = text.trim().split('\n');
  const f = (first ?? '').split(/\s+/).map(Number);
  const cpus = Number((second ?? '').trim());
  if (f.length < 3 || f.slice(0, 3).some((x) => !Number.isFinite(x)) || !Number.isInteger(cpus) || cpus < 1) {
    throw new Error(`cannot read host load from ${JSON.stringify(text.slice(0, 120))}`);
  }
  return { load1: f[0], load5: f[1], load15: f[2], cpus, perCpu: f[0] / cpus };
}

export function parseMeminfo(text: string): HostMemory {
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const total = get('MemTotal');
  const avail = get('MemAvailable') ?? get('MemFree');
  if (total === undefined || avail === undefined) throw new Error('cannot read MemTotal/MemAvailable from /proc/meminfo');
  return { totalKiB: total, availableKiB: avail };
}

/** The domain name in a domain XML, checked like any other name. MACs in it are checked too. */
export function xmlDomainName(xml: unknown): string {
  if (typeof xml !== 'string' || xml.length > MAX_XML || !/^\s*(<\?xml[^>]*>\s*)?<domain[\s>]/.test(xml)) {
    throw new v.ValidationError('domain XML', typeof xml === 'string' ? xml.slice(0, 40) : xml, 'a <domain> document under 1 MiB');
  }
  const m = /<name>([^<]*)<\/name>/.exec(xml);
  if (!m) throw new v.ValidationError('domain XML', xml.slice(0, 40), 'a <name> element');
  for (const mm of xml.matchAll(/<mac\s+address=['"]([^'"]*)['"]/g)) v.mac(mm[1]);
  return v.domainName(m[1]);
}

export class VirshDriver {
  readonly runner: CommandRunner;
  readonly options: DriverOptions;
  private readonly virsh: string;
  private readonly virtClone: string;

  constructor(runner: CommandRunner, options: DriverOptions = {}) {
    this.runner = runner;
    this.options = { slowTimeoutMs: 120000, ...options };
    const uri = options.uri ? v.shellQuote(v.uri(options.uri)) : undefined;
    this.virsh = uri ? `virsh -c ${uri}` : 'virsh';
    this.virtClone = uri ? `virt-clone --connect ${uri}` : 'virt-clone';
  }

  /** Run a command line built from checked, quoted parts; a non-zero exit is a command-failed HvError. */
  private async run(command: string, options?: ExecOptions): Promise<ExecResult> {
    const r = await this.runner.exec(command, options);
    if (r.code !== 0) {
      const lines = (r.stderr.trim() || r.stdout.trim()).split('\n').filter((l) => l.trim() !== '');
      // virsh's last error line is the cause ("error: internal error: domain 'x' not running").
      const cause = lines.slice(-1)[0] ?? '';
      const label = this.options.label ? `${this.options.label}: ` : '';
      throw new HvError('command-failed', `${label}\`${command.slice(0, 160)}\` exited ${r.code}: ${cause}`, {
        exitCode: r.code,
        stderr: r.stderr,
      });
    }
    return r;
  }

  /** The command line of a one-domain virsh action (exported for the injection tests and the sim). */
  domainCommand(action: string, name: string): string {
    return `${this.virsh} ${action} ${v.shellQuote(v.domainName(name))}`;
  }

  async listDomains(): Promise<DomainInfo[]> {
    return parseDomainList((await this.run(`${this.virsh} list --all`)).stdout);
  }

  /** Domains in an active state (running, not suspended): the VM count of the realserver file. */
  async activeCount(): Promise<number> {
    return (await this.listDomains()).filter((d) => ACTIVE_STATES.includes(d.state)).length;
  }

  async domstate(name: string): Promise<DomainState | string> {
    return (await this.run(this.domainCommand('domstate', name))).stdout.trim();
  }

  async suspend(name: string): Promise<void> {
    await this.run(this.domainCommand('suspend', name));
  }
  async resume(name: string): Promise<void> {
    await this.run(this.domainCommand('resume', name));
  }
  async managedsave(name: string): Promise<void> {
    const cmd = this.domainCommand('managedsave', name);
    await this.run(cmd, { timeoutMs: this.options.slowTimeoutMs });
  }
  async start(name: string): Promise<void> {
    const cmd = this.domainCommand('start', name);
    await this.run(cmd, { timeoutMs: this.options.slowTimeoutMs });
  }
  async shutdown(name: string): Promise<void> {
    await this.run(this.domainCommand('shutdown', name));
  }
  async destroy(name: string): Promise<void> {
    await this.run(this.domainCommand('destroy', name));
  }

  /** Define (or redefine) a domain from its XML, sent on stdin. Returns the domain's name. */
  async define(xml: string): Promise<string> {
    const name = xmlDomainName(xml);
    const r = await this.run(`${this.virsh} define /dev/stdin`, { stdin: xml });
    const m = /Domain '([^']*)' defined/.exec(r.stdout);
    return m ? m[1] : name;
  }

  /**
   * Undefine a shut-off domain, with its managed save image; storage too when asked. An active
   * domain is refused here: libvirt (QEMU and test drivers alike) would undefine it and leave it
   * running as a transient domain that vanishes at its next stop.
   */
  async undefine(name: string, opts: { removeAllStorage?: boolean } = {}): Promise<void> {
    const state = await this.domstate(name);
    if (state !== 'shut off') {
      const label = this.options.label ? `${this.options.label}: ` : '';
      throw new HvError('command-failed', `${label}refused to undefine ${name}: it is ${state} (it would stay running as a transient domain)`);
    }
    const extra = opts.removeAllStorage ? ' --remove-all-storage' : '';
    await this.run(`${this.domainCommand('undefine', name)} --managed-save${extra}`);
  }

  async domiflist(name: string): Promise<InterfaceInfo[]> {
    return parseIfList((await this.run(this.domainCommand('domiflist', name))).stdout);
  }

  /** virt-clone a shut-off original to a new name, with a chosen MAC (else libvirt picks one). */
  async clone(original: string, name: string, macAddress?: string): Promise<void> {
    const parts = [this.virtClone, '--original', v.shellQuote(v.domainName(original)), '--name', v.shellQuote(v.domainName(name))];
    if (macAddress !== undefined) parts.push('--mac', v.shellQuote(v.mac(macAddress)));
    parts.push('--auto-clone');
    await this.run(parts.join(' '), { timeoutMs: this.options.slowTimeoutMs });
  }

  /** The domain's XML (`virsh dumpxml`): for the post-clone XML hook and the guest's SSH endpoint. */
  async dumpxml(name: string): Promise<string> {
    return (await this.run(this.domainCommand('dumpxml', name))).stdout;
  }

  /** Hard reset of a running domain (`virsh reset`): the restart after re-identification. */
  async reset(name: string): Promise<void> {
    await this.run(this.domainCommand('reset', name));
  }

  async hostLoad(): Promise<HostLoad> {
    return parseLoad((await this.run(LOAD_COMMAND)).stdout);
  }

  async hostMemory(): Promise<HostMemory> {
    return parseMeminfo((await this.run(MEMINFO_COMMAND)).stdout);
  }

  /** Copy a file to the real server (content on stdin), creating its folder. */
  async copyFile(path: string, content: string | Buffer): Promise<void> {
    const p = v.absolutePath(path);
    if (content.length > MAX_FILE) throw new v.ValidationError('file content', `${content.length} bytes`, 'at most 4 MiB');
    const dir = p.slice(0, p.lastIndexOf('/')) || '/';
    await this.run(`mkdir -p ${v.shellQuote(dir)} && cat > ${v.shellQuote(p)}`, { stdin: content });
  }

  /**
   * SHA-256 of files on the real server (`sha256sum`), by path; a missing file is absent from the
   * map (sha256sum exits 1 for it but still hashes the others).
   */
  async fileHashes(paths: string[]): Promise<Map<string, string>> {
    const ps = paths.map((p) => v.absolutePath(p));
    const out = new Map<string, string>();
    if (ps.length === 0) return out;
    const r = await this.runner.exec(['sha256sum', '--', ...ps.map((p) => v.shellQuote(p))].join(' '));
    for (const line of r.stdout.split('\n')) {
      const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
      if (m && ps.includes(m[2])) out.set(m[2], m[1]);
    }
    if (r.code !== 0 && r.code !== 1) {
      throw new HvError('command-failed', `sha256sum exited ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, { exitCode: r.code, stderr: r.stderr });
    }
    return out;
  }

  /** The command line that runs a file with /bin/sh and the given variables in its environment. */
  runFileCommand(path: string, vars?: Record<string, string | number>): string {
    const p = v.absolutePath(path);
    const env = v.variables(vars).map(([k, val]) => v.shellQuote(`${k}=${val}`));
    return ['env', ...env, '/bin/sh', v.shellQuote(p)].join(' ');
  }

  /** Run a file with /bin/sh (the installation procedure); its output is returned, a failure thrown. */
  async runFile(path: string, vars?: Record<string, string | number>): Promise<ExecResult> {
    return this.run(this.runFileCommand(path, vars), { timeoutMs: this.options.slowTimeoutMs });
  }
}
