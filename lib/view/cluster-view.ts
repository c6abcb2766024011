// What the editor's cluster sidebar shows, computed from the replicated files of one VM plus the
// steps and countdowns that nodes report: the ring, each VM's state, open problems, real servers
// with their load, VM count and OD count, and a timeline of the last failovers. Pure.
import type { ClusterFiles } from '../records/cluster-api';
import { naturalCompare } from '../records/natural-sort';
import { OPEN_STATUSES } from '../records/problem';
import { fromMember, fromProblem, fromRealServer, isResting, isServing } from '../records/records';
import { failoverStories, type FailoverStory } from './failovers';

export interface TimelineEntry {
  target: string;
  /** detected, reexamining, confirmed, fencing, fenced, placed, resumed, installed, recovered, failed, cleared... */
  step: string;
  at: number;
  by?: string;
  detail?: string;
  /** How long the step took, ms (the backup plan's steps). */
  ms?: number;
  /** The reason of the step's decision (lib/ops/failover-steps.ts stepWhy): confirmations, candidates... */
  why?: Record<string, unknown>;
}

export interface Countdown {
  target: string;
  what: string;
  until: number;
}

/** This VM's isolation state (lib/monitor/isolation.ts), from its heartbeat node. */
export interface IsolationView {
  /** not-member, fenced, starting, majority, no-majority, isolated */
  state: string;
  /** true when this VM's service is asserted stopped (isolated or fenced): show it red. */
  stopped: boolean;
  reachable: string[];
  voters: string[];
  needed: number;
  why: string;
}

export interface ClusterView {
  self: string;
  at: number;
  /** This VM's isolation state; absent when no heartbeat node runs here. */
  isolation?: IsolationView;
  ring: { target: string; p1?: string; p2?: string }[];
  /**
   * `state`: an open problem's status, `fenced` (replaced: stays out until re-admitted),
   * `maintenance`, or `ok`. `actions`: what an operator may do from the sidebar: `readmit` = POST
   * /p2p-ha/readmit `{hostname}`; `maintenance-on` / `maintenance-off` = POST /p2p-ha/maintenance
   * `{vm, on}` (both p2p-ha.write); `rehearse` = POST /p2p-ha/rehearse `{target}` (p2p-ha.read).
   */
  vms: { hostname: string; address: string; realServer: string; services: string; state: string; actions: string[] }[];
  problems: { target: string; detectedBy: string; kind: string; status: string; backup: string; since: string; note?: string; countdown?: Countdown }[];
  /**
   * `actions`: `maintenance-on` / `maintenance-off` = POST /p2p-ha/maintenance `{realServer, on}`,
   * `evacuate` = POST /p2p-ha/evacuate `{realServer}` (both p2p-ha.write).
   */
  realServers: { name: string; load: string; vmCount: string; state: string; ods: number; actions: string[] }[];
  timeline: TimelineEntry[];
  /** The last failovers (not suspicions that cleared) as stories of steps with their reasons (failovers.ts), newest first. */
  failovers: FailoverStory[];
}

/** How many failover stories the pushed view carries. */
export const VIEW_FAILOVERS = 10;

const OPEN = new Set<string>(OPEN_STATUSES);

export function buildView(
  files: ClusterFiles,
  timeline: TimelineEntry[],
  countdowns: Countdown[],
  now = Date.now(),
  isolation?: IsolationView,
): ClusterView {
  const group = files.records('group');
  const operation = files.records('operation');
  const problems = files.records('problem');
  const problemOf = new Map(problems.map((p) => [p[0], p]));
  // The ring is the operation file's: fenced members are out of it (they stay in the VM table).
  const ring = group.filter((g) => isServing(fromMember(g))).map((g) => ({
    target: g[0],
    p1: operation.find((o) => o[0] === 'P1' && o[2] === g[0])?.[1],
    p2: operation.find((o) => o[0] === 'P2' && o[2] === g[0])?.[1],
  }));
  const vms = group.map((r) => {
    const g = fromMember(r);
    const p = problemOf.get(g.hostname);
    const fenced = g.state === 'fenced';
    const resting = isResting(g);
    const state = p && OPEN.has(p[3]) ? p[3] : fenced ? 'fenced' : resting ? 'maintenance' : 'ok';
    const actions = fenced ? ['readmit'] : [resting ? 'maintenance-off' : 'maintenance-on', 'rehearse'];
    return { hostname: g.hostname, address: g.address, realServer: g.realServer, services: g.services, state, actions };
  });
  const ods = files.records('available-od');
  const rsNames = new Set([...files.records('realserver').map((r) => r[0]), ...group.map((g) => g[2])]);
  const realServers = Array.from(rsNames)
    .sort(naturalCompare)
    .map((name) => {
      const r = files.get('realserver', name);
      const state = r ? fromRealServer(r).state : 'unknown';
      // Maintenance needs the host's record (the load collector writes it); evacuation does not.
      const actions = r ? [state === 'maintenance' ? 'maintenance-off' : 'maintenance-on', 'evacuate'] : ['evacuate'];
      return {
        name,
        load: r?.[1] ?? '-',
        vmCount: r?.[2] ?? String(group.filter((g) => g[2] === name).length),
        state,
        ods: ods.filter((o) => o[2] === name).length,
        actions,
      };
    });
  return {
    self: files.identity.hostname,
    at: now,
    ...(isolation ? { isolation } : {}),
    ring,
    vms,
    problems: problems.map((p) => ({
      target: p[0],
      detectedBy: p[1],
      kind: p[2],
      status: p[3],
      backup: p[4],
      since: p[5],
      // Through the codec: an empty note is written '-' when the record carries an od after it.
      note: fromProblem(p).note || undefined,
      countdown: countdowns.find((c) => c.target === p[0] && c.until > now),
    })),
    realServers,
    timeline: timeline.slice(-100),
    // A suspicion that cleared by itself is not a failover (it stays in the timeline).
    failovers: failoverStories(timeline, 1000).filter((f) => f.outcome !== 'cleared').slice(0, VIEW_FAILOVERS),
  };
}
