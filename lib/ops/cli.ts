// The `p2p-ha` command line (bin/p2p-ha.js runs main()):
//   p2p-ha status      [--user-dir D | --dir FILES]          the cluster as this VM's files say it
//   p2p-ha history     [--since 03:00] [--until T] [--target S2] [--json] [--user-dir D | --dir H | --url U]
//   p2p-ha maintenance on|off (--vm S2 | --real-server RS1) [--url http://VM:1880] [--token T]
//   p2p-ha evacuate    --real-server RS1 [--url http://VM:1880] [--token T]
//   p2p-ha rehearse    S2 [--url http://VM:1880] [--token T] [--json]   dry run of S2's failover
//   p2p-ha init        --hostname S1 --address A --real-server RS1 --rs RS1=HOST[#SHA256:..] ...
//                      --secret-file F --key-file F [--services ..] [--seeds A,B] [--trust-group F] [--user-dir D] [--force]
//   p2p-ha rotate-secret --secret-file NEW --previous-secret-file OLD --until T|1h [--url U] [--token T]
//   p2p-ha host-setup  --public-key "ssh-ed25519 ..." [--user p2pha] [--apply]
// Exit codes: 0 done, 1 failed (the reason on stderr), 2 bad usage. Output goes to the streams
// given, so the tests run main() in-process.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { formatStatus, readFolder } from './status';
import { HistoryEntry, parseWhen, readHistory } from './history';
import { buildInit, hostSetupScript, parseRealServerSpec } from './init-setup';
import { anchorsFile, anchorsText } from '../sem/key-anchors';
import { parseMaintenanceRequest } from './maintenance';
import type { Rehearsal } from '../recovery/rehearsal';
import type { Candidate } from '../recovery/placement';
import type { EvacuationResult, FailedMove } from './evacuate';
import { parseWindowEnd, rotatedFlows, type FlowNodeLike } from './rotate-secret';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  now?: () => number;
}

class UsageError extends Error {}

/** A rehearsal asks the real servers (SSH, each with its own deadline): a host that does not answer takes a while. */
const REHEARSE_TIMEOUT_MS = 90_000;
/** An evacuation moves its VMs one by one, each with up to 60 s for a clean shutdown (lib/ops/evacuate.ts). */
const EVACUATE_TIMEOUT_MS = 30 * 60_000;

const USAGE = `usage: p2p-ha <command> [options]
  status       [--user-dir DIR | --dir FILES]
  history      [--since 03:00|2h|ISO] [--until T] [--target NAME] [--json] [--user-dir DIR | --dir HISTORY | --url URL [--token T]]
  maintenance  on|off (--vm NAME | --real-server NAME) [--url http://VM:1880] [--token T]
  evacuate     --real-server NAME [--url http://VM-on-another-host:1880] [--token T]
  rehearse     VM [--url http://VM:1880] [--token T] [--json]   what a failure of VM would do now (nothing changed)
  init         --hostname NAME --address ADDR --real-server RS --rs RS1=HOST[:PORT][@USER][#SHA256:FP] ...
               --secret-file FILE --key-file FILE [--services "tcp:80"] [--seeds A,B] [--sem-port 18800]
               [--ui-port 1880] [--ui-host 0.0.0.0] [--admin-token T] [--guest-key-file FILE] [--user-dir DIR] [--force]
               [--trust-group FILE]   a member's group file: its members' keys, the only ones this VM takes for them
  rotate-secret --secret-file NEW --previous-secret-file OLD --until 2026-12-03T12:00:00Z|1h [--store ID]
               [--url http://127.0.0.1:1880] [--token T]   this VM's step of a cluster-secret rotation
  host-setup   --public-key "ssh-ed25519 AAAA..." [--user p2pha] [--procedure-dir DIR] [--apply]
The user directory defaults to $NODE_RED_USER_DIR or ~/.node-red; the token to $P2P_HA_ADMIN_TOKEN.`;

