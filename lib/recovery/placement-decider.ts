// THE placement decider of a recovery: where the backup of one failed server goes, decided with
// every failure in hand (the problem file's confirmed/fencing/recovering records, and fresh ones
// still under re-examination: OPEN_FAILURE_FRESH_MS), so that the managers of a failed real
// server's VMs, or of two failures found together, spread their backups the same way
// (placeMany), and a failure alone takes the best candidate (place). The backup starter decides with it; the
// p2p-placer node shows and explains the same decision. Scoring lives in placement.ts.
// A failed VM's size, when the failure does not carry one, is the one the load collector last
// recorded for its domain in the realserver file (vmSizes, from virsh dominfo): every failure in
// hand is placed with its recorded size.
import type { RecordFields } from '../records/files';
import { IN_HAND_STATUSES, isStatusIn } from '../records/problem';
import { fromMember, fromProblem, fromRealServer, type Problem, type ProblemStatus } from '../records/records';
import { odRows, place, placeMany, realServerRows, type PlaceOptions, type Placement, type VmSize } from './placement';

export interface PlacementFiles {
  records(file: 'group' | 'problem' | 'realserver' | 'available-od'): RecordFields[];
}

/**
 * The size the realserver file records for `target`'s domain (vmSizes). A backup runs as the OD
 * it was made from (domain name = the OD's), named in the problem record that made it.
 */
export function recordedSize(files: PlacementFiles, target: string): VmSize | undefined {
  const made = files.records('problem').map(fromProblem).find((p) => p.backup === target && p.status === 'recovered' && p.od !== '-');
  const domains = made ? [target, made.od] : [target];
  for (const r of files.records('realserver')) {
    const sizes = fromRealServer(r).vmSizes;
    for (const d of domains) if (sizes?.[d]) return { memMiB: sizes[d].memMiB, vcpus: sizes[d].vcpus };
  }
  return undefined;
}

/**
 * A failure still under re-examination (detected, reexamining) counts as in hand for this long
 * after its detection. Two failures found together are re-examined together and confirmed within
 * moments of each other; each manager places its backup beside its fence, and before this both
 * took the best OD, one lost the resume race (`virsh resume` refused, domstate) and started again
 * on the next one. Placed together, they take different ODs from the start. One that turns out
 * well (cleared) stops counting at once; one left behind by a manager that died stops after this.
 */
export const OPEN_FAILURE_FRESH_MS = 60_000;

const UNDER_REEXAMINATION: readonly ProblemStatus[] = ['detected', 'reexamining'];

/** The problem record of a failure being handled now, or under re-examination since less than OPEN_FAILURE_FRESH_MS. */
function inHand(p: Problem, nowMs: number): boolean {
  if (isStatusIn(p.status, IN_HAND_STATUSES)) return true;
  if (!isStatusIn(p.status, UNDER_REEXAMINATION)) return false;
  const since = Date.parse(p.since);
  return Number.isFinite(since) && Math.abs(nowMs - since) <= OPEN_FAILURE_FRESH_MS;
}

/** The failures being handled now (or re-examined, see OPEN_FAILURE_FRESH_MS) besides `target`, with their real servers (group file) and recorded sizes. */
export function failuresInHand(files: PlacementFiles, target: string, nowMs = Date.now()): { target: string; realServer: string; need?: VmSize }[] {
  const members = files.records('group').map(fromMember);
  return files
    .records('problem')
    .map(fromProblem)
    .filter((p) => p.target !== target && inHand(p, nowMs))
    .map((p) => {
      const need = recordedSize(files, p.target);
      return { target: p.target, realServer: members.find((m) => m.hostname === p.target)?.realServer ?? '', ...(need ? { need } : {}) };
    })
    .filter((x) => x.realServer !== '');
}

/**
 * The placement of the failure of `target` (on `realServer`) among the failures in hand; a
 * PlacementError (with every candidate and why it does not fit) when nothing fits.
 */
export function decidePlacement(files: PlacementFiles, target: string, realServer: string, given: PlaceOptions = {}): Placement {
  const opts = withRecordedSize(files, target, given);
  const rs = realServerRows(files.records('realserver'));
  const ods = odRows(files.records('available-od'));
  const others = failuresInHand(files, target, opts.now ?? Date.now());
  if (others.length === 0) return place(rs, ods, opts);
  const many = placeMany([{ target, realServer, need: opts.need }, ...others], rs, ods, opts);
  const mine = many.placements.find((p) => p.target === target)!;
  if (mine.placement) return mine.placement;
  // Not enough ODs for everyone: this failure still gets one if any is left for it alone.
  return place(rs, ods, opts);
}

/**
 * The ODs the failures in hand (this one included) get when placed together: an OD resumed early
 * (beside the fence, before the other failures of a dead host were confirmed) that is one of
 * these is kept, whichever of those failures it was meant for, so two managers never swap ODs
 * (suspend mine, resume yours) in a race (docs/recovery.md "Placement").
 */
export function jointOds(files: PlacementFiles, target: string, realServer: string, given: PlaceOptions = {}): Set<string> {
  const opts = withRecordedSize(files, target, given);
  const many = placeMany([{ target, realServer, need: opts.need }, ...failuresInHand(files, target, opts.now ?? Date.now())], realServerRows(files.records('realserver')), odRows(files.records('available-od')), opts);
  return new Set(many.placements.filter((p) => p.placement).map((p) => p.placement!.od));
}

/** The options with the failed VM's recorded size when they carry none. */
function withRecordedSize(files: PlacementFiles, target: string, opts: PlaceOptions): PlaceOptions {
  if (opts.need) return opts;
  const need = recordedSize(files, target);
  return need ? { ...opts, need } : opts;
}
