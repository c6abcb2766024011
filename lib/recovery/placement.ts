// Where a backup goes: the real server and the original server (OD) to resume, chosen from the
// realserver and available-od files (DESIGN.md "Recovery" 2). Pure apart from the clock that
// judges the figures' age (opts.now, default now): the same files give the same answer on every
// manager, and every answer says why (the candidates, their figures and the reason of each).
//
// Eligible: state up, not excluded, an available OD, and (when the failed VM's size is known and
// the host's capacity figures are in the file) free memory and free vCPUs that fit it.
// Order among the eligible (compareCandidates), first difference wins:
//   1. fewest members of the failed VM's service group already on it (anti-affinity)
//   2. fresh figures before stale ones (measuredAt older than maxAgeMs; no time = not judged)
//   3. load in steps of LOAD_STEP per CPU (so noise of a few hundredths does not decide)
//   4. fewest VMs (ties spread: each placement adds one, the next goes elsewhere)
//   5. exact load, then name (natural order)
import type { RecordFields } from '../records/files';
import { fromRealServer } from '../records/records';
import { naturalCompare } from '../records/natural-sort';

/** Loads closer than this (per CPU) are the same load for placement. */
export const LOAD_STEP = 0.25;
/** Capacity figures older than this rank after fresh ones (3 of the collector's 60 s refreshes). */
export const DEFAULT_MAX_AGE_MS = 180_000;

/** What a VM needs to run: memory (MiB) and vCPUs. Unknown parts are not checked. */
export interface VmSize {
  memMiB?: number;
  vcpus?: number;
}

export interface RealServerRow {
  realServer: string;
  load: number;
  vmCount: number;
  state: string;
  freeMemMiB?: number;
  freeVcpus?: number;
  /** epoch ms of the figures. */
  measuredAt?: number;
}

export interface OdRow {
  od: string;
  address: string;
  realServer: string;
}

/** One real server as the placer saw it. Ineligible ones say why. */
export interface Candidate {
  realServer: string;
  load: number;
  vmCount: number;
  state: string;
  freeMemMiB?: number;
  freeVcpus?: number;
  measuredAt?: number;
  /** Age of the figures at decision time, ms (when the record says when they were read). */
  ageMs?: number;
  /** false when the figures are older than maxAgeMs. */
  fresh: boolean;
  /** Members of the failed VM's service group already on this host. */
  sameService: number;
  /** Available ODs on it (natural order), minus excluded ones. */
  ods: string[];
  eligible: boolean;
  reason?: string;
  /** 1 = chosen; eligible candidates ranked in order, ineligible ones have no rank. */
  rank?: number;
}

export interface Placement {
  realServer: string;
  od: string;
  address: string;
  candidates: Candidate[];
}

export class PlacementError extends Error {
  constructor(
    message: string,
    readonly candidates: Candidate[],
  ) {
    super(message);
    this.name = 'PlacementError';
  }
}

export interface PlaceOptions {
  /** ODs not to use (a resume race lost, a resume that failed). */
  excludeOds?: Iterable<string>;
  /** Real servers not to use (e.g. the failed target's host when it cannot be reached). */
  excludeRealServers?: Iterable<string>;
  /** The failed VM's size: a host whose free memory or vCPUs are known and too small is not eligible. */
  need?: VmSize;
  /** The real server of every other live member of the failed VM's service group (one entry each). */
  serviceGroupOn?: Iterable<string>;
  /** Decision time (epoch ms) for the figures' age; default now. */
  now?: number;
  /** Figures older than this rank after fresh ones (ms); default DEFAULT_MAX_AGE_MS. */
  maxAgeMs?: number;
}

/**
 * The real servers of the other members of `target`'s service group: members of the group file
 * whose services field is the same as the target's (and not empty), so two members of one service
 * are kept on different hosts where possible. Fenced members do not count.
 */
export function serviceGroupHosts(group: RecordFields[], target: string, services?: string): string[] {
  const mine = services ?? group.find((g) => g[0] === target)?.[3];
  if (!mine || mine === '-' || mine.trim() === '') return [];
  return group.filter((g) => g[0] !== target && g[3] === mine && g[4] !== 'fenced').map((g) => g[2]);
}

export function realServerRows(records: RecordFields[]): RealServerRow[] {
  return records.map((r) => fromRealServer(r));
}

export function odRows(records: RecordFields[]): OdRow[] {
  return records.map((r) => ({ od: r[0], address: r[1], realServer: r[2] }));
}

/** The order of the file header: anti-affinity, freshness, load step, VM count, load, name. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  return (
    a.sameService - b.sameService ||
    Number(!a.fresh) - Number(!b.fresh) ||
    Math.floor(a.load / LOAD_STEP + 1e-9) - Math.floor(b.load / LOAD_STEP + 1e-9) ||
    a.vmCount - b.vmCount ||
    a.load - b.load ||
    naturalCompare(a.realServer, b.realServer)
  );
}

/** Why the host cannot hold a VM of this size, or undefined when it fits (or cannot be told). */
export function doesNotFit(rs: Pick<RealServerRow, 'freeMemMiB' | 'freeVcpus'>, need: VmSize | undefined): string | undefined {
  if (!need) return undefined;
  if (need.memMiB !== undefined && rs.freeMemMiB !== undefined && rs.freeMemMiB < need.memMiB) {
    return `needs ${need.memMiB} MiB, ${rs.freeMemMiB} MiB free`;
  }
  if (need.vcpus !== undefined && rs.freeVcpus !== undefined && rs.freeVcpus < need.vcpus) {
    return `needs ${need.vcpus} vCPU, ${rs.freeVcpus} free`;
  }
  return undefined;
}