/** --key value and --flag options; repeated keys collect. */
function parseArgs(argv: string[], flags: string[]): { pos: string[]; opt: Map<string, string[]> } {
  const pos: string[] = [];
  const opt = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    const k = a.slice(2);
    if (flags.includes(k)) {
      opt.set(k, ['true']);
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`--${k} needs a value`);
    opt.set(k, [...(opt.get(k) ?? []), v]);
  }
  return { pos, opt };
}

const one = (opt: Map<string, string[]>, k: string): string | undefined => opt.get(k)?.[opt.get(k)!.length - 1];
const need = (opt: Map<string, string[]>, k: string): string => {
  const v = one(opt, k);
  if (v === undefined) throw new UsageError(`--${k} is required`);
  return v;
};
const userDir = (opt: Map<string, string[]>, env: NodeJS.ProcessEnv) => one(opt, 'user-dir') ?? env.NODE_RED_USER_DIR ?? path.join(os.homedir(), '.node-red');

/** A refusal or failure from a VM's admin API, with the body it answered (some carry a result). */
export class AdminHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

async function adminRequest(url: string, token: string | undefined, method: 'GET' | 'POST', body?: unknown, timeoutMs = 10_000, extra: Record<string, string> = {}): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json', ...extra };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  if (!res.ok) throw new AdminHttpError(`${method} ${url}: HTTP ${res.status} ${typeof json === 'object' && json && 'error' in json ? (json as { error: string }).error : text.slice(0, 200)}`, res.status, json);
  return json;
}

function isEvacuationResult(x: unknown): x is EvacuationResult {
  const r = x as Partial<EvacuationResult> | null;
  return !!r && typeof r === 'object' && Array.isArray(r.moved) && Array.isArray(r.failed);
}

/** What an evacuation did, one line a VM: moved (how it stopped, where its role went) or where it was left. */
export function formatEvacuation(r: EvacuationResult): string {
  const out = r.moved.map((m) => `${m.vm}: ${m.stop}, its role now on ${m.backup} (${m.realServer})`);
  for (const f of r.failed) out.push(`${f.vm}: NOT moved, ${FAILED_MOVE_TEXT[f.outcome] ?? f.outcome}: ${f.error}`);
  out.push(r.failed.length ? `${r.realServer}: in maintenance, ${r.failed.length} VM(s) not moved` : `${r.realServer}: evacuated, in maintenance`);
  return out.join('\n') + '\n';
}

const FAILED_MOVE_TEXT: Record<FailedMove, string> = {
  'kept-serving': 'still serving where it was',
  'restarted-in-place': 'restarted where it was',
  'left-fenced': 'left fenced (no backup serves it: recover it by hand)',
};

export function formatHistory(entries: HistoryEntry[]): string {
  return entries.map((e) => `${new Date(e.at).toISOString()}  ${e.target.padEnd(8)} ${e.step.padEnd(18)} ${e.by ? `by ${e.by}` : ''}${e.detail ? `  ${e.detail}` : ''}`.trimEnd()).join('\n') + (entries.length ? '\n' : '');
}

/** One placement candidate as a line: rank or why not, and the figures the placer weighed. */
export function candidateLine(c: Candidate): string {
  const figs = [`load ${c.load}`, `${c.vmCount} VMs`];
  if (c.ageMs !== undefined) figs.push(`figures ${Math.round(c.ageMs / 1000)} s old${c.fresh ? '' : ' (stale)'}`);
  if (c.freeMemMiB !== undefined) figs.push(`${c.freeMemMiB} MiB free`);
  if (c.freeVcpus !== undefined) figs.push(`${c.freeVcpus} vCPU free`);
  if (c.sameService) figs.push(`${c.sameService} of its service group there`);
  figs.push(`ODs ${c.ods.join(' ') || '-'}`);
  return `${c.realServer}: ${c.eligible ? `rank ${c.rank}` : `not eligible (${c.reason})`}; ${figs.join(', ')}`;
}

