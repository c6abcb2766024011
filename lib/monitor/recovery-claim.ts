// Exactly one recovery per failure: who of a target's two managers (P1, P2) acts, decided from the
// replicated problem file so that every peer reaches the same answer from the same files. Pure.
//
// The rule
//  1. Only the P1 manager records a suspicion (detected, reexamining, cleared) in the problem
//     file; P2 watches the target too, silently, and reads what P1 records.
//  2. On its own confirmation, P1 *claims* the failure: it writes the record
//     `target, P1, kind, confirmed, -, since` and acts (emits the failure) at once, unless the
//     record of this episode already holds a claim by another manager (P2 took over because P1
//     was late): then P1 stands down.
//  3. On its own confirmation, P2 acts only when P1 is gone:
//       - P1 is not in the group, or P1 itself has a failure being handled in the problem file
//         (status confirmed, fencing, recovering or failed): P2 claims at once;
//       - else P2 waits until `detectedAt + re-examination + takeoverGraceMs` (default 1.5 s:
//         P1 confirms at most one re-check after P2 and its record needs ~0.3 s to replicate).
//         If by then the record holds P1's claim, P2 stands down. If it does not, P2 probes P1's
//         manager itself: P1 answering means P1 is alive and sees it otherwise (or is still
//         re-examining): P2 stands down for now and decides again after another grace period.
//         P1 not answering: P2 claims.
//  4. A P2 claim is written, then P2 waits `settleMs` (default 0.5 s, above the SEM sync time) and
//     acts only if it is the winner (rule 5) of the claims it has seen by then; otherwise it stands
//     down.
//  6. Majority (isolation.ts rule 1): neither P1 nor P2 claims unless this VM's side of any cut
//     holds a strict majority of the group now (`quorum`). A manager on the minority side of a
//     cut sees every VM of the other side fail; it must start no recovery there (a P2 across the
//     cut would otherwise take over as soon as P1 does not answer). It waits ('no-quorum') and
//     watches afresh once the majority is heard again (decides again at once when the majority
//     was missing for under a second: a late answer on a loaded machine, not a cut). For this
//     question a contact counts only if it started within re-examination - probe timeout: the
//     minority's last contact across a cut started before the cut, and its earliest confirmation
//     comes a re-examination after a failed check that started at most one timeout before the
//     cut, so it never holds a "majority now" when it confirms.
//  Never downgrade: a manager does not write detected/reexamining/cleared over a claim of the same
//  episode (a late P1 must not erase P2's claim).
//  5. Winner of an episode, as every peer computes it from the claims it has seen (claimWinner):
//     a claim by the target's P1 wins; without one, the earliest claim in the replicated edit order
//     (Lamport clock, then origin) wins. Rules 2-4 make the acting manager that winner: P1 never
//     claims over a P2 claim it has seen, and P2 never acts when a P1 claim reached it in time.
//     When the last-writer-wins merge of concurrent claims leaves the loser's claim in the file, the
//     winner (P1) writes its claim again, so the file converges on the manager that acts.
//  Residual risk (documented): a P1 claim that takes longer than settleMs to reach P2 while P2
//  has found P1 silent could give two recoveries; the fence step (destroy before start) keeps that
//  from ever running two copies of one server.
import type { RecordFields } from '../records/files';

// The problem statuses and their groups are the lifecycle's (lib/records/problem.ts).
export { ACTIVE_FAILURE_STATUSES, HANDLING_STATUSES } from '../records/problem';
import { ACTIVE_FAILURE_STATUSES, HANDLING_STATUSES } from '../records/problem';

export interface Problem {
  target: string;
  detectedBy: string;
  kind: string;
  status: string;
  backup: string;
  /** `since` as ms since the epoch, NaN for '-'. */
  sinceMs: number;
}

export function parseProblem(r: RecordFields | undefined): Problem | undefined {
  if (!r || r.length < 6) return undefined;
  return { target: r[0], detectedBy: r[1], kind: r[2], status: r[3], backup: r[4], sinceMs: r[5] === '-' ? NaN : Date.parse(r[5]) };
}

export function problemRecord(target: string, detectedBy: string, kind: string, status: string, sinceMs: number): RecordFields {
  return [target, detectedBy, kind, status, '-', new Date(sinceMs).toISOString()];
}

export interface ClaimSettings {
  /** A record whose `since` is older than the episode start minus this is an older episode. */
  episodeSlackMs: number;
  takeoverGraceMs: number;
  settleMs: number;
}

export const CLAIM_DEFAULTS: ClaimSettings = { episodeSlackMs: 5000, takeoverGraceMs: 1500, settleMs: 500 };

/** Does this problem record belong to the failure episode that started at `episodeStart`? */
export function inEpisode(p: Problem | undefined, episodeStart: number, slackMs: number): p is Problem {
  return !!p && Number.isFinite(p.sinceMs) && p.sinceMs >= episodeStart - slackMs;
}

export function isClaim(p: Problem | undefined): p is Problem {
  return !!p && (HANDLING_STATUSES as readonly string[]).includes(p.status);
}

/** Is this manager known to be failed, from its own problem record? */
export function isFailed(p: Problem | undefined): boolean {
  return !!p && (ACTIVE_FAILURE_STATUSES as readonly string[]).includes(p.status);
}

