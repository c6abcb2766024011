// The heartbeat of one manager: watches the targets the operation file gives it (ring-view.ts),
// one TargetMonitor each, follows every change of the group file at once, records each step of a
// suspicion in the replicated problem file, and applies the claim rule of recovery-claim.ts so
// that exactly one manager acts on each failure, and only on the majority side of a cut (rule 6,
// with the isolation monitor as its `quorum`). No Node-RED here: the p2p-heartbeat node wires
// this to a flow (events 'failure' and 'recovered-by-itself').
import { EventEmitter } from 'events';
import type { ChangeEvent, ClusterFiles, Edit } from '../records/cluster-api';
import { fromMember, isResting } from '../records/records';
import { Clock, realClock, TimerHandle } from './clock';
import { checkMember } from './checks';
import { pingManager } from './probes';
import {
  CLAIM_DEFAULTS,
  ClaimEdit,
  ClaimSettings,
  claimWinner,
  HANDLING_STATUSES,
  inEpisode,
  isClaim,
  decideP1,
  decideP2,
  Decision,
  p1MustReassert,
  p2KeepsClaim,
  parseProblem,
  problemRecord,
  Quorum,
} from './recovery-claim';
import { Member, membersByName, ringView, Watch } from './ring-view';
import { parseServiceCheck, sourceAddress } from './probes';
import { Sentinel } from './sentinel';
import type { StarvationView } from './starvation';
import { CheckResult, MONITOR_DEFAULTS, TargetMonitor, Transition } from './target-monitor';

export interface HeartbeatSettings extends ClaimSettings {
  intervalMs: number;
  timeoutMs: number;
  reexamNetworkMs: number;
  reexamServiceMs: number;
  recheckMs: number;
  /** A target never seen since start is not suspected before this (target-monitor.ts). */
  startGraceMs: number;
}

export const HEARTBEAT_DEFAULTS: HeartbeatSettings = { ...MONITOR_DEFAULTS, ...CLAIM_DEFAULTS };

export interface HeartbeatDeps {
  files: ClusterFiles;
  settings?: Partial<HeartbeatSettings>;
  clock?: Clock;
  starvation?: StarvationView;
  /** One check of a target (default: real probes, checks.ts). */
  check?: (member: Member, timeoutMs: number) => Promise<CheckResult>;
  /** Does this manager answer? (P2 asks about P1 before taking over; default: the ping probe.) */
  ping?: (member: Member, timeoutMs: number) => Promise<boolean>;
  /**
   * Hold an idle connection to each checked port so a crash is seen at once (sentinel.ts).
   * Default: on with the real probes, off with an injected check.
   */
  sentinels?: boolean;
  /**
   * Rule 6 of recovery-claim.ts: does this VM's side hold a strict majority now? (the isolation
   * monitor). Absent: every confirmation may claim, as before the isolation rule.
   */
  quorum?: { majority(now: number, withinMs?: number): Quorum };
}

/** What both reports say of the target and the suspicion. */
interface ReportHead {
  target: string;
  address: string;
  realServer: string;
  kind: 'network' | 'service';
  detectedBy: string;
  priority: 'P1' | 'P2';
  reason: string;
}

export interface FailureReport extends ReportHead {
  decision: string;
  timings: {
    detectedAt: string;
    confirmedAt: string;
    actedAt: string;
    reexaminationMs: number;
    /** confirmedAt - detectedAt. */
    elapsedMs: number;
    /** actedAt - detectedAt. */
    totalMs: number;
    checks: number;
    inconclusive: number;
  };
}

export interface RecoveredReport extends ReportHead {
  timings: { detectedAt: string; clearedAt: string; elapsedMs: number; checks: number };
}

type Phase = 'suspect' | 'confirmed' | 'waiting' | 'probing' | 'settling' | 'acted' | 'stood-down' | 'no-quorum';

interface Episode {
  detectedAt: number;
  phase: Phase;
  recorded: boolean;
  confirmed?: Transition;
  timer?: TimerHandle;
  notBefore?: number;
  decision?: string;
  winner?: string;
  /** When this episode began to wait for a majority (rule 6). */
  noQuorumSince?: number;
}

