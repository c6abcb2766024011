// Whom a backup catches up with once it is a member (nodes/common/role-endpoint.ts). An OD was
// frozen and no member: no diff was sent to it. Right after the role call it catches up with the
// manager that called (the recovery's own claim and fence marks); but edits that other managers
// sent while they did not know it as a member yet (a second recovery's commit made at the same
// moment: two failures at once) reach it only at its next anti-entropy round (seen in
// bench:failover: the other backup showed up on it up to 1.5 s after every other VM). So when its
// own group record arrives it catches up once more with the managers of the recoveries in hand:
// the caller and every manager whose recovery is under way or just done. That is one exchange per
// recovery in hand, not one per member, so it stays small in a large group. Its flow deploy then
// waits until no recovery is under way in its files (recoveriesUnderWay).
//
// The manager's side of the same gap (two failures at once): its edits go to the members it
// knows, and the other recovery's backup is none yet (its OD becomes a member only with the other
// manager's commit, after which it catches up with this manager: one more exchange, at the end of
// the other recovery). So while its recovery is under way, a manager sends every edit it makes
// (its fence mark, its commit) to the ODs of the other recoveries in hand as well, as it sends
// them to the members (sendEditsToBackupsInHand). And it opens its SEM stream to every backup in
// hand as soon as that one is resumed (warmBackupStreams), so that its edits reach a busy OD as
// frames on an open socket, not on a fresh connection.
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { isStatusIn } from '../records/problem';
import { fromMember, fromOd, fromProblem, isServing, type ProblemStatus } from '../records/records';

/** Recoveries that may have sent edits a new member missed: under way, or done a moment ago. */
const RECENT_STATUSES: readonly ProblemStatus[] = ['confirmed', 'fencing', 'recovering', 'recovered'];
/** Recoveries whose commit is still to come. */
const UNDER_WAY: readonly ProblemStatus[] = ['confirmed', 'fencing', 'recovering'];

/** A recovery started longer ago than this (its `since`) is not in hand any more. */
export const CATCH_UP_WINDOW_MS = 60_000;

/** The problems in one of `statuses` whose `since` lies within the window before `nowMs`. */
function inHand(problems: RecordFields[], statuses: readonly ProblemStatus[], nowMs: number, windowMs: number): ReturnType<typeof fromProblem>[] {
  return problems.map(fromProblem).filter((p) => {
    if (!isStatusIn(p.status, statuses)) return false;
    const since = Date.parse(p.since);
    return Number.isFinite(since) && nowMs - since <= windowMs;
  });
}

/**
 * The members (name and address from the group file) that `me`, a backup just made a member by
 * `caller`'s commit, catches up with: `caller` and the acting managers of the problems of
 * RECENT_STATUSES detected within the window. Only serving members other than `me`, in natural order.
 */
export function catchUpPartners(me: string, caller: string, group: RecordFields[], problems: RecordFields[], nowMs: number, windowMs = CATCH_UP_WINDOW_MS): { hostname: string; address: string }[] {
  const managers = new Set([caller, ...inHand(problems, RECENT_STATUSES, nowMs, windowMs).map((p) => p.detectedBy)]);
  return group
    .map(fromMember)
    .filter((m) => m.hostname !== me && managers.has(m.hostname) && isServing(m))
    .map((m) => ({ hostname: m.hostname, address: m.address }))
    .sort((a, b) => naturalCompare(a.hostname, b.hostname));
}

/**
 * The targets of the recoveries under way in these files (detected within the window): the backup
 * defers its flow deploy (CPU and disk work) until their commits have reached it too, so that it
 * does not compete with them (nodes/common/role-endpoint.ts, two failures at once).
 */
export function recoveriesUnderWay(problems: RecordFields[], nowMs: number, windowMs = CATCH_UP_WINDOW_MS): string[] {
  return inHand(problems, UNDER_WAY, nowMs, windowMs)
    .map((p) => p.target)
    .sort(naturalCompare);
}

/** A recovery whose OD is resumed and whose commit is still to come. */
const RESUMED: readonly ProblemStatus[] = ['recovering'];