/** A rehearsal for people (the command line; the sidebar draws the same object). */
export function formatRehearsal(r: Rehearsal): string {
  const out: string[] = [`Rehearsal of a failure of ${r.target} (on ${r.rehearsedOn}, nothing changed)`];
  const d = r.detection;
  out.push(`  detection:  P1 ${d.p1 ?? '-'} handles it, P2 ${d.p2 ?? '-'} if P1 is gone${d.verdict ? '' : `; NO VERDICT: ${d.why}`}${d.open ? `; open problem: ${d.open.status} by ${d.open.detectedBy}` : ''}`);
  out.push(`  fence:      ${r.fence.how ?? '-'} on ${r.fence.realServer} (state now: ${r.fence.stateNow ?? '-'})`);
  const c = r.confirmation;
  out.push(
    c.needed
      ? `  confirm:    host not reached: ${c.minimum} managers off it needed; ${c.confirmedBy ? `confirmed by ${c.confirmedBy.join(', ')}; ${c.isolation ?? ''}` : 'not confirmed'}`
      : `  confirm:    not needed (the host answers: the fence is the hypervisor's word)`,
  );
  out.push(`              if ${r.fence.realServer} failed whole: confirmed by ${c.ifHostFails.join(', ') || 'nobody'} (${c.ifHostFails.length >= c.minimum ? 'enough' : 'NOT enough'})`);
  const cands = r.placement?.candidates ?? r.candidates ?? [];
  out.push(`  placement:  ${r.placement ? `${r.placement.od} (${r.placement.address}) on ${r.placement.realServer}` : 'none'}`);
  for (const x of cands) out.push(`              ${candidateLine(x)}`);
  for (const o of r.skippedOds) out.push(`              skipped ${o.od}: ${o.text}`);
  out.push(`  procedure:  ${r.procedure ? `${r.procedure.path}${r.procedure.checked ? ' (present)' : ' (not checked)'}` : '-'}`);
  out.push(`  role:       ${r.role.configured ? `the OD becomes ${r.role.backup}` : `no role step (backup name ${r.role.backup})`}`);
  out.push(`  would run:`);
  for (const h of r.wouldRun) out.push(`              ${h.realServer}: ${h.command}${h.fails ? `  (fails: ${h.fails})` : ''}`);
  out.push(`  edits:`);
  for (const e of r.edits) out.push(`              ${e}`);
  out.push(r.outcome.ok ? `  outcome:    ${r.outcome.text}` : `  outcome:    FAILS at ${r.outcome.step}${r.outcome.kind ? ` (${r.outcome.kind})` : ''}: ${r.outcome.reason}`);
  return out.join('\n') + '\n';
}

