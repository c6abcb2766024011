// THE placement decider of a recovery: where the backup of one failed server goes, decided with
// every failure in hand (the problem file's confirmed/fencing/recovering records), so that the
// managers of a failed real server's VMs spread their backups the same way (placeMany), and a
// failure alone takes the best candidate (place). The backup starter decides with it; the
// p2p-placer node shows and explains the same decision. Scoring lives in placement.ts.
import type { RecordFields } from '../records/files';
import { IN_HAND_STATUSES, isStatusIn } from '../records/problem';
import { fromMember, fromProblem } from '../records/records';
import { odRows, place, placeMany, realServerRows, type PlaceOptions, type Placement } from './placement';

export interface PlacementFiles {
  records(file: 'group' | 'problem' | 'realserver' | 'available-od'): RecordFields[];
}

/** The failures being handled now besides `target`, with their real servers (group file). */
export function failuresInHand(files: PlacementFiles, target: string): { target: string; realServer: string }[] {
  const members = files.records('group').map(fromMember);
  return files
    .records('problem')
    .map(fromProblem)
    .filter((p) => p.target !== target && isStatusIn(p.status, IN_HAND_STATUSES))
    .map((p) => ({ target: p.target, realServer: members.find((m) => m.hostname === p.target)?.realServer ?? '' }))
    .filter((x) => x.realServer !== '');
}

/**
 * The placement of the failure of `target` (on `realServer`) among the failures in hand; a
 * PlacementError (with every candidate and why it does not fit) when nothing fits.
 */
export function decidePlacement(files: PlacementFiles, target: string, realServer: string, opts: PlaceOptions = {}): Placement {
  const rs = realServerRows(files.records('realserver'));
  const ods = odRows(files.records('available-od'));
  const others = failuresInHand(files, target);
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
export function jointOds(files: PlacementFiles, target: string, realServer: string, opts: PlaceOptions = {}): Set<string> {
  const many = placeMany([{ target, realServer }, ...failuresInHand(files, target)], realServerRows(files.records('realserver')), odRows(files.records('available-od')), opts);
  return new Set(many.placements.filter((p) => p.placement).map((p) => p.placement!.od));
}