/**
 * The ODs of the recoveries in hand whose commit is still to come: problems `recovering` (fenced,
 * OD resumed) detected within the window, naming an OD that available-od still lists (its
 * address). In natural order of the OD's name.
 */
export function backupsInHand(problems: RecordFields[], availableOd: RecordFields[], nowMs: number, windowMs = CATCH_UP_WINDOW_MS): { target: string; od: string; address: string }[] {
  const ods = new Map(availableOd.map(fromOd).map((o) => [o.od, o.address]));
  const out: { target: string; od: string; address: string }[] = [];
  for (const p of inHand(problems, RESUMED, nowMs, windowMs)) {
    if (p.od === '-') continue;
    const address = ods.get(p.od);
    if (address) out.push({ target: p.target, od: p.od, address });
  }
  return out.sort((a, b) => naturalCompare(a.od, b.od));
}

/** What warmBackupStreams needs of a store (ReplicatedStore has it). */
export interface WarmingFiles {
  records(file: 'problem' | 'available-od'): RecordFields[];
  readonly port: number;
  warmStream(target: { address: string; port: number }): boolean;
}

/**
 * While this VM's own recovery is `recovering` (its commit to come): open its SEM stream to the OD
 * of every recovery `recovering` in its files (backupsInHand: its own backup and the other
 * recoveries'), before the commit and the edits after it are sent there. Seen in bench:failover
 * (two at once): the last peer to acknowledge a commit was a resumed OD, 80-330 ms after the
 * members, busy becoming a member (its key published to every peer, its catch-ups, its monitor
 * started); the commit reached it as the first request to that address, an HTTP POST on a fresh
 * connection beside the stream's upgrade, which such a VM handles over several turns of its loop.
 * Opening a stream sends nothing and decides nothing (every frame is authenticated as a POST is).
 * Returns the ODs.
 */
export function warmBackupStreams(files: WarmingFiles, nowMs = Date.now()): string[] {
  const ods = backupsInHand(files.records('problem'), files.records('available-od'), nowMs);
  for (const o of ods) files.warmStream({ address: o.address, port: files.port });
  return ods.map((o) => o.od);
}

/** What sendEditsToBackupsInHand needs of a store (ReplicatedStore has it). */
export interface SideSendingFiles {
  records(file: 'problem' | 'available-od'): RecordFields[];
  addEditDestinations(source: () => readonly { hostname: string; address: string }[]): () => void;
}

/**
 * From now until the returned function is called (the starter: while this VM's recovery of
 * `myTarget` is under way), every edit this VM makes goes also to the OD of each other recovery
 * `recovering` in its files at that moment (backupsInHand but `myTarget`'s), directly and under
 * the members' acknowledgement rule; an OD that is a member by then gets it as a member. Not its
 * own OD: that one catches up with this VM right after the role call, and the commit makes it a
 * member; sent there too, the fence mark landed beside the role call (one more journal write and
 * a catch-up on the OD) and one failure's install and role steps took ~10 ms longer (p50, 30
 * recoveries a side, docs/recovery.md "Two at once: the commit to the other OD"). Seen in
 * bench:failover, two at once: a commit went to the members this manager knew, and the other
 * recovery's OD, a member only once the other manager's commit made it one, got it later by an
 * exchange (three requests, each waiting for a turn of that busy OD's loop) or its own catch-up,
 * 100-250 ms after the members; it was the last VM to show the recovery. Only ODs resumed (their
 * recovery is past its fence): a suspended VM does not answer, and the edit would wait for it.
 * A diff sent to an OD is authenticated and checked there as any diff; it decides nothing.
 */
export function sendEditsToBackupsInHand(files: SideSendingFiles, myTarget: string, now: () => number = Date.now): () => void {
  return files.addEditDestinations(() =>
    backupsInHand(files.records('problem'), files.records('available-od'), now())
      .filter((b) => b.target !== myTarget)
      .map((b) => ({ hostname: b.od, address: b.address })),
  );
}
