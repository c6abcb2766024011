// Where a backup goes: the real server and the original server (OD) to resume, chosen from the
// realserver and available-od files (DESIGN.md "Recovery" 2). Pure: the same files give the same
// answer on every manager, and every answer says why (the candidates and their scores).
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';

export interface RealServerRow {
  realServer: string;
  load: number;
  vmCount: number;
  state: string;
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
}

export function realServerRows(records: RecordFields[]): RealServerRow[] {
  return records.map((r) => ({ realServer: r[0], load: Number(r[1]), vmCount: Number(r[2]), state: r[3] }));
}

export function odRows(records: RecordFields[]): OdRow[] {
  return records.map((r) => ({ od: r[0], address: r[1], realServer: r[2] }));
}

/** Lowest load, then fewest VMs, then name (natural order): the order DESIGN.md fixes. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  return a.load - b.load || a.vmCount - b.vmCount || naturalCompare(a.realServer, b.realServer);
}

/** Score every real server of the file; eligible = up, not excluded, with an available OD. */
export function scoreCandidates(realservers: RealServerRow[], ods: OdRow[], opts: PlaceOptions = {}): Candidate[] {
  const excludeOds = new Set(opts.excludeOds ?? []);
  const excludeRs = new Set(opts.excludeRealServers ?? []);
  const cands: Candidate[] = realservers.map((rs) => {
    const mine = ods
      .filter((o) => o.realServer === rs.realServer && !excludeOds.has(o.od))
      .map((o) => o.od)
      .sort(naturalCompare);
    let reason: string | undefined;
    if (rs.state !== 'up') reason = `state ${rs.state}`;
    else if (excludeRs.has(rs.realServer)) reason = 'excluded';
    else if (!Number.isFinite(rs.load) || !Number.isFinite(rs.vmCount)) reason = 'load or VM count unreadable';
    else if (mine.length === 0) reason = 'no available OD';
    return { ...rs, ods: mine, eligible: reason === undefined, reason };
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
  for (const t of [...targets].sort((a, b) => naturalCompare(a.target, b.target))) {
    try {
      const p = place(rs, ods, { ...opts, excludeOds: used });
      out.push({ target: t.target, placement: p });
      used.add(p.od);
      const host = rs.find((r) => r.realServer === p.realServer)!;
      // Without a measurement, a new VM is assumed to add this host's current load per VM
      // (a host running nothing is assumed to gain nothing: the VM count breaks the tie).
      const perVm = host.vmCount > 0 ? host.load / host.vmCount : 0;
      host.load += perVm;
      host.vmCount += 1;
    } catch (e) {
      out.push({ target: t.target, error: (e as Error).message });
    }
  }
  return { placements: out };
}