/** Score every real server of the file; eligible = up, not excluded, with an available OD, fits. */
export function scoreCandidates(realservers: RealServerRow[], ods: OdRow[], opts: PlaceOptions = {}): Candidate[] {
  const excludeOds = new Set(opts.excludeOds ?? []);
  const excludeRs = new Set(opts.excludeRealServers ?? []);
  const now = opts.now ?? Date.now();
  const maxAge = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const peers = new Map<string, number>();
  for (const h of opts.serviceGroupOn ?? []) peers.set(h, (peers.get(h) ?? 0) + 1);
  const cands: Candidate[] = realservers.map((rs) => {
    const mine = ods
      .filter((o) => o.realServer === rs.realServer && !excludeOds.has(o.od))
      .map((o) => o.od)
      .sort(naturalCompare);
    const ageMs = rs.measuredAt === undefined ? undefined : Math.max(0, now - rs.measuredAt);
    const fresh = ageMs === undefined || ageMs <= maxAge;
    let reason: string | undefined;
    if (rs.state !== 'up') reason = `state ${rs.state}`;
    else if (excludeRs.has(rs.realServer)) reason = 'excluded';
    else if (!Number.isFinite(rs.load) || !Number.isFinite(rs.vmCount)) reason = 'load or VM count unreadable';
    else if (mine.length === 0) reason = 'no available OD';
    else reason = doesNotFit(rs, opts.need);
    const c: Candidate = { ...rs, ods: mine, fresh, sameService: peers.get(rs.realServer) ?? 0, eligible: reason === undefined, reason };
    if (ageMs !== undefined) c.ageMs = ageMs;
    return c;
  });
  const ranked = cands.filter((c) => c.eligible).sort(compareCandidates);
  ranked.forEach((c, i) => (c.rank = i + 1));
  // Eligible first in rank order, then the rest by name: easy to read in a debug node.
  return [...ranked, ...cands.filter((c) => !c.eligible).sort((a, b) => naturalCompare(a.realServer, b.realServer))];
}

function whyNone(cands: Candidate[]): string {
  if (cands.length === 0) return 'no real server can take the backup: the realserver file is empty';
  return `no real server can take the backup: ${cands.map((c) => `${c.realServer} ${c.reason}`).join('; ')}`;
}

/** The real server and OD for one backup, or a PlacementError saying why none fits. */
export function place(realservers: RealServerRow[], ods: OdRow[], opts: PlaceOptions = {}): Placement {
  const candidates = scoreCandidates(realservers, ods, opts);
  const best = candidates[0];
  if (!best || !best.eligible) throw new PlacementError(whyNone(candidates), candidates);
  const od = ods.find((o) => o.od === best.ods[0] && o.realServer === best.realServer)!;
  return { realServer: best.realServer, od: od.od, address: od.address, candidates };
}

export interface FailedTarget {
  target: string;
  realServer: string;
  /** The failed VM's size (overrides opts.need for this target). */
  need?: VmSize;
  /** Targets with the same key (e.g. their services field) are kept apart like a service group. */
  serviceGroup?: string;
}

export interface ManyResult {
  /** Per target, in natural order of the targets. */
  placements: { target: string; placement?: Placement; error?: string }[];
}

/**
 * Several failures at once (a whole real server, Fig. 3 of the note): placed one after the other in
 * natural order of the targets, each choice counted against its real server before the next (one
 * more VM, one OD fewer, and the load the server carries per VM now), so the backups spread
 * instead of piling on the least loaded host: RS3 fails, S3b goes to RS1 and S6b to RS2.
 * Every manager computes the same split from the same files.
 */
export function placeMany(targets: FailedTarget[], realservers: RealServerRow[], ods: OdRow[], opts: PlaceOptions = {}): ManyResult {
  const rs = realservers.map((r) => ({ ...r }));
  const used = new Set(opts.excludeOds ?? []);
  const out: ManyResult['placements'] = [];
  /** Hosts of the backups placed so far, by service group. */
  const placedBy = new Map<string, string[]>();
  const now = opts.now ?? Date.now();
  for (const t of [...targets].sort((a, b) => naturalCompare(a.target, b.target))) {
    try {
      const need = t.need ?? opts.need;
      const serviceGroupOn = [...(opts.serviceGroupOn ?? []), ...(t.serviceGroup ? (placedBy.get(t.serviceGroup) ?? []) : [])];
      const p = place(rs, ods, { ...opts, now, need, serviceGroupOn, excludeOds: used });
      out.push({ target: t.target, placement: p });
      used.add(p.od);
      if (t.serviceGroup) placedBy.set(t.serviceGroup, [...(placedBy.get(t.serviceGroup) ?? []), p.realServer]);
      const host = rs.find((r) => r.realServer === p.realServer)!;
      // Without a measurement, a new VM is assumed to add this host's current load per VM
      // (a host running nothing is assumed to gain nothing: the VM count breaks the tie).
      const perVm = host.vmCount > 0 ? host.load / host.vmCount : 0;
      host.load += perVm;
      host.vmCount += 1;
      if (host.freeMemMiB !== undefined && need?.memMiB !== undefined) host.freeMemMiB -= need.memMiB;
      if (host.freeVcpus !== undefined && need?.vcpus !== undefined) host.freeVcpus -= need.vcpus;
    } catch (e) {
      out.push({ target: t.target, error: (e as Error).message });
    }
  }
  return { placements: out };
}
