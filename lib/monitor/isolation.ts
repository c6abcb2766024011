// The isolation rule (DESIGN.md "Recovery" 1, docs/recovery.md "Isolation"): who this VM has heard
// from, whether its side of a cut holds a strict majority of the group, when it must stop serving
// by itself, and the gate a recovery whose fence could not reach the host must pass. Pure: time
// comes in as numbers (ms, the clock of isolation-monitor.ts), contacts come in as calls.
//
// Words
//  - voters: the group's members that are not `fenced` (maintenance members still vote); this VM
//    counts itself when it is a voter. needed = floor(voters / 2) + 1 (a strict majority).
//  - heard(peer, startedAt, answeredAt): a probe of the peer that started at startedAt was answered
//    at answeredAt. For reachability the *start* counts (the earlier, conservative end: the answer
//    proves the path worked at some moment after it); for "last seen alive" the *answer* counts
//    (the later end: the peer was alive then, conservative for the recovering side).
//
// The rule (settings in IsolationSettings, defaults in ISOLATION_DEFAULTS)
//  1. Majority now: the voters heard with startedAt >= now - freshMs, plus this VM, are at least
//     `needed`. freshMs (1.5 s) is one probe interval + one probe timeout + slack: one lost probe
//     never drops a peer.
//  2. majorityAt: the last moment this VM held a majority contact, i.e. the (needed-1)-th most
//     recent startedAt among the other voters (its own voice is always fresh).
//  3. Isolated: a voter with now - majorityAt > tIsoMs. It must stop serving (self-fence) and
//     stays stopped until the majority is heard again (rejoined).
//  4. Fenced: this VM's own group record says `fenced` (it was replaced): it stops serving and
//     stays stopped whatever it hears, until an operator re-admits it (state back to member).
//     Removed: a VM that was in the group since it started and is no longer (its record deleted)
//     stops too, and stays stopped.
//  5. Gate (IsolationGate, for a fence that could not reach the host): go ahead only when
//     (a) this VM holds a majority now (rule 1) and is neither isolated nor fenced, and
//     (b) now - lastSeen(target) > tIsoMs + marginMs, lastSeen being the last answer of the target
//     to this VM (never seen since this VM started: its start time, the safe assumption).
//     Otherwise: not ok, why, and when asking again may change the answer.
//
// Why (b) suffices (the full argument is in docs/recovery.md): a VM X cut off from a majority at
// time C has majorityAt <= C, so it is isolated by C + tIsoMs (+ one evaluation tick, + one probe
// timeout when a starved loop defers the verdict, isolation-monitor.ts) and its flow stops the
// service. The recovering VM R probes X every probeIntervalMs, so its last answer from X came at
// most one interval before C: lastSeen(X) >= C - probeIntervalMs. Hence the gate opens at
// >= C - interval + tIsoMs + marginMs, after X stopped, when marginMs >= interval + tick + probe
// timeout + the time the flow needs to stop the service. Both durations are measured on each VM's
// own clock; clock offsets do not enter, only rates (ppm).
import type { IsolationVerdict } from '../records/cluster-api';
import type { Member } from '../records/records';

export interface IsolationSettings {
  /** Every member is pinged this often (ms). */
  probeIntervalMs: number;
  /** One ping's deadline (ms). */
  probeTimeoutMs: number;
  /** A member answered a ping started within this window counts as reachable now (ms). */
  freshMs: number;
  /** T_iso: a VM without a majority contact for this long stops serving (ms). */
  tIsoMs: number;
  /** Added to T_iso by the recovering side (ms): see the header, rule 5 and docs/recovery.md. */
  marginMs: number;
  /** The rule is evaluated this often (ms). */
  tickMs: number;
}

/**
 * Defaults. T_iso = 4 s: long enough that two or three lost pings in a row (0.5 s apart, 0.8 s
 * deadline) never stop a healthy VM, short enough to end before a recovery would anyway start
 * (re-examination 2 s + a fence that times out on an unreachable host, 5 s): the gate then rarely
 * delays a recovery. margin = 2 s >= interval 0.5 + tick 0.25 + deferred probe 0.8, leaving 0.45 s
 * for the flow to stop its service.
 */
