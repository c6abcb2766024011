// Edit authority: who may change which record. Checked by every receiver on every diff, after the
// diff's signature proved its origin (sem-protocol, vm-key); a diff that breaks a rule is refused
// with the rule's reason, in the receiver's log and in the answer to the sender. The rules
// (docs/security.md, "Edit authority"):
//
//   G1  A VM's own group record (key = its hostname) may be added, changed or deleted by that VM.
//   G2  Another VM's group record may be changed or deleted only during a recovery of it: the
//       receiver holds a problem record for it with a claimed status (confirmed, fencing,
//       recovering, recovered, failed), dated (`since`) within CONFIRMATION_TTL_MS, detected by
//       one of its managers (P1/P2 in the receiver's operation file), and the sender is one of
//       those managers or that problem's detector.
//       G2m: when that VM's record is in `maintenance` (an operator planned its move, G4), the
//       detector need not be one of its managers: a planned move (evacuation, lib/ops/evacuate.ts)
//       runs on the VM the operator used, which may watch other VMs; the sender must then be the
//       problem's detector itself.
//   G3  A backup's group record (a VM that is not yet a member) may be added or changed by another
//       VM when a claimed, dated problem record names it as the backup.
//   G4  An operator's state change of another VM's group record: a Mod that changes nothing but
//       its `state` between member and maintenance (lib/ops/maintenance.ts), or from fenced back
//       to member (re-admission, lib/monitor/readmit.ts) or to maintenance (an evacuation whose
//       move failed starts the VM again in place, lib/ops/evacuate.ts), may be sent by any member: the guard is
//       the admin permission (p2p-ha.write) on the VM the operator used. Residual risk: an insider
//       holding one VM can put others into maintenance (their monitors stop watching them).
//   P1  A problem record may be added or changed by the manager it names (detectedBy = sender),
//       or, keeping the detector it has, by a manager (P1/P2) of its target (the handler of a
//       recovery updates the status). Nobody writes a confirmation in another manager's name.
//   P2  A problem record may be deleted by its detector, its target, or a manager of its target.
//   --  realserver, available-od and reservation are shared work files (load collector, OD
//       replicator, backup starter): any member may edit them.
//
// Confirmations expire: a problem record without a valid `since`, older than the TTL, or dated
// further ahead than the clocks may differ (CLAIM_SKEW_MS: a claim dated in the future would never
// expire), supports no recovery (G2, G3). At merge the same holds at the time of the origin's
// signed diff (mergeRefusal). Residual risks are listed in docs/security.md.
import type { Edit } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import { operationRecords } from '../records/ring';
import { LIMITS } from './sem-protocol';

export const CONFIRMATION_TTL_MS = 30 * 60 * 1000;
/** How far ahead of the judging clock a claim's date may be: the clock difference a diff's time may
 * show (sem-protocol LIMITS.maxSkewMs). */
export const CLAIM_SKEW_MS = LIMITS.maxSkewMs;
const CLAIMED = new Set(['confirmed', 'fencing', 'recovering', 'recovered', 'failed']);

/** What the rules read: the receiver's files as they are before the diff. */
export interface AuthorityView {
  get(file: 'group' | 'problem', key: string): RecordFields | undefined;
  records(file: 'group' | 'problem'): RecordFields[];
  /**
   * At merge only: the problem records that verified deletions removed (each the record its
   * origin's signed Del diff carries), for the keys the problem file holds none of now.
   */
  deletedProblems?(): RecordFields[];
}

/** P1/P2 managers of a target in the ring derived from the group file. */
export function managersOf(group: RecordFields[], target: string): string[] {
  return operationRecords(group)
    .filter((o) => o[2] === target)
    .map((o) => o[1]);
}

function freshClaim(p: RecordFields | undefined, now: number, ttlMs: number): string | null {
  if (!p) return 'no problem record';
  if (!CLAIMED.has(p[3])) return `its problem record is only ${p[3]}`;
  const since = p[5] === '-' ? NaN : Date.parse(p[5]);
  if (!Number.isFinite(since)) return 'its problem record carries no date';
  if (now - since > ttlMs) return `its problem record's confirmation expired (${p[5]})`;
  if (since - now > CLAIM_SKEW_MS) return `its problem record is dated in the future (${p[5]})`;
  return null;
}

