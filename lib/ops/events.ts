// Cluster events (issue 15): every step of a failure and every change an operator must hear of,
// derived from the replicated management files, so every VM sees the same events whoever acted.
//
//   problem record status   detected -> failure-detected     confirmed -> failure-confirmed (alert)
//                           recovering -> fenced (the fence is done before `recovering` is written)
//                           recovered -> recovered (alert)   failed -> recovery-failed (alert, reason)
//                           cleared -> failure-cleared
//   realserver state        -> down: host-down (alert)       down -> up: host-up
//                           -> maintenance / maintenance -> up: maintenance-on / -off (alert)
//   group state             -> maintenance / -> member: maintenance-on / -off (alert)
//   available-od            the last OD used: od-pool-empty (alert); refilled: od-pool-refilled
//   time                    a problem in confirmed/fencing/recovering longer than the stall bound:
//                           recovery-stalled (alert), once per episode
//
// Informational events are emitted on every VM. Alerts are deduplicated cluster-wide by a rule
// every VM computes from the same files: the alert is raised by the *alerter*, the first member in
// natural order that is not the event's subject, is not in maintenance, has no failure being
// handled and is not on a real server known down (alerterFor). While files differ between VMs
// (a diff in flight) two VMs may disagree for an instant: an alert can, rarely, come twice or
// from the VM that has just failed; never from none while one alerter lives and its files are
// current. Pure: no timers, no I/O; the p2p-events node runs the stall check on a timer.
import type { ChangeEvent } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { fromMember, fromProblem, fromRealServer } from '../records/records';

export const EVENT_KINDS = [
  'failure-detected',
  'failure-confirmed',
  'failure-cleared',
  'fenced',
  'recovered',
  'recovery-failed',
  'recovery-stalled',
  'host-down',
  'host-up',
  'maintenance-on',
  'maintenance-off',
  'od-pool-empty',
  'od-pool-refilled',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** Kinds an operator is told of (the alert output); the others are informational. */
export const ALERT_KINDS: readonly EventKind[] = [
  'failure-confirmed',
  'recovered',
  'recovery-failed',
  'recovery-stalled',
  'host-down',
  'maintenance-on',
  'maintenance-off',
  'od-pool-empty',
];

export interface ClusterEvent {
  kind: EventKind;
  /** The VM, real server or pool ('available-od') the event is about. */
  subject: string;
  /** What kind of thing the subject is. */
  subjectType: 'vm' | 'realserver' | 'pool';
  alert: boolean;
  /** One line for a mail subject or a chat message. */
  text: string;
  /** epoch ms, on the VM that derived the event. */
  at: number;
  /** Identifies the event cluster-wide (the same on every VM): for local dedup and receivers. */
  key: string;
  /** The manager that wrote the change (the diff's origin), or this VM for time-based events. */
  by: string;
  detail?: Record<string, unknown>;
}

/** What the derivation reads of the files (ClusterFiles fits). */
export interface EventFiles {
  records(file: 'group' | 'problem' | 'realserver' | 'available-od'): RecordFields[];
}

const PROBLEM_EVENTS: Partial<Record<string, EventKind>> = {
  detected: 'failure-detected',
  confirmed: 'failure-confirmed',
  recovering: 'fenced',
  recovered: 'recovered',
  failed: 'recovery-failed',
  cleared: 'failure-cleared',
};

function make(kind: EventKind, subject: string, subjectType: ClusterEvent['subjectType'], text: string, at: number, key: string, by: string, detail?: Record<string, unknown>): ClusterEvent {
  return { kind, subject, subjectType, alert: ALERT_KINDS.includes(kind), text, at, key: `${kind}:${key}`, by, detail };
}

/** The events one applied change makes (none for most changes). `files` are the files after it. */
export function eventsFromChange(c: ChangeEvent, files: EventFiles, at: number): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  if (c.file === 'problem' && c.op !== 'Del') {
    const p = fromProblem(c.record);
    const was = c.before ? fromProblem(c.before) : undefined;
    if (was && was.status === p.status) return out;
    const kind = PROBLEM_EVENTS[p.status];
    if (!kind) return out;
    const episode = `${p.target}:${p.since}`;
    const texts: Record<string, string> = {
      'failure-detected': `${p.target}: ${p.kind} failure suspected by ${p.detectedBy}`,
      'failure-confirmed': `${p.target}: ${p.kind} failure confirmed by ${p.detectedBy}`,
      fenced: `${p.target}: fenced; its backup is being started`,
      recovered: `${p.target}: recovered by ${p.backup !== '-' ? p.backup : 'a backup'}`,
      'recovery-failed': `${p.target}: recovery failed${p.note ? `: ${p.note}` : ''}`,
      'failure-cleared': `${p.target}: answered again, no failure`,
    };
    out.push(make(kind, p.target, 'vm', texts[kind], at, episode, c.origin, { problem: p }));
  } else if (c.file === 'realserver' && c.op !== 'Del') {
    const rs = fromRealServer(c.record);
    const was = c.before ? fromRealServer(c.before).state : undefined;
    if (was === rs.state) return out;
    const stamp = `${rs.realServer}:${c.origin}:${c.lamport}`;
    if (rs.state === 'down') out.push(make('host-down', rs.realServer, 'realserver', `${rs.realServer}: real server down`, at, stamp, c.origin));
    else if (rs.state === 'maintenance') out.push(make('maintenance-on', rs.realServer, 'realserver', `${rs.realServer}: real server in maintenance`, at, stamp, c.origin));
    else if (was === 'maintenance') out.push(make('maintenance-off', rs.realServer, 'realserver', `${rs.realServer}: real server out of maintenance`, at, stamp, c.origin));
    else if (was === 'down') out.push(make('host-up', rs.realServer, 'realserver', `${rs.realServer}: real server up again`, at, stamp, c.origin));
  } else if (c.file === 'group' && c.op === 'Mod' && c.before) {
    const m = fromMember(c.record);
    const was = fromMember(c.before).state;
    if (was === m.state) return out;
    const stamp = `${m.hostname}:${c.origin}:${c.lamport}`;
    if (m.state === 'maintenance') out.push(make('maintenance-on', m.hostname, 'vm', `${m.hostname}: VM in maintenance`, at, stamp, c.origin));
    else if (was === 'maintenance') out.push(make('maintenance-off', m.hostname, 'vm', `${m.hostname}: VM out of maintenance`, at, stamp, c.origin));
  } else if (c.file === 'available-od') {
    const left = files.records('available-od').length;
    const stamp = `${c.origin}:${c.lamport}`;
    if (c.op === 'Del' && left === 0) out.push(make('od-pool-empty', 'available-od', 'pool', 'no original server (OD) left: the next failure cannot be recovered', at, stamp, c.origin, { used: c.record[0] }));
    if (c.op === 'Add' && left === 1) out.push(make('od-pool-refilled', 'available-od', 'pool', `OD pool refilled (${c.record[0]} on ${c.record[2]})`, at, stamp, c.origin));
  }
  return out;
}

