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
// refuses a name already in use, so the second manager's clone fails and it stands down (the
// replicator treats "name in use" as "someone else is on it"). A lease record would need a
// clock agreement between VMs that this design avoids.
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';

export const ACTIVE_FAILURE = ['confirmed', 'fencing', 'recovering', 'failed'];

export function liveManagers(group: RecordFields[], problem: RecordFields[]): string[] {
  const failed = new Set(problem.filter((p) => ACTIVE_FAILURE.includes(p[3])).map((p) => p[0]));
  return group
    .map((g) => g[0])
    .filter((h) => !failed.has(h))
    .sort(naturalCompare);
}

export function liveRealServers(realserver: RecordFields[]): string[] {
  return realserver
    .filter((r) => r[3] === 'up')
    .map((r) => r[0])
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

/** virt-clone's refusal of an existing name: another replicator made (or is making) this OD. */
export function isNameInUse(message: string): boolean {
  return /already in use|already exists|name.*in use/i.test(message);
}