async function run(argv: string[], io: Io): Promise<void> {
  const [cmd, ...rest] = argv;
  const now = io.now ?? Date.now;
  switch (cmd) {
    case 'status': {
      const { opt } = parseArgs(rest, []);
      const dir = one(opt, 'dir') ?? path.join(userDir(opt, io.env), 'p2p-ha');
      io.out(formatStatus(readFolder(dir), dir, now()));
      return;
    }
    case 'history': {
      const { opt } = parseArgs(rest, ['json']);
      const since = one(opt, 'since');
      const until = one(opt, 'until');
      const target = one(opt, 'target');
      let entries: HistoryEntry[];
      const url = one(opt, 'url');
      if (url) {
        const q = new URLSearchParams();
        if (since) q.set('since', new Date(parseWhen(since, now())).toISOString());
        if (until) q.set('until', new Date(parseWhen(until, now())).toISOString());
        if (target) q.set('target', target);
        entries = (await adminRequest(`${url.replace(/\/$/, '')}/p2p-ha/history?${q}`, one(opt, 'token') ?? io.env.P2P_HA_ADMIN_TOKEN, 'GET')) as HistoryEntry[];
      } else {
        const dir = one(opt, 'dir') ?? path.join(userDir(opt, io.env), 'p2p-ha-history');
        if (!fs.existsSync(dir)) throw new Error(`no history folder ${dir} (is this a p2p-ha VM's user directory?)`);
        entries = readHistory(dir, { since: since ? parseWhen(since, now()) : undefined, until: until ? parseWhen(until, now()) : undefined, target });
      }
      io.out(opt.has('json') ? entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : '') : formatHistory(entries));
      return;
    }
    case 'maintenance': {
      const { pos, opt } = parseArgs(rest, []);
      const onOff = pos[0];
      if (onOff !== 'on' && onOff !== 'off') throw new UsageError('maintenance on|off');
      const vm = one(opt, 'vm');
      const rs = one(opt, 'real-server');
      const req = parseMaintenanceRequest(vm !== undefined ? { vm, realServer: rs, on: onOff } : { realServer: rs, on: onOff });
      const url = (one(opt, 'url') ?? 'http://127.0.0.1:1880').replace(/\/$/, '');
      const r = (await adminRequest(`${url}/p2p-ha/maintenance`, one(opt, 'token') ?? io.env.P2P_HA_ADMIN_TOKEN, 'POST', req)) as { changed: boolean; line?: string };
      io.out(r.changed ? `${req.name}: maintenance ${onOff} (${r.line})\n` : `${req.name}: already ${onOff === 'on' ? 'in' : 'out of'} maintenance\n`);
      return;
    }
    case 'evacuate': {
      const { opt } = parseArgs(rest, []);
      const rs = need(opt, 'real-server');
      const url = (one(opt, 'url') ?? 'http://127.0.0.1:1880').replace(/\/$/, '');
      let r: EvacuationResult;
      try {
        r = (await adminRequest(`${url}/p2p-ha/evacuate`, one(opt, 'token') ?? io.env.P2P_HA_ADMIN_TOKEN, 'POST', { realServer: rs }, EVACUATE_TIMEOUT_MS)) as EvacuationResult;
      } catch (e) {
        // A partial evacuation answers 500 with its result: say what moved and where each VM that
        // did not move was left, not the raw JSON.
        if (!(e instanceof AdminHttpError) || !isEvacuationResult(e.body)) throw e;
        r = e.body;
      }
      io.out(formatEvacuation(r));
      if (r.failed.length) throw new Error(`${rs}: evacuation incomplete: ${r.failed.length} of ${r.failed.length + r.moved.length} VMs not moved (the host stays in maintenance; see above)`);
      return;
    }
    case 'rehearse': {
      const { pos, opt } = parseArgs(rest, ['json']);
      const target = pos[0];
      if (!target) throw new UsageError('rehearse VM');
      const url = (one(opt, 'url') ?? 'http://127.0.0.1:1880').replace(/\/$/, '');
      const r = (await adminRequest(`${url}/p2p-ha/rehearse`, one(opt, 'token') ?? io.env.P2P_HA_ADMIN_TOKEN, 'POST', { target }, REHEARSE_TIMEOUT_MS)) as Rehearsal;
      io.out(opt.has('json') ? JSON.stringify(r, null, 2) + '\n' : formatRehearsal(r));
      return;
    }
    case 'rotate-secret': {
      const { opt } = parseArgs(rest, []);
      const read = (k: string) => fs.readFileSync(need(opt, k), 'utf8').trim();
      const url = (one(opt, 'url') ?? 'http://127.0.0.1:1880').replace(/\/$/, '');
      const token = one(opt, 'token') ?? io.env.P2P_HA_ADMIN_TOKEN;
      const rotation = { secret: read('secret-file'), previous: read('previous-secret-file'), until: parseWindowEnd(need(opt, 'until'), now()), storeId: one(opt, 'store') };
      // The editor's own deploy: the flows with their revision (a concurrent deploy makes this one
      // fail with 409, nothing overwritten), only the changed nodes restarted.
      const v2 = { 'Node-RED-API-Version': 'v2' };
      const got = (await adminRequest(`${url}/flows`, token, 'GET', undefined, 10_000, v2)) as { rev?: string; flows?: FlowNodeLike[] };
      if (!Array.isArray(got.flows)) throw new Error(`GET ${url}/flows: not a Node-RED flows answer`);
      const r = rotatedFlows(got.flows, rotation, now());
      await adminRequest(`${url}/flows`, token, 'POST', { rev: got.rev, flows: r.flows }, 30_000, { ...v2, 'Node-RED-Deployment-Type': 'nodes' });
      const until = new Date(rotation.until).toISOString();
      io.out(`${r.store.name || r.store.hostname || r.store.id}: new cluster secret deployed; the previous one is accepted until ${until}.\n`);
      io.out(`Next: the same on every other VM with --until ${until} (one end for all), each after this one shows its peers in sync.\n`);
      return;
    }
    case 'init': {
      const { opt } = parseArgs(rest, ['force']);
      const dir = userDir(opt, io.env);
      const secret = fs.readFileSync(need(opt, 'secret-file'), 'utf8').trim();
      const key = fs.readFileSync(need(opt, 'key-file'), 'utf8');
      const r = buildInit({
        hostname: need(opt, 'hostname'),
        address: need(opt, 'address'),
        realServer: need(opt, 'real-server'),
        services: one(opt, 'services') ?? '-',
        seeds: (one(opt, 'seeds') ?? '').split(/[ ,]+/).filter(Boolean),
        realServers: (opt.get('rs') ?? []).map(parseRealServerSpec),
        clusterSecret: secret,
        privateKey: key,
        guestKey: one(opt, 'guest-key-file') === undefined ? undefined : fs.readFileSync(one(opt, 'guest-key-file')!, 'utf8'),
        semPort: Number(one(opt, 'sem-port') ?? 18800),
        uiPort: Number(one(opt, 'ui-port') ?? 1880),
        uiHost: one(opt, 'ui-host'),
        procedureDir: one(opt, 'procedure-dir') ?? '/var/lib/p2p-ha/install',
        adminToken: one(opt, 'admin-token'),
      });
      const files: [string, string, number][] = [
        ['settings.js', r.settingsJs, 0o600],
        ['flows.json', JSON.stringify(r.flows, null, 2) + '\n', 0o600],
        ['flows_cred.json', JSON.stringify(r.credentials) + '\n', 0o600],
        ['p2p-ha-admin-token', r.adminToken + '\n', 0o600],
      ];
      // The members' keys as the operator read them from a member (docs/security.md, bootstrap):
      // the store then takes a member's record only when that key (or its rotations) signed it.
      const trust = one(opt, 'trust-group');
      if (trust !== undefined) files.push([path.relative(dir, anchorsFile(path.join(dir, 'p2p-ha'))), anchorsText(fs.readFileSync(trust, 'utf8')), 0o600]);
      fs.mkdirSync(dir, { recursive: true });
      const existing = files.filter(([n]) => fs.existsSync(path.join(dir, n))).map(([n]) => n);
      if (existing.length && !opt.has('force')) throw new Error(`${dir} already holds ${existing.join(', ')}: nothing written (--force to replace)`);
      for (const [n, text, mode] of files) {
        fs.mkdirSync(path.dirname(path.join(dir, n)), { recursive: true, mode: 0o700 });
        fs.writeFileSync(path.join(dir, n), text, { mode });
      }
      io.out(`Wrote ${files.map(([n]) => n).join(', ')} in ${dir}.\n`);
      io.out(`Admin token (also in ${path.join(dir, 'p2p-ha-admin-token')}): ${r.adminToken}\n\nNext steps:\n${r.hostSteps.map((s) => `  ${s}`).join('\n')}\n`);
      return;
    }
    case 'host-setup': {
      const { opt } = parseArgs(rest, ['apply']);
      const lines = hostSetupScript({ user: one(opt, 'user') ?? 'p2pha', publicKey: need(opt, 'public-key'), procedureDir: one(opt, 'procedure-dir') ?? '/var/lib/p2p-ha/install' });
      if (!opt.has('apply')) {
        io.out(`# run as root on the KVM host (or again with --apply):\n${lines.join('\n')}\n`);
        return;
      }
      for (const l of lines) {
        io.out(`+ ${l}\n`);
        io.out(execFileSync('/bin/sh', ['-ec', l], { encoding: 'utf8' }));
      }
      return;
    }
    case undefined:
    case 'help':
    case '--help':
      io.out(USAGE + '\n');
      return;
    default:
      throw new UsageError(`unknown command ${cmd}`);
  }
}

/** Run a command line; resolves to the exit code. */
export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env }): Promise<number> {
  try {
    await run(argv, io);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`p2p-ha: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    io.err(`p2p-ha: ${(e as Error).message}\n`);
    return 1;
  }
}
