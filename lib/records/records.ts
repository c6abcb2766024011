// Typed records of the management files and their codecs: the one place that knows which field
// sits at which position. Everything outside lib/records reads `member.address`, never `r[1]`.
// `fromX` takes fields already checked by validateRecord (files.ts); `toX` gives the fields back
// in file order, dropping optional trailing fields that hold their default so that files written
// by older versions and by this one stay byte-identical where nothing new is said.
import { createHash } from 'crypto';
import type { RecordFields } from './files';
import { MEMBER_STATES, PROBLEM_KINDS, PROBLEM_STATUSES, REALSERVER_STATES } from './files';
import { naturalCompare } from './natural-sort';

export type MemberState = (typeof MEMBER_STATES)[number];
export type ProblemKind = (typeof PROBLEM_KINDS)[number];
export type ProblemStatus = (typeof PROBLEM_STATUSES)[number];
export type RealServerState = (typeof REALSERVER_STATES)[number];

/** group: `hostname, address, realServer, services[, state[, publicKey[, dhKey]]]` */
export interface Member {
  hostname: string;
  address: string;
  realServer: string;
  /** Space-separated checks (`tcp:80 http:8080/health`), or '-' for none. */
  services: string;
  /** Default 'member'. */
  state: MemberState;
  /** Base64 raw Ed25519 public key, or '-' when the VM has not published one. */
  publicKey: string;
  /** Base64 raw X25519 public key (answers by pair key, lib/sem/pair-key.ts), or '-'. */
  dhKey: string;
}

/** problem: `target, detectedBy, kind, status, backup, since[, note[, od]]` */
export interface Problem {
  target: string;
  detectedBy: string;
  kind: ProblemKind;
  status: ProblemStatus;
  /** The backup's hostname, or '-'. */
  backup: string;
  /** ISO time (UTC) of the detection, or '-'. */
  since: string;
  /** Free text without commas (a failure's reason), or '' when none. */
  note: string;
  /**
   * The OD this recovery resumed (written before the resume), or '-': a manager that takes over a
   * stalled recovery continues with that OD and never resumes a second one (lib/recovery/takeover.ts).
   */
  od: string;
}

/** realserver: `realServer, load, vmCount, state[, freeMemMiB[, freeVcpus[, measuredAt[, vmSizes]]]]` */
export interface RealServer {
  realServer: string;
  load: number;
  vmCount: number;
  state: RealServerState;
  /** Free memory (MemAvailable), MiB; undefined when not measured. */
  freeMemMiB?: number;
  /** Host CPUs minus the vCPUs of its active VMs (may be negative: overcommitted); undefined when not measured. */
  freeVcpus?: number;
  /** When the collector read these figures (epoch ms); undefined when not said. */
  measuredAt?: number;
  /**
   * The size of each active domain on it as libvirt reports it (`virsh dominfo`: Max memory, CPU(s)),
   * by domain name; undefined when not read. The placer's fit check takes a failed VM's size from
   * here when the failure does not carry one.
   */
  vmSizes?: Record<string, DomainSize>;
}

/** A domain's size: memory (MiB) and vCPUs. */
export interface DomainSize {
  memMiB: number;
  vcpus: number;
}

/** The vmSizes field: `name:memMiB/vcpus` entries separated by spaces (natural order), or '-'. */
export function formatVmSizes(sizes: Record<string, DomainSize> | undefined): string {
  if (!sizes) return '-';
  const names = Object.keys(sizes).sort(naturalCompare);
  if (names.length === 0) return '-';
  return names.map((n) => `${n}:${Math.max(0, Math.floor(sizes[n].memMiB))}/${Math.max(0, Math.floor(sizes[n].vcpus))}`).join(' ');
}

export function parseVmSizes(field: string | undefined): Record<string, DomainSize> | undefined {
  if (field === undefined || field === '-') return undefined;
  const out: Record<string, DomainSize> = {};
  for (const e of field.split(' ').filter(Boolean)) {
    const m = /^(.+):(\d+)\/(\d+)$/.exec(e);
    if (m) out[m[1]] = { memMiB: Number(m[2]), vcpus: Number(m[3]) };
  }
  return out;
}

/** available-od and reservation: `od, address, realServer` (available-od: `[, hostKey]`) */
export interface Od {
  od: string;
  address: string;
  realServer: string;
  /**
   * available-od only: the OD's SSH host key once re-identified: its public key blob (base64, as in
   * a known_hosts line), or only its fingerprint (`SHA256:...`, older records), or '-'.
   */
  hostKey?: string;
}

/** operation: `priority, manager, target` */
export interface Assignment {
  priority: 'P1' | 'P2';
  manager: string;
  target: string;
}

/** Drop trailing optional fields that hold their default, so old-format records round-trip. */
function trimDefaults(fields: string[], defaults: string[], required: number): RecordFields {
  let end = fields.length;
  while (end > required && fields[end - 1] === defaults[end - 1 - required]) end--;
  return fields.slice(0, end);
}