/** Statuses of a recovery under way: stalled when one lasts longer than the bound. */
const UNDER_WAY = ['confirmed', 'fencing', 'recovering'];

/** Recoveries under way for longer than stallMs (by the problem record's `since`). */
export function stalledRecoveries(files: EventFiles, now: number, stallMs: number, me: string): ClusterEvent[] {
  const out: ClusterEvent[] = [];
  for (const r of files.records('problem')) {
    const p = fromProblem(r);
    if (!UNDER_WAY.includes(p.status)) continue;
    const since = Date.parse(p.since);
    if (!Number.isFinite(since) || now - since < stallMs) continue;
    const s = Math.round((now - since) / 1000);
    out.push(
      make('recovery-stalled', p.target, 'vm', `${p.target}: recovery ${p.status} for ${s} s (handled by ${p.detectedBy}); look at ${p.detectedBy}'s log`, now, `${p.target}:${p.since}`, me, {
        problem: p,
        stalledMs: now - since,
      }),
    );
  }
  return out;
}

/**
 * The one VM that raises the alert for an event about `subject`: the first member (natural order)
 * that is not the subject, not in maintenance, not fenced, not a failure being handled and not on
 * a real server that is down or is the subject. Undefined when no member qualifies.
 */
export function alerterFor(subject: string, files: EventFiles): string | undefined {
  const down = new Set(files.records('realserver').filter((r) => r[3] === 'down').map((r) => r[0]));
  const failing = new Set(
    files
      .records('problem')
      .map(fromProblem)
      .filter((p) => ['confirmed', 'fencing', 'recovering', 'failed'].includes(p.status))
      .map((p) => p.target),
  );
  return files
    .records('group')
    .map(fromMember)
    .filter((m) => m.hostname !== subject && m.state === 'member' && !failing.has(m.hostname) && !down.has(m.realServer) && m.realServer !== subject)
    .map((m) => m.hostname)
    .sort(naturalCompare)[0];
}

/** Remembers the keys of recent events so that one event is emitted once per VM. */
export class EventDeduper {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 2000) {}

  /** true the first time a key is offered. */
  first(key: string): boolean {
    if (this.seen.has(key)) return false;
    this.seen.set(key, 1);
    if (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
    return true;
  }
}
