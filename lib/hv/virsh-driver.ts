// The hypervisor driver: the real `virsh` and `virt-clone` command lines, run on a real server
// through a CommandRunner (an SSH connection; a local shell in the benchmark), and the parsers for
// their real output (formats captured from libvirt 9.0 / virt-clone 4.1, see harness/sim/virsh-format.ts).
// Every argument is validated and quoted before anything is executed.
import { HvError, type CommandRunner, type ExecOptions, type ExecResult } from './ssh-connection';
import * as v from './validate';
import type { DomainSize } from '../records/records';

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

export interface RunFileOptions {
  /** Pin this SSH host key (`<type> <base64>`) in a known_hosts file given as OD_KNOWN_HOSTS. */
  knownHostsKey?: string;
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

/**
 * `virsh dominfo` output, one block per domain (several when chained): each domain's size as
 * libvirt holds it: `CPU(s)` and `Max memory` (KiB, the size it was given; `Used memory` is the
 * balloon's current value). Captured from virsh 9.0.0 (test driver):
 *   Name:           test
 *   State:          running
 *   CPU(s):         2
 *   Max memory:     8388608 KiB
 *   Used memory:    2097152 KiB
 */
export function parseDominfo(text: string): Record<string, DomainSize> {
  const out: Record<string, DomainSize> = {};
  let name: string | undefined;
  let vcpus: number | undefined;
  let memKiB: number | undefined;
  const flush = () => {
    if (name !== undefined && vcpus !== undefined && memKiB !== undefined) out[name] = { memMiB: Math.floor(memKiB / 1024), vcpus };
    name = vcpus = memKiB = undefined;
  };
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z() ]+):\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    if (m[1] === 'Id') flush();
    if (m[1] === 'Name') {
      if (name !== undefined) flush();
      name = m[2];
    }
    if (m[1] === 'CPU(s)' && /^\d+$/.test(m[2])) vcpus = Number(m[2]);
    const mem = m[1] === 'Max memory' ? /^(\d+) KiB$/.exec(m[2]) : null;
    if (mem) memKiB = Number(mem[1]);
  }
  flush();
  return out;
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

