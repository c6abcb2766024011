// `p2p-ha status`: the cluster as one VM's management files say it, in the manner of `pcs status`:
// members and the ring, open and past problems, real servers with their figures and ODs, what is
// in maintenance. Reads the folder (the files are plain text, an operator can `cat` them too);
// pure text formatting apart from the reads. The text files follow the running VM's state within
// TEXT_INTERVAL_MS (lib/sem/text-files.ts), so this shows the cluster as it was at most that long
// ago: a command run from another process cannot wait for them, and 50 ms is below what an
// operator notices.
import * as fs from 'fs';
import * as path from 'path';
import { FILE_NAMES, FileName, parseFile, RecordFields } from '../records/files';
import { fromMember, fromOd, fromProblem, fromRealServer } from '../records/records';
import { naturalCompare } from '../records/natural-sort';
import { operationRecords } from '../records/ring';

export type FilesSnapshot = Record<FileName, RecordFields[]>;

/** Read the six files of a management folder; a missing file is empty, a corrupt one an error. */
export function readFolder(dir: string): FilesSnapshot {
  if (!fs.existsSync(path.join(dir, 'group'))) throw new Error(`${dir} holds no management files (no group file)`);
  const out = {} as FilesSnapshot;
  for (const f of FILE_NAMES) {
    const p = path.join(dir, f);
    out[f] = fs.existsSync(p) ? parseFile(f, fs.readFileSync(p, 'utf8')) : [];
  }
  if (out.operation.length === 0) out.operation = operationRecords(out.group);
  return out;
}

const OPEN = ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering'];

function table(rows: string[][]): string[] {
  const widths = rows.reduce<number[]>((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, c.length)), []);
  return rows.map((r) => '  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
}

function age(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3600_000)} h`;
}

/** The status text. `now` for the figures' age. */
export function formatStatus(s: FilesSnapshot, source: string, now: number = Date.now()): string {
  const members = s.group.map(fromMember).sort((a, b) => naturalCompare(a.hostname, b.hostname));
  const problems = s.problem.map(fromProblem).sort((a, b) => naturalCompare(a.target, b.target));
  const open = problems.filter((p) => OPEN.includes(p.status) || p.status === 'failed');
  const ods = s['available-od'].map(fromOd);
  const hosts = s.realserver.map(fromRealServer).sort((a, b) => naturalCompare(a.realServer, b.realServer));
  const watchers = (t: string, pr: string) => s.operation.find((o) => o[0] === pr && o[2] === t)?.[1] ?? '-';
  const lines: string[] = [];
  lines.push(`Cluster status from ${source} at ${new Date(now).toISOString()}`);
  const down = hosts.filter((h) => h.state === 'down').length;
  lines.push(
    `${members.length} members, ${hosts.length} real servers (${down} down), ${ods.length} available ODs, ` +
      `${open.length} problem${open.length === 1 ? '' : 's'} open`,
  );
  lines.push('', 'Members (ring: each is watched by its P1 and P2):');
  lines.push(
    ...table([
      ['VM', 'address', 'real server', 'services', 'P1', 'P2', 'state'],
      ...members.map((m) => [m.hostname, m.address, m.realServer, m.services, watchers(m.hostname, 'P1'), watchers(m.hostname, 'P2'), m.state]),
    ]),
  );
  lines.push('', 'Problems:');
  if (problems.length === 0) lines.push('  none');
  else
    lines.push(
      ...table([
        ['target', 'status', 'kind', 'handled by', 'backup', 'since', 'note'],
        ...problems.map((p) => [p.target, OPEN.includes(p.status) || p.status === 'failed' ? p.status.toUpperCase() : p.status, p.kind, p.detectedBy, p.backup, p.since, p.note || '']),
      ]),
    );
  lines.push('', 'Real servers:');
  if (hosts.length === 0) lines.push('  none in the realserver file (is a load collector running?)');
  else
    lines.push(
      ...table([
        ['host', 'state', 'load/CPU', 'VMs', 'ODs', 'free MiB', 'free vCPU', 'figures'],
        ...hosts.map((h) => [
          h.realServer,
          h.state,
          h.load.toFixed(2),
          String(h.vmCount),
          String(ods.filter((o) => o.realServer === h.realServer).length),
          h.freeMemMiB === undefined ? '-' : String(h.freeMemMiB),
          h.freeVcpus === undefined ? '-' : String(h.freeVcpus),
          h.measuredAt === undefined ? '-' : `${age(now - h.measuredAt)} old`,
        ]),
      ]),
    );
  lines.push('', 'Available ODs:');
  lines.push(ods.length ? ods.map((o) => `  ${o.od} (${o.address} on ${o.realServer})`).join('\n') : '  NONE: the next failure cannot be recovered');
  if (s.reservation.length) lines.push('', `Reserved identities for new ODs: ${s.reservation.map((r) => r[0]).join(' ')}`);
  const mv = members.filter((m) => m.state === 'maintenance').map((m) => m.hostname);
  const mh = hosts.filter((h) => h.state === 'maintenance').map((h) => h.realServer);
  lines.push('', `Maintenance: VMs ${mv.join(' ') || '-'}; real servers ${mh.join(' ') || '-'}`);
  return lines.join('\n') + '\n';
}
