// A step of the backup plan (lib/recovery/backup-plan.ts StepEvent) as the sidebar's timeline and
// the lasting history keep it (issue 15): the step's name as the timeline says it, its duration,
// and the reason of its decision as a small structured object (`why`), so that a past failover
// can be opened later as its steps, each with why: which managers confirmed, why this host and
// this OD (every candidate with its rank or the reason it was not eligible, its load and the age
// of that figure, its VM count, free memory and vCPUs, members of the same service group there),
// how the fence was done, which procedure ran. One converter for the backup starter and the
// evacuation (p2p-maintenance). Pure.
import type { StepEvent } from '../recovery/backup-plan';
import type { Candidate, Placement } from '../recovery/placement';
import type { HistoryEntry } from './history';

/** Each step of the plan as the sidebar's failover timeline names it (what has just happened). */
export const TIMELINE_STEP: Record<string, string> = {
  fence: 'fenced',
  confirm: 'peers-confirmed',
  place: 'placed',
  resume: 'resumed',
  install: 'installed',
  role: 'role-given',
  edits: 'files-edited',
  recovered: 'recovered',
  failed: 'failed',
};

/** The largest `why` kept (JSON characters); past it the candidates are cut to the first few. */
export const MAX_WHY = 3000;

/** A candidate with only what the reason needs (no OD list beyond a count). */
function candidate(c: Candidate): Record<string, unknown> {
  const o: Record<string, unknown> = { realServer: c.realServer, eligible: c.eligible, load: c.load, vmCount: c.vmCount, fresh: c.fresh, sameService: c.sameService, ods: c.ods.length };
  if (c.rank !== undefined) o.rank = c.rank;
  if (c.reason) o.reason = c.reason;
  if (c.ageMs !== undefined) o.ageMs = Math.round(c.ageMs);
  if (c.freeMemMiB !== undefined) o.freeMemMiB = c.freeMemMiB;
  if (c.freeVcpus !== undefined) o.freeVcpus = c.freeVcpus;
  return o;
}

/** The reason of a step's decision, from its event detail. */
export function stepWhy(e: StepEvent): Record<string, unknown> | undefined {
  const d = e.detail ?? {};
  let why: Record<string, unknown> | undefined;
  switch (e.step) {
    case 'fence':
      why = { realServer: d.realServer, fence: d.fence, ...(d.autostart ? { autostart: d.autostart } : {}), ...(d.error ? { error: String(d.error).slice(0, 200) } : {}) };
      break;
    case 'confirm':
      why = { confirmedBy: d.confirmedBy, isolation: d.isolation };
      break;
    case 'place': {
      const p = d.placement as Placement | undefined;
      if (p) why = { realServer: p.realServer, od: p.od, address: p.address, candidates: p.candidates.map(candidate) };
      break;
    }
    case 'resume':
      why = { od: d.od, ...(d.realServer ? { realServer: d.realServer } : {}), ...(d.state ? { state: d.state } : {}), ...(d.kind ? { kind: d.kind } : {}) };
      break;
    case 'install':
      why = { path: d.path };
      break;
    case 'role': {
      const r = d.role as { backup?: string; address?: string } | undefined;
      if (r) why = { backup: r.backup, address: r.address };
      break;
    }
    case 'failed':
      why = { step: d.step, ...(d.kind ? { kind: d.kind } : {}) };
      break;
    default:
      why = undefined;
  }
  if (!why) return undefined;
  if (JSON.stringify(why).length > MAX_WHY && Array.isArray(why.candidates)) why.candidates = (why.candidates as unknown[]).slice(0, 5);
  return JSON.stringify(why).length > MAX_WHY ? undefined : why;
}

/** The timeline entry of a plan step (`name` overrides the timeline's name of the step). */
export function timelineEntry(e: StepEvent, by: string, at: number, name?: string): HistoryEntry {
  const step = name ?? (e.step === 'fence' && e.detail?.fence === 'host-not-reached' ? 'host unreachable' : TIMELINE_STEP[e.step] ?? e.step);
  const out: HistoryEntry = { target: e.target, step, at, by, detail: e.text };
  if (e.step !== 'recovered' && e.step !== 'failed' && Number.isFinite(e.ms)) out.ms = Math.round(e.ms);
  const why = stepWhy(e);
  if (why) out.why = why;
  return out;
}
