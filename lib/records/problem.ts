// The problem lifecycle: the one place that says what each status of a problem record means, which
// groups of statuses the monitor and the recovery act on, and which transitions are allowed. The
// statuses themselves are the schema's (files.ts PROBLEM_STATUSES); everything else that asks
// "is this failure being handled?" asks here.
//
//   detected -> reexamining -> confirmed -> fencing -> recovering -> recovered
//       \            \              \          \            \
//        `-> cleared  `-> cleared    `---------`------------`-> failed (reason in `note`)
//   (a recovery started by hand may go from detected/reexamining to fencing or failed)
//
//   detected / reexamining   the monitor saw a failed check and is re-examining it
//   cleared                  the re-examination found the target well: no failure
//   confirmed                a manager confirmed the failure and claims its recovery
//   fencing                  the recovery is fencing the target (destroy, or the isolation rule)
//   recovering               fenced; a backup is being placed, resumed, installed, given the role
//   recovered                the backup serves (its name in `backup`)
//   failed                   the recovery stopped; `note` says why (the target stays fenced if
//                            the fence was done, see the group record's state)
//
// A new episode (the same target failing again later) starts over at detected or confirmed from
// any final status (cleared, recovered, failed).
import type { ProblemStatus } from './records';

/** A manager confirmed this failure (and claimed it): counts as a confirmation. */
export const HANDLING_STATUSES: readonly ProblemStatus[] = ['confirmed', 'fencing', 'recovering', 'recovered', 'failed'];
/** The failure is not over: its target is not a live manager (replicator lock) and must not be claimed again. */
export const ACTIVE_FAILURE_STATUSES: readonly ProblemStatus[] = ['confirmed', 'fencing', 'recovering', 'failed'];
/** Being handled right now: the failures placed together (placeMany). */
export const IN_HAND_STATUSES: readonly ProblemStatus[] = ['confirmed', 'fencing', 'recovering'];
/** Still open (the sidebar shows them as current). */
export const OPEN_STATUSES: readonly ProblemStatus[] = ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering'];
/** An episode ended here; a later failure of the same target starts a new one. */
export const FINAL_STATUSES: readonly ProblemStatus[] = ['cleared', 'recovered', 'failed'];

const NEXT: Record<ProblemStatus, readonly ProblemStatus[]> = {
  // A recovery started by hand (an operator's msg) may begin before the monitor confirmed.
  detected: ['reexamining', 'confirmed', 'cleared', 'fencing', 'failed'],
  reexamining: ['confirmed', 'cleared', 'fencing', 'failed'],
  confirmed: ['fencing', 'failed'],
  fencing: ['recovering', 'failed'],
  recovering: ['recovered', 'failed'],
  recovered: [],
  failed: [],
  cleared: [],
};
const NEW_EPISODE: readonly ProblemStatus[] = ['detected', 'reexamining', 'confirmed', 'fencing'];

export function isStatusIn(status: string, set: readonly ProblemStatus[]): boolean {
  return (set as readonly string[]).includes(status);
}

/**
 * May a record go from `from` (undefined: no record yet) to `to`? The same status again is allowed
 * (a rewrite with a new note or backup). A final status may start a new episode.
 */
export function canTransition(from: ProblemStatus | undefined, to: ProblemStatus): boolean {
  if (from === undefined || from === to) return true;
  if (NEXT[from].includes(to)) return true;
  return isStatusIn(from, FINAL_STATUSES) && NEW_EPISODE.includes(to);
}

export class TransitionError extends Error {
  constructor(
    readonly from: ProblemStatus | undefined,
    readonly to: ProblemStatus,
  ) {
    super(`problem status ${from ?? '(none)'} -> ${to} is not allowed`);
    this.name = 'TransitionError';
  }
}

/** Throws TransitionError when the move is not allowed. */
export function checkTransition(from: ProblemStatus | undefined, to: ProblemStatus): void {
  if (!canTransition(from, to)) throw new TransitionError(from, to);
}
