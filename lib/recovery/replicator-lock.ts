// Exactly one manager replicates ODs for a given real server at a time. Pure.
//
// The rule (no lease, no extra messages: every manager computes it from its own replica of the
// files, so all agree once the files agree):
//   - the live managers are the group file's members that have no failure being handled in the
//     problem file (status confirmed, fencing, recovering or failed), in ring (natural) order;
//   - the live real servers are the realserver file's `up` records, in natural order;
//   - the i-th live real server is replicated by the (i mod n)-th live manager.
// Different real servers thus get different managers (clones on different hosts run in
// parallel, and no one manager carries the whole pool). When a manager fails or a member joins,
// the assignment moves with the files.
//
// While the files converge (~0.3 s after a change) two managers may both believe they are the
// one. The host is the second lock: a clone's name is its reserved identity, and `virt-clone`
// refuses a name already in use, so the second manager's clone fails with the driver's
// `name-in-use` outcome and it stands down ("someone else is on it"). A lease record would need a
// clock agreement between VMs that this design avoids. Fenced members are not live managers.
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { ACTIVE_FAILURE_STATUSES, isStatusIn } from '../records/problem';
import { fromMember, fromProblem, fromRealServer, isServing } from '../records/records';

export function liveManagers(group: RecordFields[], problem: RecordFields[]): string[] {
  const failed = new Set(problem.map(fromProblem).filter((p) => isStatusIn(p.status, ACTIVE_FAILURE_STATUSES)).map((p) => p.target));
  return group
    .map(fromMember)
    .filter((m) => isServing(m) && !failed.has(m.hostname))
    .map((m) => m.hostname)
    .sort(naturalCompare);
}

export function liveRealServers(realserver: RecordFields[]): string[] {
  return realserver
    .map(fromRealServer)
    .filter((r) => r.state === 'up')
    .map((r) => r.realServer)
    .sort(naturalCompare);
}

/** Real server -> the manager that replicates for it. */
export function replicatorAssignment(files: { group: RecordFields[]; problem: RecordFields[]; realserver: RecordFields[] }): Map<string, string> {
  const managers = liveManagers(files.group, files.problem);
  const out = new Map<string, string>();
  if (managers.length === 0) return out;
  liveRealServers(files.realserver).forEach((rs, i) => out.set(rs, managers[i % managers.length]));
  return out;
}

/** The real servers this manager replicates for (natural order). */
export function replicatesFor(me: string, files: { group: RecordFields[]; problem: RecordFields[]; realserver: RecordFields[] }): string[] {
  return [...replicatorAssignment(files)].filter(([, m]) => m === me).map(([rs]) => rs);
}