export const ISOLATION_DEFAULTS: IsolationSettings = {
  probeIntervalMs: 500,
  probeTimeoutMs: 800,
  freshMs: 1500,
  tIsoMs: 4000,
  marginMs: 2000,
  tickMs: 250,
};

/** Check the settings together; throws a clear error (nothing starts). */
export function validateIsolationSettings(s: IsolationSettings): IsolationSettings {
  for (const [k, v] of Object.entries(s)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`isolation setting ${k} must be a number of ms > 0, got ${v}`);
  }
  if (s.freshMs < s.probeIntervalMs + s.probeTimeoutMs) {
    throw new Error(`freshness (${s.freshMs} ms) must be at least the ping interval + timeout (${s.probeIntervalMs + s.probeTimeoutMs} ms)`);
  }
  if (s.tIsoMs <= s.freshMs) throw new Error(`T_iso (${s.tIsoMs} ms) must be longer than the freshness window (${s.freshMs} ms)`);
  const floor = s.probeIntervalMs + s.tickMs + s.probeTimeoutMs;
  if (s.marginMs < floor) throw new Error(`isolation margin (${s.marginMs} ms) must be at least ping interval + tick + ping timeout (${floor} ms)`);
  return s;
}

export type IsolationStateName =
  /** This VM is not in the group (an OD, or removed): the rule says nothing about serving. */
  | 'not-member'
  /** Replaced (group state fenced): stays out until re-admitted. */
  | 'fenced'
  /** Was a member since this VM started, and its record is gone: stays out. */
  | 'removed'
  /** A voter that has not yet heard a majority since it started, for less than T_iso. */
  | 'starting'
  /** A voter with a majority now. */
  | 'majority'
  /** A voter that lost its majority less than T_iso ago. */
  | 'no-majority'
  /** A voter without a majority contact for more than T_iso: must not serve. */
  | 'isolated';

export interface IsolationState {
  state: IsolationStateName;
  /** Voters (hostnames, this VM included when it is one). */
  voters: string[];
  needed: number;
  /** Voters reachable now (rule 1), this VM included when it is a voter. */
  reachable: string[];
  /** Last moment this VM held a majority contact (rule 2); undefined when never. */
  majorityAt?: number;
  /** Must this VM's service be stopped? (isolated or fenced) */
  stop: boolean;
  /** One sentence for the status, logs and the self-fence message. */
  why: string;
}

interface Contact {
  startedAt: number;
  answeredAt: number;
}

export class IsolationTracker {
  readonly settings: IsolationSettings;
  private members: Member[] = [];
  private wasMember = false;
  private readonly contacts = new Map<string, Contact>();

  constructor(
    private name: string,
    /** When this VM started watching: "never seen" counts from here, and so does T_iso at start. */
    readonly startedAt: number,
    settings: Partial<IsolationSettings> = {},
  ) {
    this.settings = validateIsolationSettings({ ...ISOLATION_DEFAULTS, ...settings });
  }

  /** The name this VM is judged under (its store's hostname). */
  get self(): string {
    return this.name;
  }

  /**
   * This VM now answers to another name (a backup that took a failed member's role: the store's
   * identity switched in place, before any flow deploy). The rule judges the new name from now on:
   * once the group file lists it, it is a voter that must stop when cut off. Its membership history
   * starts again (the old name's "was a member" says nothing about the new one); the contacts with
   * the other members stay, they are what this VM heard, whatever its name.
   */
  rename(next: string): void {
    if (next === this.name) return;
    this.name = next;
    this.contacts.delete(next);
    this.wasMember = this.members.some((m) => m.hostname === next);
  }

  /** The group as the files say it now (typed members). */
  setGroup(members: Member[]): void {
    this.members = members.slice();
    if (this.members.some((m) => m.hostname === this.self)) this.wasMember = true;
  }

  /** Members other than this VM, fenced ones included (the gate still needs when they were seen). */
  peers(): Member[] {
    return this.members.filter((m) => m.hostname !== this.self);
  }

