// Taking over a stalled recovery: the acting manager of a recovery (the problem record's
// detectedBy, who claimed it) died half-way, leaving the record `confirmed`, `fencing` or
// `recovering`. Another manager continues it by running the backup plan again from where the
// records say it is (backup-plan.ts is safe to repeat: the recorded backup name and OD are kept,
// a recorded fence stands). Pure: the caller (p2p-backup-starter) supplies the time this VM last
// saw the record change, the probe answer and the quorum, and runs the plan.
//
// The rule, for one problem record, decided alike on every VM from the same files:
//  1. Stalled: status confirmed, fencing or recovering, and no change of the record seen for
//     stallMs (default 60 s; the record changes at every step of a live recovery; the p2p-events
//     alert `recovery-stalled` comes later, at 120 s, and says so if nobody could take over).
//  2. The acting manager is gone: not a serving member of the group (fenced, in maintenance, or
//     deleted), or its own problem record says it failed (confirmed ... failed), or, judged by the
//     taker alone, it does not answer its manager ping. A manager that answers keeps its recovery
//     (a slow installation procedure is not a stall): the alert tells the operator.
//  3. Who takes over (takers()): while the target is still a serving member, its managers in the
//     ring (P1, P2) other than the acting one, in that order: only they may mark it fenced
//     (edit authority G2). Once the target is recorded `fenced`, the serving members in ring order
//     after the acting manager. Members whose own failure is being handled are skipped. The i-th
//     taker (from 0) acts after stallMs * (1 + i): a taker that is itself silently dead is
//     followed by the next one, and a live taker's run changes the record, which restarts
//     everyone's clock.
//  4. Only with a majority (the isolation rule's quorum): a minority side takes over nothing.
//  5. The taker writes the record in its own name (detectedBy = taker, same status, same since:
//     edit authority P1 lets a manager write only in its own name), then runs the plan. What the
//     plan cannot do (fence not confirmed, no OD, a procedure failing) ends the record `failed`
//     with the reason, which p2p-events alerts (`recovery-failed`).
// Never two serving copies: the plan fences before anything else and continues with the OD the
// record names (written before every resume), so a takeover never resumes a second OD for one
// target. Residual risk (docs/operations.md): an acting manager cut off from the taker but alive
// may still be running the same plan; both then work on the same recorded OD.
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { ACTIVE_FAILURE_STATUSES, IN_HAND_STATUSES, isStatusIn } from '../records/problem';
import { fromMember, fromProblem, isServing, type Problem } from '../records/records';
import { deriveOperation } from '../records/ring';

export interface TakeoverSettings {
  /** No change of the problem record for this long: the recovery is stalled (ms). */
  stallMs: number;
}

export const TAKEOVER_DEFAULTS: TakeoverSettings = { stallMs: 60_000 };

export interface TakeoverSituation {
  me: string;
  /** The target's problem record. */
  record: RecordFields;
  group: RecordFields[];
  problems: RecordFields[];
  /** When this VM last saw the record change (epoch ms; at least when it started watching). */
  lastChangeMs: number;
  now: number;
  /** This side holds a majority now (absent: no isolation rule in use, counts as yes). */
  quorum?: { ok: boolean; why: string };
  /** Set after a ping of the acting manager: did it answer? */
  actingAnswered?: boolean;
}

export type TakeoverDecision =
  | { action: 'none'; reason: string }
  | { action: 'wait'; until: number; reason: string }
  | { action: 'probe'; manager: string; address: string; reason: string }
  | { action: 'take-over'; from: string; reason: string }
  | { action: 'cannot'; from: string; reason: string };

/** Is `name`'s own failure being handled (or failed)? */
function failing(problems: RecordFields[], name: string): boolean {
  const r = problems.find((p) => p[0] === name);
  return !!r && isStatusIn(fromProblem(r).status, ACTIVE_FAILURE_STATUSES);
}

/** Rule 3: who may take over the recovery of `target` held by `acting`, in order. */
export function takers(target: string, acting: string, group: RecordFields[], problems: RecordFields[]): string[] {
  const members = group.map(fromMember);
  const serving = members.filter(isServing).map((m) => m.hostname);
  const ok = (h: string) => h !== target && h !== acting && serving.includes(h) && !failing(problems, h);
  const t = members.find((m) => m.hostname === target);
  if (t && isServing(t)) {
    const ops = deriveOperation(group).filter((w) => w.target === target);
    const order = ['P1', 'P2'].flatMap((p) => ops.filter((w) => w.priority === p).map((w) => w.manager));
    return [...new Set(order)].filter(ok);
  }
  const ring = [...serving].sort(naturalCompare);
  // Ring order after the acting manager (by name when it is gone from the group).
  const start = ring.findIndex((h) => naturalCompare(h, acting) > 0);
  const rotated = start < 0 ? ring : [...ring.slice(start), ...ring.slice(0, start)];
  return rotated.filter(ok);
}

/** Rule 2, from the files: why the acting manager is known gone, or undefined (ask it). */
export function actingGone(acting: string, group: RecordFields[], problems: RecordFields[]): string | undefined {
  const m = group.map(fromMember).find((x) => x.hostname === acting);
  if (!m) return `${acting} is no longer in the group`;
  if (!isServing(m)) return `${acting} is ${m.state}`;
  if (failing(problems, acting)) return `${acting} has failed (${fromProblem(problems.find((p) => p[0] === acting)!).status})`;
  return undefined;
}

export function decideTakeover(x: TakeoverSituation, s: TakeoverSettings = TAKEOVER_DEFAULTS): TakeoverDecision {
  const p: Problem = fromProblem(x.record);
  if (!isStatusIn(p.status, IN_HAND_STATUSES)) return { action: 'none', reason: `${p.target} is ${p.status}: no recovery under way` };
  const acting = p.detectedBy;
  if (acting === x.me) return { action: 'none', reason: `${x.me} holds this recovery itself` };
  const order = takers(p.target, acting, x.group, x.problems);
  const rank = order.indexOf(x.me);
  if (rank < 0) return { action: 'none', reason: `${x.me} is not among the takers of ${p.target} (${order.join(' ') || 'none'})` };
  const due = x.lastChangeMs + s.stallMs * (1 + rank);
  if (x.now < due) return { action: 'wait', until: due, reason: `${p.target} ${p.status}, held by ${acting}: taken over at ${new Date(due).toISOString()} if nothing moves` };
  const stalled = `${p.target} ${p.status} for ${Math.round((x.now - x.lastChangeMs) / 1000)} s without progress`;
  let gone = actingGone(acting, x.group, x.problems);
  if (!gone) {
    if (x.actingAnswered === undefined) {
      const m = x.group.map(fromMember).find((g) => g.hostname === acting)!;
      return { action: 'probe', manager: acting, address: m.address, reason: `${stalled}: is ${acting} alive?` };
    }
    if (x.actingAnswered) return { action: 'wait', until: x.now + s.stallMs, reason: `${stalled}, but ${acting} answers: it keeps the recovery` };
    gone = `${acting} does not answer`;
  }
  if (x.quorum && !x.quorum.ok) return { action: 'cannot', from: acting, reason: `${stalled}, ${gone}; no takeover from a minority: ${x.quorum.why}` };
  return { action: 'take-over', from: acting, reason: `${stalled}, ${gone}` };
}

/**
 * The record the taker writes before it runs the plan (rule 5): same target, kind, status, backup,
 * since, note and od, in its own name.
 */
export function takeoverRecord(record: RecordFields, me: string): RecordFields {
  const next = record.slice();
  next[1] = me;
  return next;
}