export type Decision =
  | { action: 'claim'; reason: string }
  | { action: 'stand-down'; winner: string; reason: string }
  | { action: 'wait'; until: number; reason: string }
  | { action: 'probe-p1'; reason: string }
  | { action: 'no-quorum'; reason: string };

/** Rule 6: does this VM's side hold a strict majority now? Absent: no isolation rule in use. */
export interface Quorum {
  ok: boolean;
  why: string;
}

function noQuorum(q: Quorum | undefined): Decision | undefined {
  return q && !q.ok ? { action: 'no-quorum', reason: `no recovery from a minority: ${q.why}` } : undefined;
}

/** Rule 2: P1 on its own confirmation. `claims`: the claim edits of this target seen so far. */
export function decideP1(
  me: string,
  record: Problem | undefined,
  episodeStart: number,
  s: ClaimSettings = CLAIM_DEFAULTS,
  claims: ClaimEdit[] = [],
  quorum?: Quorum,
): Decision {
  if (inEpisode(record, episodeStart, s.episodeSlackMs) && isClaim(record) && record.detectedBy !== me) {
    return { action: 'stand-down', winner: record.detectedBy, reason: `${record.detectedBy} already handles it (${record.status})` };
  }
  const other = claims.find((c) => c.manager !== me && c.sinceMs >= episodeStart - s.episodeSlackMs);
  if (other) return { action: 'stand-down', winner: other.manager, reason: `${other.manager} claimed it first` };
  return noQuorum(quorum) ?? { action: 'claim', reason: 'P1 confirms' };
}

export interface P2Situation {
  me: string;
  p1: string;
  /** The target's problem record. */
  record: Problem | undefined;
  /** P1's own problem record (is P1 itself failed?). */
  p1Problem: Problem | undefined;
  p1InGroup: boolean;
  /** P2's own detection time of this episode. */
  episodeStart: number;
  reexaminationMs: number;
  now: number;
  /** Set after a probe of P1's manager: did it answer? */
  p1Answered?: boolean;
  /** A previous decision asked to wait past this time before probing P1 again. */
  notBefore?: number;
  /** Rule 6: this side's majority now (absent: no isolation rule in use). */
  quorum?: Quorum;
}

/** Rule 3: P2 on its own confirmation (re-evaluated on every change of the problem file and at the wait time). */
export function decideP2(x: P2Situation, s: ClaimSettings = CLAIM_DEFAULTS): Decision {
  const rec = inEpisode(x.record, x.episodeStart, s.episodeSlackMs) ? x.record : undefined;
  if (rec && isClaim(rec) && rec.detectedBy !== x.me) {
    return { action: 'stand-down', winner: rec.detectedBy, reason: `${rec.detectedBy} handles it (${rec.status})` };
  }
  const nq = noQuorum(x.quorum);
  if (nq) return nq;
  if (!x.p1InGroup) return { action: 'claim', reason: `P1 ${x.p1} is not in the group` };
  if (isFailed(x.p1Problem)) return { action: 'claim', reason: `P1 ${x.p1} has failed (${x.p1Problem!.status})` };
  const deadline = Math.max(x.episodeStart + x.reexaminationMs + s.takeoverGraceMs, x.notBefore ?? 0);
  if (x.now < deadline) return { action: 'wait', until: deadline, reason: `waiting for P1 ${x.p1} to record it` };
  if (x.p1Answered === undefined) return { action: 'probe-p1', reason: `P1 ${x.p1} has not claimed it by the deadline` };
  if (x.p1Answered) {
    return { action: 'wait', until: x.now + s.takeoverGraceMs, reason: `P1 ${x.p1} answers: it decides` };
  }
  return { action: 'claim', reason: `P1 ${x.p1} has not claimed it and does not answer` };
}

/**
 * Rule 4: after writing its claim and waiting settleMs, does P2 act? Decided on every claim edit of
 * this episode it has seen (its own included), not on the merged record alone: a P1 claim that the
 * last-writer-wins merge hid under P2's later one still wins.
 */
export function p2KeepsClaim(me: string, p1: string, claims: ClaimEdit[], episodeStart: number, s: ClaimSettings = CLAIM_DEFAULTS): boolean {
  const seen = claims.filter((c) => c.sinceMs >= episodeStart - s.episodeSlackMs);
  // No claim seen at all (ours could not be written): nobody else claimed, so we act.
  if (seen.length === 0) return true;
  return claimWinner(seen, p1)?.manager === me;
}

/** One claim edit of a target's problem record, as a change event showed it. */
export interface ClaimEdit {
  manager: string;
  lamport: number;
  origin: string;
  /** The claimed episode's `since` (ms). */
  sinceMs: number;
}

/** Rule 5: the winner among the claims of one episode; undefined when there is none. */
export function claimWinner(claims: ClaimEdit[], p1: string): ClaimEdit | undefined {
  const byOrder = (a: ClaimEdit, b: ClaimEdit) => a.lamport - b.lamport || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0);
  const fromP1 = claims.filter((c) => c.manager === p1).sort(byOrder);
  if (fromP1.length > 0) return fromP1[0];
  return claims.slice().sort(byOrder)[0];
}

/** After P1 acted: must it write its claim again (the merge kept another manager's claim)? */
export function p1MustReassert(me: string, record: Problem | undefined, episodeStart: number, s: ClaimSettings = CLAIM_DEFAULTS): boolean {
  return inEpisode(record, episodeStart, s.episodeSlackMs) && record.status === 'confirmed' && record.detectedBy !== me;
}