  heard(peer: string, startedAt: number, answeredAt: number): void {
    const c = this.contacts.get(peer);
    this.contacts.set(peer, { startedAt: Math.max(c?.startedAt ?? -Infinity, startedAt), answeredAt: Math.max(c?.answeredAt ?? -Infinity, answeredAt) });
  }

  /** The last answer of this peer to this VM, if any. */
  lastSeen(peer: string): number | undefined {
    return this.contacts.get(peer)?.answeredAt;
  }

  /** The rule's state at `now`; `freshMs` overrides the window of rule 1 (a claim asks for a stricter one). */
  evaluate(now: number, freshMs = this.settings.freshMs): IsolationState {
    const s = this.settings;
    const me = this.members.find((m) => m.hostname === this.self);
    const voters = this.members.filter((m) => m.state !== 'fenced').map((m) => m.hostname);
    const needed = Math.floor(voters.length / 2) + 1;
    const base = { voters, needed };
    if (!me && this.wasMember) {
      return { ...base, state: 'removed', reachable: [], stop: true, why: `${this.self} was removed from the group file (replaced): it stays out` };
    }
    if (!me) return { ...base, state: 'not-member', reachable: [], stop: false, why: `${this.self} is not in the group file` };
    const others = voters.filter((v) => v !== this.self);
    const fresh = others.filter((v) => (this.contacts.get(v)?.startedAt ?? -Infinity) >= now - freshMs);
    if (me.state === 'fenced') {
      return { ...base, state: 'fenced', reachable: fresh, stop: true, why: `${this.self} is fenced in the group file (replaced): it stays out until an operator re-admits it` };
    }
    const reachable = [this.self, ...fresh];
    // Rule 2: the (needed-1)-th most recent contact start among the other voters.
    const starts = others.map((v) => this.contacts.get(v)?.startedAt ?? -Infinity).sort((a, b) => b - a);
    const k = needed - 1;
    const majorityAtRaw = k === 0 ? now : starts[k - 1];
    const majorityAt = Number.isFinite(majorityAtRaw) ? majorityAtRaw : undefined;
    const summary = `reaches ${reachable.length} of ${voters.length} members (${reachable.join(' ')}), a majority needs ${needed}`;
    if (reachable.length >= needed) return { ...base, state: 'majority', reachable, majorityAt, stop: false, why: summary };
    const since = majorityAt ?? this.startedAt;
    const silent = now - since;
    if (silent > s.tIsoMs) {
      return { ...base, state: 'isolated', reachable, majorityAt, stop: true, why: `isolated: ${summary}; no majority for ${silent} ms > T_iso ${s.tIsoMs} ms` };
    }
    const state = majorityAt === undefined ? 'starting' : 'no-majority';
    return { ...base, state, reachable, majorityAt, stop: false, why: `${summary}; stops serving in ${s.tIsoMs - silent} ms` };
  }

  /** Rule 5: may a recovery whose fence could not reach `target`'s host go ahead now? */
  gate(target: string, now: number): IsolationVerdict {
    const s = this.settings;
    const st = this.evaluate(now);
    if (st.state === 'not-member' || st.state === 'removed' || st.state === 'fenced' || st.state === 'isolated') {
      return { ok: false, why: `this VM cannot decide for the group: ${st.why}`, retryAfterMs: s.probeIntervalMs };
    }
    if (st.reachable.length < st.needed) {
      return { ok: false, why: `no strict majority on this side: ${st.why}`, retryAfterMs: s.probeIntervalMs };
    }
    const seen = this.lastSeen(target);
    const last = seen ?? this.startedAt;
    const wait = s.tIsoMs + s.marginMs;
    const unseen = now - last;
    const seenText = seen === undefined ? `not seen since this VM started ${unseen} ms ago` : `last seen ${unseen} ms ago`;
    if (unseen <= wait) {
      return {
        ok: false,
        why: `${target} ${seenText}: an isolated VM stops serving within T_iso + margin = ${wait} ms`,
        retryAfterMs: wait - unseen + 1,
      };
    }
    return { ok: true, detail: `${st.why}; ${target} ${seenText} (> T_iso + margin = ${wait} ms)` };
  }
}
