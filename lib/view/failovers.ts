// Past failovers as stories (issue 15): the timeline (and the lasting history it is restored
// from) is a flat list of steps; an operator opens one failover and reads its steps in order,
// each with who took it, how long it took and the reason of its decision (`why`, written by
// lib/ops/failover-steps.ts). Pure.
//
// Grouping, per target: a story begins with the first failover step of the target after its
// previous story ended; it ends at its first end step (recovered, failed, cleared). Steps that
// report the same end a moment later (the plan's own `recovered` after the problem record's,
// `files-edited`) join the story that just ended, within END_GRACE_MS. Cluster events that are not
// a VM's failover (host down, maintenance, OD pool) are not stories.
import type { TimelineEntry } from './cluster-view';

/** Steps of a VM's failover, as the timeline names them (problem statuses and the plan's steps). */
export const FAILOVER_STEPS = new Set([
  'detected', 'reexamining', 'confirmed', 'fencing', 'recovering', 'recovered', 'failed', 'cleared',
  'fenced', 'host unreachable', 'peers-confirmed', 'placed', 'resumed', 'installed', 'role-given', 'files-edited',
  'shut down (evacuation)',
]);
const END_STEPS = new Set(['recovered', 'failed', 'cleared']);
/** Steps that only report an end already reached. */
const LATE_STEPS = new Set(['recovered', 'failed', 'files-edited', 'role-given', 'installed']);
export const END_GRACE_MS = 60_000;

export interface FailoverStep extends TimelineEntry {
  /** Time from the previous step of the story, ms (0 for the first). */
  sincePrevMs: number;
}

export interface FailoverStory {
  /** target@start (ms): stable for one story. */
  id: string;
  target: string;
  start: number;
  end?: number;
  /** recovered, failed, cleared, or open (still going, or its end not seen here). */
  outcome: string;
  /** The backup that took over, when the story says so. */
  backup?: string;
  /** Who acted (the plan's steps' `by`), else who detected. */
  by?: string;
  totalMs: number;
  steps: FailoverStep[];
}

/** The failovers in the entries (any order in, time order per story), newest first. */
export function failoverStories(entries: TimelineEntry[], limit = 20): FailoverStory[] {
  const sorted = entries.filter((e) => FAILOVER_STEPS.has(e.step)).slice().sort((a, b) => a.at - b.at);
  const current = new Map<string, FailoverStory>();
  const all: FailoverStory[] = [];
  for (const e of sorted) {
    let s = current.get(e.target);
    const ended = s?.end !== undefined;
    if (s && ended && !(LATE_STEPS.has(e.step) && e.at - s.end! <= END_GRACE_MS)) s = undefined;
    if (!s) {
      s = { id: `${e.target}@${e.at}`, target: e.target, start: e.at, outcome: 'open', totalMs: 0, steps: [] };
      current.set(e.target, s);
      all.push(s);
    }
    const prev = s.steps[s.steps.length - 1];
    s.steps.push({ ...e, sincePrevMs: prev ? e.at - prev.at : 0 });
    if (END_STEPS.has(e.step) && s.end === undefined) {
      s.end = e.at;
      s.outcome = e.step;
    }
    s.totalMs = (s.end ?? e.at) - s.start;
    const backup = e.why?.backup;
    if (typeof backup === 'string') s.backup = backup;
    if (e.why && e.by) s.by = e.by;
    else if (!s.by && e.by) s.by = e.by;
  }
  return all.sort((a, b) => b.start - a.start).slice(0, limit);
}