export function fromMember(r: RecordFields): Member {
  return {
    hostname: r[0],
    address: r[1],
    realServer: r[2],
    services: r[3],
    state: (r[4] as MemberState | undefined) ?? 'member',
    publicKey: r[5] ?? '-',
    dhKey: r[6] ?? '-',
  };
}

export function toMember(m: Pick<Member, 'hostname' | 'address' | 'realServer' | 'services'> & Partial<Member>): RecordFields {
  return trimDefaults(
    [m.hostname, m.address, m.realServer, m.services === '' ? '-' : m.services, m.state ?? 'member', m.publicKey ?? '-', m.dhKey ?? '-'],
    ['member', '-', '-'],
    4,
  );
}

export function fromProblem(r: RecordFields): Problem {
  return {
    target: r[0],
    detectedBy: r[1],
    kind: r[2] as ProblemKind,
    status: r[3] as ProblemStatus,
    backup: r[4],
    since: r[5],
    // An empty note is written '-' when an od follows it (a field is never empty in the middle).
    note: r[6] === undefined || (r[6] === '-' && r.length > 7) ? '' : r[6],
    od: r[7] ?? '-',
  };
}

export function toProblem(p: Omit<Problem, 'note' | 'od'> & { note?: string; od?: string }): RecordFields {
  const od = p.od ?? '-';
  const note = p.note ?? '';
  return trimDefaults([p.target, p.detectedBy, p.kind, p.status, p.backup, p.since, note === '' && od !== '-' ? '-' : note, od], ['', '-'], 6);
}

const optNumber = (v: string | undefined): number | undefined => (v === undefined || v === '-' ? undefined : Number(v));

export function fromRealServer(r: RecordFields): RealServer {
  const out: RealServer = { realServer: r[0], load: Number(r[1]), vmCount: Number(r[2]), state: r[3] as RealServerState };
  const mem = optNumber(r[4]);
  const cpu = optNumber(r[5]);
  const at = r[6] === undefined || r[6] === '-' ? undefined : Date.parse(r[6]);
  if (mem !== undefined) out.freeMemMiB = mem;
  if (cpu !== undefined) out.freeVcpus = cpu;
  if (at !== undefined && Number.isFinite(at)) out.measuredAt = at;
  const sizes = parseVmSizes(r[7]);
  if (sizes) out.vmSizes = sizes;
  return out;
}

/** load with two decimals (as the load collector writes it), so a tiny change makes no new record. */
export function toRealServer(rs: RealServer): RecordFields {
  const opt = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '-' : String(Math.floor(n)));
  return trimDefaults(
    [
      rs.realServer,
      (Number.isFinite(rs.load) && rs.load > 0 ? rs.load : 0).toFixed(2),
      String(Math.max(0, Math.floor(rs.vmCount))),
      rs.state,
      opt(rs.freeMemMiB === undefined ? undefined : Math.max(0, rs.freeMemMiB)),
      opt(rs.freeVcpus),
      rs.measuredAt === undefined || !Number.isFinite(rs.measuredAt) ? '-' : new Date(rs.measuredAt).toISOString(),
      formatVmSizes(rs.vmSizes),
    ],
    ['-', '-', '-', '-'],
    4,
  );
}

export function fromOd(r: RecordFields): Od {
  return { od: r[0], address: r[1], realServer: r[2], hostKey: r[3] ?? '-' };
}

/** The known_hosts form of a recorded host key blob (`ssh-ed25519 AAAA...`); undefined for a fingerprint or '-'. */
export function hostKeyLine(hostKey: string | undefined): string | undefined {
  if (!hostKey || !hostKey.startsWith('AAAA')) return undefined;
  const blob = Buffer.from(hostKey, 'base64');
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + len).toString('latin1');
  if (len < 1 || len > 64 || !/^[a-z0-9@.-]+$/.test(type)) return undefined;
  return `${type} ${hostKey}`;
}

/** The fingerprint (`SHA256:...`, as ssh-keygen -lf) of a recorded host key; undefined for '-'. */
export function hostKeyFingerprint(hostKey: string | undefined): string | undefined {
  if (!hostKey || hostKey === '-') return undefined;
  if (hostKey.startsWith('SHA256:')) return hostKey;
  return 'SHA256:' + createHash('sha256').update(Buffer.from(hostKey, 'base64')).digest('base64').replace(/=+$/, '');
}

export function toOd(o: Od): RecordFields {
  return trimDefaults([o.od, o.address, o.realServer, o.hostKey ?? '-'], ['-'], 3);
}

export function fromAssignment(r: RecordFields): Assignment {
  return { priority: r[0] as 'P1' | 'P2', manager: r[1], target: r[2] };
}

export function toAssignment(a: Assignment): RecordFields {
  return [a.priority, a.manager, a.target];
}

/**
 * A member in maintenance (lib/ops/maintenance.ts): its managers give it no verdict (the heartbeat
 * does not watch it) until it leaves maintenance. The heartbeat and the rehearsal read this rule.
 */
export function isResting(m: Member): boolean {
  return m.state === 'maintenance';
}

/** Members that count: in the group and not fenced (maintenance members still count as voters). */
export function isServing(m: Member): boolean {
  return m.state !== 'fenced';
}