/** Why `origin` may not make this edit, or null when a rule allows it. */
export function authorityRefusal(origin: string, edit: Edit, view: AuthorityView, now = Date.now(), ttlMs = CONFIRMATION_TTL_MS): string | null {
  const key = edit.record[0];
  const beforeKey = edit.before?.[0];
  if (edit.file === 'group') {
    if (operatorStateChange(edit)) return null; // G4
    for (const k of new Set([key, beforeKey ?? key])) {
      if (k === origin) continue; // G1
      const current = view.get('group', k);
      if (current && !(edit.op !== 'Del' && k === key && backupOf(view, k, now, ttlMs))) {
        // G2: a member's record, changed or deleted by another VM.
        const p = view.get('problem', k);
        const stale = freshClaim(p, now, ttlMs);
        if (stale) return `${origin} may not change the group record of ${k} (G2): ${stale}`;
        if (current[4] === 'maintenance' && origin === p![1]) continue; // G2m: a planned move
        const managers = managersOf(view.records('group'), k);
        if (!managers.includes(p![1])) return `${origin} may not change the group record of ${k} (G2): its problem was detected by ${p![1]}, not by one of its managers (${managers.join(' ') || 'none'})`;
        if (origin !== p![1] && !managers.includes(origin)) return `${origin} may not change the group record of ${k} (G2): neither a manager of ${k} nor the detector of its failure`;
        continue;
      }
      if (!current) {
        if (edit.op === 'Del') return `${origin} may not delete the group record of ${k}: there is none`;
        if (!backupOf(view, k, now, ttlMs)) return `${origin} may not add the group record of ${k} (G3): no confirmed recovery names ${k} as its backup`;
      }
    }
    return null;
  }
  if (edit.file === 'problem') {
    const target = key;
    const managers = managersOf(view.records('group'), target);
    const current = view.get('problem', target);
    if (edit.op === 'Del') {
      if (origin === current?.[1] || origin === target || managers.includes(origin)) return null;
      return `${origin} may not delete the problem record of ${target} (P2): neither its detector, its target, nor a manager of ${target}`;
    }
    const named = edit.record[1];
    if (named === origin) return null;
    if (edit.op === 'Mod' && edit.before?.[1] === named && managers.includes(origin)) return null;
    return `${origin} may not write a problem record of ${target} in the name of ${named} (P1)`;
  }
  return null;
}

/** G4: a Mod of one group record whose only change is member <-> maintenance, or fenced -> member or maintenance. */
function operatorStateChange(edit: Edit): boolean {
  if (edit.op !== 'Mod' || !edit.before) return false;
  const b = edit.before;
  const r = edit.record;
  for (let i = 0; i < 4; i++) if (b[i] !== r[i]) return false;
  // The published keys (Ed25519, X25519) stay as they are: only their owner changes them (G1).
  for (const i of [5, 6]) if ((b[i] ?? '-') !== (r[i] ?? '-')) return false;
  if (r.length > 7) return false;
  const from = b[4] ?? 'member';
  const to = r[4] ?? 'member';
  return (from === 'member' && to === 'maintenance') || (from === 'maintenance' && to === 'member') || (from === 'fenced' && (to === 'member' || to === 'maintenance'));
}

/** True when a claimed, dated problem record names `k` as its backup (G3). */
function backupOf(view: AuthorityView, k: string, now: number, ttlMs: number): boolean {
  return view.records('problem').some((p) => p[4] === k && freshClaim(p, now, ttlMs) === null);
}

