// How many original servers (ODs) each live real server should hold, and which clones to make
// (DESIGN.md "Recovery" 4): the target per live real server is the average number of VMs per live
// real server, rounded up; identities for new ODs come from the reservation file. Pure.
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { fromMember, fromOd, fromRealServer, isServing } from '../records/records';

export interface Identity {
  od: string;
  address: string;
  realServer: string;
}

export interface PoolNeed {
  realServer: string;
  /** Available ODs on it now (plus clones under way, counted as had). */
  have: number;
  target: number;
  /** Clones to make now (target - have, at least 0). */
  need: number;
  /** Reserved identities for those clones, in natural order (at most `need`). */
  identities: Identity[];
  /** Clones wanted but without a reserved identity: the operator must add reservations. */
  missingIdentities: number;
}

export interface PoolPlan {
  liveRealServers: string[];
  vmCount: number;
  /** ceil(vmCount / live real servers); 0 when no real server is up. */
  target: number;
  needs: PoolNeed[];
}

/** ceil(VMs / live real servers): the OD count each live real server keeps. */
export function targetOdCount(vmCount: number, liveRealServers: number): number {
  if (!Number.isInteger(vmCount) || vmCount < 0) throw new RangeError(`VM count ${vmCount} is not a non-negative integer`);
  if (!Number.isInteger(liveRealServers) || liveRealServers < 0) throw new RangeError(`real server count ${liveRealServers} is not a non-negative integer`);
  return liveRealServers === 0 ? 0 : Math.ceil(vmCount / liveRealServers);
}

export interface PoolFiles {
  group: RecordFields[];
  realserver: RecordFields[];
  availableOd: RecordFields[];
  reservation: RecordFields[];
}

/**
 * The plan from the files. VMs are the group file's members (a member whose host failed still
 * counts: it is coming back on a live host). Live real servers are those the realserver file says
 * are `up`. `inFlight` are OD names being cloned right now (not yet in available-od): counted as
 * had, and their reservations are not handed out again.
 */
export function planPool(files: PoolFiles, inFlight: Iterable<string> = []): PoolPlan {
  const busy = new Set(inFlight);
  const availableOd = files.availableOd.map(fromOd);
  const reservation = files.reservation.map(fromOd);
  // An identity already in available-od (Add done, reservation Del not yet) is not free.
  const made = new Set(availableOd.map((o) => o.od));
  const live = files.realserver
    .map(fromRealServer)
    .filter((r) => r.state === 'up')
    .map((r) => r.realServer)
    .sort(naturalCompare);
  // A fenced member was replaced by its backup (also in the group): it is not a VM any more.
  const vmCount = files.group.map(fromMember).filter(isServing).length;
  const target = targetOdCount(vmCount, live.length);
  const needs = live.map((rs) => {
    const ods = availableOd.filter((o) => o.realServer === rs).length;
    const cloning = reservation.filter((o) => o.realServer === rs && busy.has(o.od)).length;
    const have = ods + cloning;
    const need = Math.max(0, target - have);
    const free = reservation
      .filter((o) => o.realServer === rs && !busy.has(o.od) && !made.has(o.od))
      .sort((a, b) => naturalCompare(a.od, b.od));
    const identities = free.slice(0, need);
    return { realServer: rs, have, target, need, identities, missingIdentities: need - identities.length };
  });
  return { liveRealServers: live, vmCount, target, needs };
}