/** The last non-empty line of a failed command's stderr (else stdout): virsh's cause, a script's reason. */
function lastLineOf(r: ExecResult): string {
  const lines = (r.stderr.trim() || r.stdout.trim()).split('\n').filter((l) => l.trim() !== '');
  return (lines.slice(-1)[0] ?? '').trim();
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

  private label(): string {
    return this.options.label ? `${this.options.label}: ` : '';
  }

  /**
   * Run a command line built from checked, quoted parts; a non-zero exit is an HvError of a kind
   * decided here from the exit code (see classify), never left to the caller to read from words.
   */
  private async run(command: string, options?: ExecOptions): Promise<ExecResult> {
    const r = await this.runner.exec(command, options);
    if (r.code !== 0) throw await this.classify(command, r);
    return r;
  }

  /**
   * The kind of a failed command, from its exit code: 126 is the shell's "found but cannot be
   * executed" (permission-denied), 127 its "command not found", confirmed by an explicit
   * `command -v` of the program (a program may exit 127 by itself). Anything else is `failed`
   * with the exit code and the last stderr line.
   */
  private async classify(command: string, r: ExecResult): Promise<HvError> {
    const lastLine = lastLineOf(r);
    const extra = { exitCode: r.code, stderr: r.stderr, lastLine };
    const what = `${this.label()}\`${command.slice(0, 160)}\``;
    if (r.code === 126) return new HvError('permission-denied', `${what} exited 126 (cannot execute): ${lastLine}`, extra);
    const program = command.split(' ')[0];
    if (r.code === 127 && !(await this.hasProgram(program))) {
      return new HvError('program-missing', `${this.label()}${program} is not installed (or not on the SSH session's PATH): \`command -v ${program}\` failed`, extra);
    }
    return new HvError('failed', `${what} exited ${r.code}: ${lastLine}`, extra);
  }

  /** Is the program on the host's PATH for this SSH session (`command -v`, a shell builtin)? */
  async hasProgram(program: string): Promise<boolean> {
    return (await this.runner.exec(`command -v ${v.shellQuote(v.domainName(program))}`)).code === 0;
  }

  /**
   * The names of every domain the host defines, as `virsh list --all --name` prints them (one a
   * line; this driver owns that command line and its format).
   */
  async domainNames(): Promise<string[]> {
    return (await this.run(`${this.virsh} list --all --name`)).stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  /**
   * THE one place that decides `domain-absent` (and, for virt-clone, `name-in-use`): a domain
   * command that failed (`failed`, not a connection or program problem) is asked about by name in
   * virsh's own list of every defined domain. Not in it: the domain does not exist. If the list
   * itself cannot be had, its own kind (e.g. unreachable) is the answer: nothing is known then.
   */
  private async withDomainKind(e: unknown, name: string, newName?: string): Promise<unknown> {
    if (!(e instanceof HvError) || e.kind !== 'failed') return e;
    let names: string[];
    try {
      names = await this.domainNames();
    } catch (e2) {
      return e2 instanceof HvError && e2.kind !== 'failed' ? e2 : e;
    }
    const extra = { exitCode: e.exitCode, stderr: e.stderr, lastLine: e.lastLine };
    if (newName !== undefined && names.includes(newName)) {
      return new HvError('name-in-use', `${this.label()}the name ${newName} is in use by a defined domain: ${e.lastLine ?? ''}`, extra);
    }
    if (!names.includes(name)) return new HvError('domain-absent', `${this.label()}domain ${name} does not exist (not in \`virsh list --all\`)`, extra);
    return e;
  }

  /** A one-domain virsh action; a failure for a domain that does not exist is `domain-absent`. */
  private async domainRun(action: string, name: string, options?: ExecOptions): Promise<ExecResult> {
    const cmd = this.domainCommand(action, name);
    try {
      return await this.run(cmd, options);
    } catch (e) {
      throw await this.withDomainKind(e, name);
    }
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
    return (await this.domainRun('domstate', name)).stdout.trim();
  }

  async suspend(name: string): Promise<void> {
    await this.domainRun('suspend', name);
  }
  async resume(name: string): Promise<void> {
    await this.domainRun('resume', name);
  }
  async managedsave(name: string): Promise<void> {
    await this.domainRun('managedsave', name, { timeoutMs: this.options.slowTimeoutMs });
  }
  async start(name: string): Promise<void> {
    await this.domainRun('start', name, { timeoutMs: this.options.slowTimeoutMs });
  }
  async shutdown(name: string): Promise<void> {
    await this.domainRun('shutdown', name);
  }
  async destroy(name: string): Promise<void> {
    await this.domainRun('destroy', name);
  }
  /** Turn the domain's autostart off (`virsh autostart --disable`): a fenced VM must not come back with its host. */
  async autostartOff(name: string): Promise<void> {
    await this.domainRun('autostart --disable', name);
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
      throw new HvError('failed', `${label}refused to undefine ${name}: it is ${state} (it would stay running as a transient domain)`);
    }
    const extra = opts.removeAllStorage ? ' --remove-all-storage' : '';
    try {
      await this.run(`${this.domainCommand('undefine', name)} --managed-save${extra}`);
    } catch (e) {
      throw await this.withDomainKind(e, name);
    }
  }

  async domiflist(name: string): Promise<InterfaceInfo[]> {
    return parseIfList((await this.domainRun('domiflist', name)).stdout);
  }

  /** virt-clone a shut-off original to a new name, with a chosen MAC (else libvirt picks one). */
  async clone(original: string, name: string, macAddress?: string): Promise<void> {
    const parts = [this.virtClone, '--original', v.shellQuote(v.domainName(original)), '--name', v.shellQuote(v.domainName(name))];
    if (macAddress !== undefined) parts.push('--mac', v.shellQuote(v.mac(macAddress)));
    parts.push('--auto-clone');
    try {
      await this.run(parts.join(' '), { timeoutMs: this.options.slowTimeoutMs });
    } catch (e) {
      // virt-clone's own refusal of a taken name, told apart by asking virsh for the name.
      throw await this.withDomainKind(e, original, name);
    }
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

  /** Sizes of these domains (`virsh dominfo` of each, chained in one command). */
  async domainSizes(names: string[]): Promise<Record<string, DomainSize>> {
    if (names.length === 0) return {};
    return parseDominfo((await this.run(names.map((n) => this.domainCommand('dominfo', n)).join(' && '))).stdout);
  }

  /** Sizes of the active domains (the ones counted in the realserver file's VM count). */
  async activeDomainSizes(): Promise<Record<string, DomainSize>> {
    const active = (await this.listDomains()).filter((d) => ACTIVE_STATES.includes(d.state)).map((d) => d.name);
    return this.domainSizes(active);
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
   * Write a small read-only ISO 9660 volume (Rock Ridge + Joliet names, volume label `label`) at
   * `path` on the real server, holding `files` (name -> text): an OD's seed (od-seed.ts). One SSH
   * exec; built with genisoimage, xorriso or mkisofs, whichever the host has (`program-missing`
   * when none). Mode 0600: the seed holds the OD's private host key.
   */
  async makeIsoImage(path: string, label: string, files: Record<string, string>): Promise<void> {
    const p = v.absolutePath(path);
    if (!/^[A-Za-z0-9_]{1,32}$/.test(label)) throw new v.ValidationError('volume label', label, '1-32 letters, digits, _');
    const names = Object.keys(files);
    if (names.some((n) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(n))) throw new v.ValidationError('seed file name', names.join(' '), 'letters, digits, . _ -');
    const size = names.reduce((n, k) => n + files[k].length, 0);
    if (size > MAX_FILE) throw new v.ValidationError('seed content', `${size} bytes`, 'at most 4 MiB');
    const dir = p.slice(0, p.lastIndexOf('/')) || '/';
    const script = [
      'set -eu',
      'umask 077',
      'if command -v genisoimage >/dev/null 2>&1; then mk="genisoimage"',
      'elif command -v xorriso >/dev/null 2>&1; then mk="xorriso -as mkisofs"',
      'elif command -v mkisofs >/dev/null 2>&1; then mk="mkisofs"',
      'else echo "no ISO 9660 tool: install genisoimage or xorriso" >&2; exit 69; fi',
      'd=$(mktemp -d)',
      `trap 'rm -rf "$d"' EXIT`,
      ...names.map((n) => `printf '%s' '${Buffer.from(files[n]).toString('base64')}' | base64 -d > "$d/${n}"`),
      `mkdir -p ${v.shellQuote(dir)}`,
      `$mk -quiet -V ${label} -J -r -o ${v.shellQuote(p + '.tmp')} "$d"`,
      `mv ${v.shellQuote(p + '.tmp')} ${v.shellQuote(p)}`,
      '',
    ].join('\n');
    const r = await this.runner.exec('/bin/sh -s', { stdin: script, timeoutMs: this.options.slowTimeoutMs });
    if (r.code === 0) return;
    const extra = { exitCode: r.code, stderr: r.stderr, lastLine: lastLineOf(r) };
    if (r.code === 69) throw new HvError('program-missing', `${this.label()}no ISO 9660 tool (genisoimage, xorriso or mkisofs) for the seed ${p}`, extra);
    throw new HvError('failed', `${this.label()}seed ${p}: exited ${r.code}: ${extra.lastLine}`, extra);
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
      throw new HvError('failed', `sha256sum exited ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`, { exitCode: r.code, stderr: r.stderr });
    }
    return out;
  }

  /** The command line that runs a file with /bin/sh and the given variables in its environment. */
  runFileCommand(path: string, vars?: Record<string, string | number>, opts: RunFileOptions = {}): string {
    const p = v.absolutePath(path);
    const env = v.variables(vars).map(([k, val]) => v.shellQuote(`${k}=${val}`));
    if (!opts.knownHostsKey) return ['env', ...env, '/bin/sh', v.shellQuote(p)].join(' ');
    // A known_hosts file of one line, `* <key>`: whichever address or port the procedure uses to
    // reach the OD, only this key is accepted. Made for this run and removed after it.
    const line = v.shellQuote(`* ${v.sshPublicKey(opts.knownHostsKey)}`);
    return (
      `kh=$(mktemp) && printf '%s\\n' ${line} > "$kh" && ` +
      `${['env', ...env, '"OD_KNOWN_HOSTS=$kh"', '/bin/sh', v.shellQuote(p)].join(' ')}; rc=$?; rm -f "$kh"; exit $rc`
    );
  }

  /**
   * Run a file with /bin/sh (the installation procedure); its output is returned. A failure is
   * `procedure-absent` when an explicit `test -f` finds no file, `permission-denied` when
   * `test -r` finds it unreadable, else `procedure-failed` with its exit code and last stderr line.
   * With `knownHostsKey` (the OD's recorded host key, `ssh-ed25519 AAAA...`) the procedure gets
   * OD_KNOWN_HOSTS, a known_hosts file pinning that key.
   */
  async runFile(path: string, vars?: Record<string, string | number>, opts: RunFileOptions = {}): Promise<ExecResult> {
    const cmd = this.runFileCommand(path, vars, opts);
    const r = await this.runner.exec(cmd, { timeoutMs: this.options.slowTimeoutMs });
    if (r.code === 0) return r;
    const p = v.shellQuote(v.absolutePath(path));
    const lastLine = lastLineOf(r);
    const extra = { exitCode: r.code, stderr: r.stderr, lastLine };
    if ((await this.runner.exec(`test -f ${p}`)).code !== 0) throw new HvError('procedure-absent', `${this.label()}${path}: no such file (test -f)`, extra);
    if ((await this.runner.exec(`test -r ${p}`)).code !== 0) throw new HvError('permission-denied', `${this.label()}${path}: not readable (test -r)`, extra);
    throw new HvError('procedure-failed', `${this.label()}${path} exited ${r.code}: ${lastLine}`, extra);
  }
}