/**
 * Authority at merge (anti-entropy, issue 16 with 14): an entry that a summary/pull partner or a
 * snapshot brings, newer than what this VM holds, whose origin is proven by its own signature
 * (entry-verify.ts, before this), checked against the rules as far as they can be decided from
 * state alone. A diff is judged when it arrives, in the order edits happen; a merged entry is the
 * latest version of one key, possibly long after its edit, so the rules are relaxed where time or
 * order decide:
 *
 *   group record k by another VM (origin != k), when this VM holds k's record (altering it):
 *       allowed when the entry changes only its operator state (G4), when a claimed problem record
 *       of k was detected by a manager of k and the origin is that detector or a manager of k (G2),
 *       when k is in maintenance and the origin is the detector (G2m), or when a claimed problem
 *       record names k as its backup (G3). Managers are read in this VM's ring before the merge.
 *   group record k by another VM that this VM does not hold (bootstrap: a newcomer's first
 *       snapshot, a backup's record): the same G2, G2m and G3 support, read in the view (this VM's
 *       files with the merge's entries overlaid; k counted in the ring as when it served), or an
 *       operator's state change as the entry's own signed diff shows it (G4).
 *   problem record in the name of another (detectedBy != origin): allowed when this VM's record of
 *       the target names the same detector (P1, kept), or when the origin is a manager of the target
 *       (in this VM's ring, or, for a record not held, in the view's ring with the target counted).
 *   problem deletion: by its detector, its target or a manager (P2), or over nothing held.
 *   other files: shared work files, no rule.
 *
 * `view` is this VM's state overlaid with the entries of the same merge that win (a problem record
 * and the group change it supports arrive together); `ring` is this VM's group file before the
 * merge; `proofEdit` is the entry's own edit when its proof is its origin's signed diff.
 *
 * Time (docs/security.md rule 7, "at merge"): a claim supports G2, G2m and G3 only when it was
 * fresh at `at`, the time of the origin's signed diff that wrote the entry (its `ts`, which the
 * proof carries and the origin signed): exactly what a live receiver of that diff would have
 * accepted then, however late the merge. `at` null (wire security on, but the entry's proof is no
 * diff: an entry signature, which carries no time) satisfies none of them; undefined (wire
 * security off: no proofs at all, for measurements only) judges the claim's status alone.
 * A problem record in another's name (P1) is judged from the entry's own diff when it has one,
 * as live: a Mod by a manager of the target whose `before` names the same detector.
 * Residual (docs/security.md rule 10): a VM that holds nothing yet cannot tell a G4-shaped diff of
 * an insider from an operator's.
 */
export function mergeRefusal(
  origin: string,
  file: string,
  key: string,
  value: RecordFields | null,
  held: RecordFields | undefined,
  view: AuthorityView,
  ring: RecordFields[],
  proofEdit?: Edit,
  at?: number | null,
): string | null {
  // A claim as a live receiver of the entry's diff judged it, at the diff's time.
  const claimed = (p: RecordFields | undefined): p is RecordFields =>
    !!p && (at === undefined ? CLAIMED.has(p[3]) : at !== null && freshClaim(p, at, CONFIRMATION_TTL_MS) === null);
  // This VM missed an operator's state change of the record (G4, which any VM may make: fenced ->
  // member, a re-admission) that the entry's own signed diff shows as its `before`: the entry is
  // judged with the ring as it is after that change, as a VM that had merged it would judge it.
  // Seen in bench:failover: an OD frozen through its target's re-admission refused the target's
  // next fence mark at every exchange (no managers: the target is fenced in its files) and stayed
  // diverged, the recovery's spread to it stretched to a second. Grants nothing the missed change
  // would not have: the origin must still be the claim's detector or a manager (G2).
  const missedG4 = !!held && proofEdit?.file === 'group' && proofEdit.op === 'Mod' && !!proofEdit.before && proofEdit.before[0] === key && operatorStateChange({ file: 'group', op: 'Mod', before: held, record: proofEdit.before });
  const ringNow = missedG4 ? [...ring.filter((r) => r[0] !== key), proofEdit!.before!] : ring;
  // Managers of k: in this VM's ring for what it holds; for a record it does not hold, in the
  // view's ring with k counted as serving (a fenced VM has left the ring, its managers have not).
  const managersOfKey = (k: string) => (held ? managersOf(ringNow, k) : managersOf(withServing(view.records('group'), k), k));
  if (file === 'group') {
    if (key === origin) return null; // G1
    if (held && value && operatorStateChange({ file: 'group', op: 'Mod', before: held, record: value })) return null; // G4
    if (!held && proofEdit && proofEdit.file === 'group' && sameFields(proofEdit.record, value) && operatorStateChange(proofEdit)) return null; // G4, bootstrap
    const managers = managersOfKey(key);
    // A VM that merges a group change after the claim behind it was deleted (it was down or cut
    // off meanwhile) still sees the claim in the deletion's signed diff: without it, it would
    // refuse the change for good and stay diverged. This grants nothing new: the origin must still
    // be the claim's detector or a manager of `key`, who may claim at any time.
    // G3 likewise reads the claims that named `key` as their backup and were deleted since.
    const deleted = view.deletedProblems?.() ?? [];
    const p = view.get('problem', key) ?? deleted.find((q) => q[0] === key);
    if (claimed(p) && managers.includes(p[1]) && (origin === p[1] || managers.includes(origin))) return null; // G2
    const was = held ?? (proofEdit?.op === 'Mod' ? proofEdit.before : undefined);
    if (claimed(p) && was?.[4] === 'maintenance' && origin === p[1]) return null; // G2m
    if (value && [...view.records('problem'), ...deleted].some((q) => q[4] === key && claimed(q))) return null; // G3
    const when = at === undefined ? '' : at === null ? ' (its proof carries no time to judge a confirmation at)' : ` at the time of its diff (${new Date(at).toISOString()})`;
    return `${origin} may not ${value ? 'change' : 'delete'} the group record of ${key}: no claimed problem record of ${key} by one of its managers (${managers.join(' ') || 'none'}) fresh${when} supports it (G2, G3), and it is not an operator's state change (G4)`;
  }
  if (file === 'problem') {
    const managers = managersOfKey(key);
    if (!value) {
      if (!held || origin === held[1] || origin === key || managers.includes(origin)) return null;
      return `${origin} may not delete the problem record of ${key} (P2): neither its detector, its target, nor a manager of ${key}`;
    }
    const named = value[1];
    if (named === origin) return null;
    // A manager's status update keeps the detector: the entry's own diff shows it (as live), or,
    // without a diff, the record this VM holds does.
    const keeps = proofEdit ? proofEdit.op === 'Mod' && proofEdit.before?.[1] === named : held?.[1] === named;
    // Managers in this VM's ring or in the view's (the origin judged with the ring it had then).
    if (keeps && (managers.includes(origin) || managersOf(withServing(view.records('group'), key), key).includes(origin))) return null;
    return `${origin} may not write a problem record of ${key} in the name of ${named} (P1)`;
  }
  return null;
}