/** A majority back within this time after a confirmation waited for it: decide again at once. */
const QUORUM_BLIP_MS = 1000;

interface Entry {
  watch: Watch;
  monitor: TargetMonitor;
  episode?: Episode;
  /** Claim edits of this target seen in change events (recent ones only), for rule 5. */
  claims: ClaimEdit[];
  sentinels: Sentinel[];
}

export interface WatchSummary {
  target: string;
  priority: 'P1' | 'P2';
  state: string;
  kind?: string;
  /** ms until the re-examination ends, while suspect. */
  remainingMs?: number;
  phase?: Phase;
  winner?: string;
}

export class Heartbeat extends EventEmitter {
  readonly settings: HeartbeatSettings;
  private readonly files: ClusterFiles;
  private readonly clock: Clock;
  private readonly starvation?: StarvationView;
  private readonly quorum?: { majority(now: number, withinMs?: number): Quorum };
  private readonly checkFn: (member: Member, timeoutMs: number) => Promise<CheckResult>;
  private readonly pingFn: (member: Member, timeoutMs: number) => Promise<boolean>;
  private readonly entries = new Map<string, Entry>();
  private readonly onChange = (ev: ChangeEvent) => this.changed(ev);
  private running = false;
  private readonly useSentinels: boolean;
  private readonly localAddress?: string;