const sameFields = (a: RecordFields, b: RecordFields | null) => !!b && a.length === b.length && a.every((v, i) => v === b[i]);

/** The group records with `k`'s counted as serving (for the managers it had while it served). */
function withServing(group: RecordFields[], k: string): RecordFields[] {
  const out = group.filter((r) => r[0] !== k);
  const own = group.find((r) => r[0] === k);
  out.push(own ? [own[0], own[1], own[2], own[3], 'member', ...own.slice(5)] : [k, '0.0.0.0', '-', '-']);
  return out;
}

/**
 * A batch (several records in one diff, sem-protocol.ts) is judged record by record, in its order,
 * exactly as if its records had come as separate diffs one after another: each is checked against
 * the receiver's files with the batch's earlier records already applied (a problem record and the
 * group change it supports may travel together). One refused record refuses the whole batch.
 * Returns the first refusal with its record's index, or null.
 */
export function batchAuthorityRefusal(origin: string, edits: Edit[], view: AuthorityView, now = Date.now(), ttlMs = CONFIRMATION_TTL_MS): { index: number; reason: string } | null {
  const overlay = { group: new Map<string, RecordFields | null>(), problem: new Map<string, RecordFields | null>() };
  const seen: AuthorityView = {
    get: (f, k) => (overlay[f].has(k) ? (overlay[f].get(k) ?? undefined) : view.get(f, k)),
    records: (f) => {
      const out = view.records(f).filter((r) => !overlay[f].has(r[0]));
      for (const r of overlay[f].values()) if (r) out.push(r);
      return out;
    },
  };
  for (let i = 0; i < edits.length; i++) {
    const e = edits[i];
    const reason = authorityRefusal(origin, e, seen, now, ttlMs);
    if (reason) return { index: i, reason };
    if (e.file !== 'group' && e.file !== 'problem') continue;
    if (e.op === 'Mod' && e.before && e.before[0] !== e.record[0]) overlay[e.file].set(e.before[0], null);
    overlay[e.file].set(e.record[0], e.op === 'Del' ? null : e.record);
  }
  return null;
}