  constructor(deps: HeartbeatDeps) {
    super();
    this.files = deps.files;
    this.clock = deps.clock ?? realClock;
    this.starvation = deps.starvation;
    this.quorum = deps.quorum;
    this.settings = { ...HEARTBEAT_DEFAULTS, ...(deps.settings ?? {}) };
    for (const [k, v] of Object.entries(this.settings)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`heartbeat setting ${k} must be a number of ms >= 0, got ${v}`);
    }
    if (this.settings.timeoutMs >= this.settings.intervalMs) {
      throw new Error(`timeout (${this.settings.timeoutMs} ms) must be shorter than the interval (${this.settings.intervalMs} ms)`);
    }
    const port = this.files.port;
    const from = sourceAddress(this.files.identity.address);
    this.localAddress = from;
    this.useSentinels = deps.sentinels ?? !deps.check;
    this.checkFn = deps.check ?? ((m, t) => checkMember(m, port, t, from));
    this.pingFn = deps.ping ?? (async (m, t) => (await pingManager(m.address, port, t, m.hostname, from)).outcome === 'ok');
  }

  get me(): string {
    return this.files.identity.hostname;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.files.on('change', this.onChange);
    this.refresh();
  }

  stop(): void {
    this.running = false;
    this.files.removeListener('change', this.onChange);
    for (const e of this.entries.values()) this.drop(e);
    this.entries.clear();
  }

  summary(): WatchSummary[] {
    const now = this.clock.now();
    return [...this.entries.values()].map((e) => {
      const d = e.monitor.deadline;
      return {
        target: e.watch.target.hostname,
        priority: e.watch.priority,
        state: e.monitor.state,
        kind: e.monitor.kind,
        remainingMs: d === undefined ? undefined : Math.max(0, d - now),
        phase: e.episode?.phase,
        winner: e.episode?.winner,
      };
    });
  }

  private drop(e: Entry): void {
    this.stopSentinels(e);
    e.monitor.stop();
    e.monitor.removeAllListeners();
    if (e.episode?.timer !== undefined) this.clock.clearTimeout(e.episode.timer);
  }

  /** Re-read group + operation: watch new targets, forget old ones, follow priority changes. */
  refresh(): void {
    if (!this.running) return;
    const group = this.files.records('group');
    // A target in maintenance (lib/ops/maintenance.ts) gets no verdict: it is not watched at all
    // until it leaves maintenance, then watched afresh (a new episode).
    const resting = new Set(group.map(fromMember).filter(isResting).map((m) => m.hostname));
    const view = ringView(this.me, group, this.files.records('operation')).filter((w) => !resting.has(w.target.hostname));
    const wanted = new Map(view.map((w) => [w.target.hostname, w]));
    for (const [name, e] of this.entries) {
      if (!wanted.has(name)) {
        this.drop(e);
        this.entries.delete(name);
        this.emit('log', resting.has(name) ? `stopped watching ${name}: in maintenance` : `stopped watching ${name}`);
      }
    }
    for (const [name, w] of wanted) {
      const e = this.entries.get(name);
      if (e) {
        const moved = e.watch.target.address !== w.target.address;
        const servicesChanged = e.watch.target.services.join(' ') !== w.target.services.join(' ');
        e.watch = w;
        // A target that moved to another address is a new machine: no old suspicion applies.
        if (moved) this.restart(e);
        if (moved || servicesChanged) this.startSentinels(e);
        continue;
      }
      this.add(w);
    }
    this.emit('status');
  }

  private restart(e: Entry): void {
    if (e.episode?.timer !== undefined) this.clock.clearTimeout(e.episode.timer);
    e.episode = undefined;
    e.monitor.reset();
  }

  private add(w: Watch): void {
    const name = w.target.hostname;
    const entry: Entry = { watch: w, claims: [], sentinels: [], monitor: undefined as unknown as TargetMonitor };
    entry.monitor = new TargetMonitor({
      target: name,
      // Read the entry's current member: an address or services change applies at the next check.
      check: () => this.checkFn(entry.watch.target, this.settings.timeoutMs),
      clock: this.clock,
      intervalMs: this.settings.intervalMs,
      timeoutMs: this.settings.timeoutMs,
      reexamNetworkMs: this.settings.reexamNetworkMs,
      reexamServiceMs: this.settings.reexamServiceMs,
      recheckMs: this.settings.recheckMs,
      startGraceMs: this.settings.startGraceMs,
      starvation: this.starvation,
    });
    entry.monitor.on('transition', (t: Transition) => this.transition(entry, t));
    entry.monitor.on('check-error', (err: Error) => this.emit('warn', `check of ${name}: ${err.message}`));
    this.entries.set(name, entry);
    entry.monitor.start();
    this.startSentinels(entry);
    this.emit('log', `watching ${name} as ${w.priority}`);
  }

  /** (Re)open the idle connections to the target's manager port and tcp/http service ports. */
  private startSentinels(e: Entry): void {
    this.stopSentinels(e);
    if (!this.useSentinels) return;
    const ports = new Set<number>([this.files.port]);
    for (const text of e.watch.target.services) {
      try {
        ports.add(parseServiceCheck(text).port);
      } catch {
        /* not a check we can watch */
      }
    }
    for (const port of ports) {
      const s = new Sentinel({
        host: e.watch.target.address,
        localAddress: this.localAddress,
        port,
        retryMs: this.settings.intervalMs,
        onLost: () => {
          if (e.monitor.state === 'ok') e.monitor.nudge();
        },
      });
      e.sentinels.push(s);
      s.start();
    }
  }

  private stopSentinels(e: Entry): void {
    for (const s of e.sentinels) s.stop();
    e.sentinels = [];
  }

  private changed(ev: ChangeEvent): void {
    try {
      if (ev.file === 'group' || ev.file === 'operation') return this.refresh();
      if (ev.file !== 'problem') return;
      const claimed = this.entries.get(ev.record[0]);
      if (claimed && ev.op !== 'Del') this.noteClaim(claimed, ev);
      // A confirmed target whose problem record was removed, or marked recovered or cleared (by
      // an operator or the recovery flow), is watched afresh: a new failure is a new episode.
      if (claimed && claimed.monitor.state === 'confirmed') {
        const p = parseProblem(this.files.get('problem', claimed.watch.target.hostname));
        if (!p || p.status === 'recovered' || p.status === 'cleared') {
          this.emit('log', `${claimed.watch.target.hostname}: problem record ${p ? p.status : 'removed'}, watching afresh`);
          this.restart(claimed);
        }
      }
      for (const e of this.entries.values()) {
        const ep = e.episode;
        if (!ep) continue;
        if (e.watch.priority === 'P2' && ep.phase === 'waiting') this.evaluateP2(e);
        else if (e.watch.priority === 'P1' && ep.phase === 'acted' && ev.record[0] === e.watch.target.hostname) this.reassert(e);
      }
    } catch (err) {
      this.emit('warn', `change handling: ${(err as Error).message}`);
    }
  }

  private noteClaim(e: Entry, ev: ChangeEvent): void {
    const p = parseProblem(ev.record);
    if (!p || !(HANDLING_STATUSES as readonly string[]).includes(p.status)) return;
    const horizon = this.clock.now() - 60_000;
    e.claims = e.claims.filter((c) => c.sinceMs >= horizon);
    e.claims.push({ manager: p.detectedBy, lamport: ev.lamport, origin: ev.origin, sinceMs: p.sinceMs });
  }

  private problem(name: string) {
    return parseProblem(this.files.get('problem', name));
  }

  /**
   * Write this target's problem record. get() and edit() run in the same turn of the event loop and
   * the store applies an edit to its replica before its first await (ReplicatedStore does), so the
   * Mod's `before` is always the current record and the record is local at once; the fan-out to
   * the peers goes on in the background (a dead peer's timeout must not delay the verdict).
   * Failures are reported as warnings, never thrown.
   */
  private record(e: Entry, status: string, kind: string, since: number): void {
    const target = e.watch.target.hostname;
    const next = problemRecord(target, this.me, kind, status, since);
    try {
      const before = this.files.get('problem', target);
      if (before && before.join(', ') === next.join(', ')) return;
      // Never downgrade a claim of this episode with a suspicion step (a late P1 must not erase it).
      const cur = parseProblem(before);
      if (status !== 'confirmed' && isClaim(cur) && inEpisode(cur, since, this.settings.episodeSlackMs)) return;
      const edit: Edit = before ? { file: 'problem', op: 'Mod', before, record: next } : { file: 'problem', op: 'Add', record: next };
      this.files.edit(edit).catch((err: Error) => this.emit('warn', `problem ${target} ${status}: ${err.message}`));
    } catch (err) {
      this.emit('warn', `problem ${target} ${status}: ${(err as Error).message}`);
    }
  }

  private transition(e: Entry, t: Transition): void {
    try {
      this.emit('transition', { ...t, priority: e.watch.priority });
      const p1 = e.watch.priority === 'P1';
      if (t.to === 'suspect') {
        if (e.episode?.timer !== undefined) this.clock.clearTimeout(e.episode.timer);
        e.episode = { detectedAt: t.timings.detectedAt, phase: 'suspect', recorded: p1 };
        if (p1) this.record(e, 'detected', t.kind, t.timings.detectedAt);
      } else if (t.to === 'reexamining') {
        if (p1) this.record(e, 'reexamining', t.kind, t.timings.detectedAt);
      } else if (t.to === 'cleared') {
        const ep = e.episode;
        e.episode = undefined;
        if (ep?.recorded) this.record(e, 'cleared', t.kind, t.timings.detectedAt);
        if (p1) this.emit('recovered-by-itself', this.recoveredReport(e, t));
      } else if (t.to === 'confirmed') {
        const ep = (e.episode ??= { detectedAt: t.timings.detectedAt, phase: 'suspect', recorded: p1 });
        ep.confirmed = t;
        ep.phase = 'confirmed';
        if (p1) this.confirmP1(e);
        else this.evaluateP2(e);
      }
    } catch (err) {
      this.emit('warn', `transition of ${t.target}: ${(err as Error).message}`);
    }
    this.emit('status');
  }

  private confirmP1(e: Entry): void {
    const ep = e.episode!;
    const d = decideP1(this.me, this.problem(e.watch.target.hostname), ep.detectedAt, this.settings, e.claims, this.quorumNow());
    if (d.action === 'stand-down') return this.standDown(e, d);
    if (d.action === 'no-quorum') return this.waitForQuorum(e, d.reason);
    this.claimAndAct(e, d.reason);
  }

  /**
   * Rule 6's question. Contacts count only when they started within re-examination - timeout: a
   * minority side's last contact across a cut started before the cut, and the earliest confirmation
   * there comes re-examination after a check that started at most one timeout before the cut.
   */
  private quorumNow(): Quorum | undefined {
    const window = Math.min(this.settings.reexamNetworkMs, this.settings.reexamServiceMs) - this.settings.timeoutMs;
    return this.quorum?.majority(this.clock.now(), Math.max(1, window));
  }

  /** Rule 6: on the minority side, start nothing; quorumChanged() watches afresh later. */
  private waitForQuorum(e: Entry, reason: string): void {
    const ep = e.episode!;
    if (ep.timer !== undefined) this.clock.clearTimeout(ep.timer);
    ep.timer = undefined;
    if (ep.phase !== 'no-quorum') {
      this.emit('no-quorum', { target: e.watch.target.hostname, priority: e.watch.priority, reason });
      ep.noQuorumSince = this.clock.now();
    }
    ep.phase = 'no-quorum';
    ep.decision = reason;
    this.emit('status');
  }

  /**
   * The isolation monitor says the majority is heard again (true) or lost (false). Episodes that
   * waited for it are watched afresh: after a cut heals, a target that is fine is not recovered,
   * and one that is still failing is confirmed again, now with a majority. A suspicion this VM
   * recorded meanwhile is written `cleared` (the new episode records its own steps).
   */
  quorumChanged(majority: boolean): void {
    if (!majority || !this.running) return;
    for (const e of this.entries.values()) {
      const ep = e.episode;
      if (ep?.phase !== 'no-quorum') continue;
      if (this.clock.now() - (ep.noQuorumSince ?? 0) <= QUORUM_BLIP_MS && ep.confirmed) {
        // A blip (a late answer on a loaded machine), not a cut that healed: decide again now.
        this.emit('log', `${e.watch.target.hostname}: majority back after ${this.clock.now() - ep.noQuorumSince!} ms, deciding again`);
        ep.phase = 'confirmed';
        if (e.watch.priority === 'P1') this.confirmP1(e);
        else this.evaluateP2(e);
        continue;
      }
      this.emit('log', `${e.watch.target.hostname}: majority heard again, watching afresh`);
      if (ep.recorded && ep.confirmed) this.record(e, 'cleared', ep.confirmed.kind, ep.detectedAt);
      this.restart(e);
    }
    this.emit('status');
  }

  /** P1: write the claim (local at once, see record()) and act. */
  private claimAndAct(e: Entry, reason: string): void {
    const ep = e.episode!;
    ep.phase = 'acted';
    ep.decision = reason;
    ep.winner = this.me;
    this.record(e, 'confirmed', ep.confirmed!.kind, ep.detectedAt);
    this.act(e, reason);
  }

  private reassert(e: Entry): void {
    const ep = e.episode!;
    if (p1MustReassert(this.me, this.problem(e.watch.target.hostname), ep.detectedAt, this.settings)) {
      this.emit('log', `${e.watch.target.hostname}: another manager's claim was merged over ours; claiming again`);
      this.record(e, 'confirmed', ep.confirmed!.kind, ep.detectedAt);
    }
  }

  private p1Member(e: Entry): Member | undefined {
    return membersByName(this.files.records('group')).get(e.watch.p1);
  }

  private evaluateP2(e: Entry, p1Answered?: boolean): void {
    const ep = e.episode;
    if (!ep || !ep.confirmed || !this.running) return;
    if (ep.timer !== undefined) this.clock.clearTimeout(ep.timer);
    ep.timer = undefined;
    const target = e.watch.target.hostname;
    const p1 = e.watch.p1;
    const d: Decision = decideP2(
      {
        me: this.me,
        p1,
        record: this.problem(target),
        p1Problem: this.problem(p1),
        p1InGroup: this.p1Member(e) !== undefined,
        episodeStart: ep.detectedAt,
        reexaminationMs: ep.confirmed.timings.reexaminationMs,
        now: this.clock.now(),
        p1Answered,
        notBefore: ep.notBefore,
        quorum: this.quorumNow(),
      },
      this.settings,
    );
    ep.decision = d.reason;
    switch (d.action) {
      case 'stand-down':
        return this.standDown(e, d);
      case 'no-quorum':
        return this.waitForQuorum(e, d.reason);
      case 'wait':
        if (p1Answered) {
          // P1 is alive and has not claimed it: P1 sees the target otherwise (or is still
          // re-examining). Watch afresh rather than sit on a confirmation P1 does not share;
          // if the target still fails for us, the next confirmation asks again.
          this.emit('log', `${target}: ${d.reason}; watching it afresh`);
          this.restart(e);
          this.emit('status');
          return;
        }
        ep.phase = 'waiting';
        ep.notBefore = d.until;
        ep.timer = this.clock.setTimeout(() => this.evaluateP2(e), d.until - this.clock.now());
        break;
      case 'probe-p1': {
        ep.phase = 'probing';
        const m = this.p1Member(e);
        const probe = m ? this.pingFn(m, this.settings.timeoutMs) : Promise.resolve(false);
        void probe
          .catch(() => false)
          .then((answered) => {
            if (e.episode === ep && ep.phase === 'probing') this.evaluateP2(e, answered);
          });
        break;
      }
      case 'claim':
        this.claimP2(e, d.reason);
        break;
    }
    this.emit('status');
  }

  /** P2: write the claim, let it settle, act only if no P1 claim arrived meanwhile. */
  private claimP2(e: Entry, reason: string): void {
    const ep = e.episode!;
    ep.phase = 'settling';
    ep.recorded = true;
    this.record(e, 'confirmed', ep.confirmed!.kind, ep.detectedAt);
    ep.timer = this.clock.setTimeout(() => {
      ep.timer = undefined;
      if (e.episode !== ep || !this.running) return;
      const q = this.quorumNow();
      if (q && !q.ok) return this.waitForQuorum(e, `majority lost while the claim settled: ${q.why}`);
      if (p2KeepsClaim(this.me, e.watch.p1, e.claims, ep.detectedAt, this.settings)) {
        ep.phase = 'acted';
        ep.winner = this.me;
        this.act(e, reason);
      } else {
        const w = claimWinner(e.claims, e.watch.p1)?.manager ?? e.watch.p1;
        this.standDown(e, { winner: w, reason: `${w} claimed it too and wins` });
      }
      this.emit('status');
    }, this.settings.settleMs);
  }

  private standDown(e: Entry, d: { winner: string; reason: string }): void {
    const ep = e.episode!;
    ep.phase = 'stood-down';
    ep.winner = d.winner;
    ep.decision = d.reason;
    this.emit('stood-down', { target: e.watch.target.hostname, priority: e.watch.priority, winner: d.winner, reason: d.reason });
    this.emit('status');
  }

  private act(e: Entry, decision: string): void {
    const ep = e.episode!;
    const t = ep.confirmed!;
    const now = this.clock.now();
    const w = e.watch;
    const report: FailureReport = {
      target: w.target.hostname,
      address: w.target.address,
      realServer: w.target.realServer,
      kind: t.kind,
      detectedBy: this.me,
      priority: w.priority,
      reason: t.reason,
      decision,
      timings: {
        detectedAt: new Date(t.timings.detectedAt).toISOString(),
        confirmedAt: new Date(t.timings.at).toISOString(),
        actedAt: new Date(now).toISOString(),
        reexaminationMs: t.timings.reexaminationMs,
        elapsedMs: t.timings.elapsedMs,
        totalMs: now - t.timings.detectedAt,
        checks: t.timings.checks,
        inconclusive: t.timings.inconclusive,
      },
    };
    this.emit('failure', report);
  }

  private recoveredReport(e: Entry, t: Transition): RecoveredReport {
    return {
      target: e.watch.target.hostname,
      address: e.watch.target.address,
      realServer: e.watch.target.realServer,
      kind: t.kind,
      detectedBy: this.me,
      priority: e.watch.priority,
      reason: t.reason,
      timings: {
        detectedAt: new Date(t.timings.detectedAt).toISOString(),
        clearedAt: new Date(t.timings.at).toISOString(),
        elapsedMs: t.timings.elapsedMs,
        checks: t.timings.checks,
      },
    };
  }
}

