// The state machine of one watched target:
//
//   ok --(failed check)--> suspect --(failed re-check)--> reexamining --(still failing when the
//   re-examination time has elapsed)--> confirmed
//   suspect | reexamining --(a check succeeds)--> ok, announced as 'cleared' (recovered by itself)
//
// Checks run every `intervalMs` while ok. Once suspect, re-checks run every `recheckMs` and are
// timed so that one ends exactly when the re-examination time is up (a re-check starts at
// deadline - timeout, and one at the deadline), so a confirmation comes right at the deadline, not
// up to an interval later. The re-examination time is `reexamNetworkMs` when the network probe
// fails and `reexamServiceMs` for a service fault; it counts from the start of the first failed
// check. A failed check that overlapped a starvation of this monitor (starvation.ts) is
// inconclusive: it does not start a suspicion, and in a re-examination it restarts the count from
// the next conclusive failure (no gap of blindness may count as evidence). `confirmed` is final
// until reset(): the recovery flow takes over from there.
//
// Start-up grace: a target that has not answered once since this monitor started is not suspected
// during the first `startGraceMs` (a peer deployed a few seconds after this one is booting, not
// failed: without this rule the first event of every fresh cluster was a false detection). The
// grace is bounded and counts from the first start() only: a target that never answers is
// suspected by the first failed check after it, so a real failure is detected at most
// startGraceMs later, never hidden. Once the target has answered, the grace no longer applies.
// Residual: a monitor created when the ring changes (a new watch) grants the grace too, so a
// target that fails at the very moment it is handed to a new manager is suspected by that
// manager up to startGraceMs later (its other manager, whose monitor already saw it, is not delayed).
import { EventEmitter } from 'events';
import { Clock, realClock, TimerHandle } from './clock';
import type { ProbeResult } from './probes';
import type { StarvationView } from './starvation';

export type MonitorState = 'ok' | 'suspect' | 'reexamining' | 'confirmed';
export type FailureKind = 'network' | 'service';

export interface CheckResult {
  ok: boolean;
  /** The kind of a failure: network when the manager's probe failed, else service. */
  kind?: FailureKind;
  /** Short reason, e.g. `ping: manager-not-answering (ECONNREFUSED)`. */
  reason?: string;
  results?: ProbeResult[];
}

export interface Timings {
  /** Start of the first failed check of this suspicion (ms since epoch). */
  detectedAt: number;
  /** End of the last successful check before it, if any. */
  lastOkAt: number | null;
  /** When this transition happened. */
  at: number;
  /** The re-examination time that applies (ms). */
  reexaminationMs: number;
  /** at - detectedAt. */
  elapsedMs: number;
  /** Checks run in this suspicion, failed ones, and inconclusive ones (starved). */
  checks: number;
  failed: number;
  inconclusive: number;
}

export interface Transition {
  target: string;
  from: MonitorState;
  /** 'cleared' is announced on the way back to ok. */
  to: 'suspect' | 'reexamining' | 'confirmed' | 'cleared';
  kind: FailureKind;
  reason: string;
  timings: Timings;
}

export interface MonitorOptions {
  target: string;
  check: () => Promise<CheckResult>;
  clock?: Clock;
  intervalMs?: number;
  timeoutMs?: number;
  reexamNetworkMs?: number;
  reexamServiceMs?: number;
  recheckMs?: number;
  /** A target never seen since start is not suspected before this (ms; 0 = off). */
  startGraceMs?: number;
  starvation?: StarvationView;
}

export const MONITOR_DEFAULTS = {
  intervalMs: 1000,
  timeoutMs: 500,
  reexamNetworkMs: 2000,
  reexamServiceMs: 3000,
  recheckMs: 250,
  startGraceMs: 15_000,
};

interface Suspicion {
  detectedAt: number;
  /** Start of the conclusive failure the re-examination counts from. */
  countFrom: number;
  /** The next conclusive failure restarts the count (a starved check came in between). */
  restart: boolean;
  kind: FailureKind;
  reason: string;
  checks: number;
  failed: number;
  inconclusive: number;
}

export class TargetMonitor extends EventEmitter {
  readonly target: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly reexamNetworkMs: number;
  readonly reexamServiceMs: number;
  readonly recheckMs: number;
  readonly startGraceMs: number;
  private readonly clock: Clock;
  private readonly check: () => Promise<CheckResult>;
  private readonly starvation?: StarvationView;
  private _state: MonitorState = 'ok';
  private suspicion: Suspicion | undefined;
  private lastOkAt: number | null = null;
  /** When start() was first called (the start-up grace counts from here). */
  private startedAt: number | undefined;
  private timer: TimerHandle | undefined;
  private inFlight = false;
  private running = false;
  /** Bumped by stop()/reset() so a check still in flight from before is ignored. */
  private generation = 0;

  constructor(opts: MonitorOptions) {
    super();
    this.target = opts.target;
    this.check = opts.check;
    this.clock = opts.clock ?? realClock;
    this.intervalMs = opts.intervalMs ?? MONITOR_DEFAULTS.intervalMs;
    this.timeoutMs = opts.timeoutMs ?? MONITOR_DEFAULTS.timeoutMs;
    this.reexamNetworkMs = opts.reexamNetworkMs ?? MONITOR_DEFAULTS.reexamNetworkMs;
    this.reexamServiceMs = opts.reexamServiceMs ?? MONITOR_DEFAULTS.reexamServiceMs;
    this.recheckMs = Math.min(opts.recheckMs ?? MONITOR_DEFAULTS.recheckMs, this.intervalMs);
    this.startGraceMs = opts.startGraceMs ?? MONITOR_DEFAULTS.startGraceMs;
    if (!Number.isFinite(this.startGraceMs) || this.startGraceMs < 0) throw new Error(`startGraceMs must be a number of ms >= 0, got ${this.startGraceMs}`);
    this.starvation = opts.starvation;
    for (const [k, v] of Object.entries({
      intervalMs: this.intervalMs,
      timeoutMs: this.timeoutMs,
      reexamNetworkMs: this.reexamNetworkMs,
      reexamServiceMs: this.reexamServiceMs,
      recheckMs: this.recheckMs,
    })) {
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive number of ms, got ${v}`);
    }
  }

  get state(): MonitorState {
    return this._state;
  }

  /** The time the current suspicion is due to be confirmed, if any (for the status countdown). */
  get deadline(): number | undefined {
    const s = this.suspicion;
    if (!s || this._state === 'confirmed') return undefined;
    return s.countFrom + this.reexamMs(s.kind);
  }

  get kind(): FailureKind | undefined {
    return this.suspicion?.kind;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt ??= this.clock.now();
    this.schedule(0);
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.inFlight = false;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Forget any suspicion or confirmation and watch afresh (the target was replaced or re-added). */
  reset(): void {
    const wasRunning = this.running;
    this.stop();
    this._state = 'ok';
    this.suspicion = undefined;
    if (wasRunning) this.start();
  }

  /** Check now (something hinted the target may be gone); ignored while a check runs. */
  nudge(): void {
    if (!this.running || this.inFlight || this._state === 'confirmed') return;
    this.schedule(0);
  }

  private reexamMs(kind: FailureKind): number {
    return kind === 'network' ? this.reexamNetworkMs : this.reexamServiceMs;
  }

  private schedule(delay: number): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, Math.max(0, delay));
  }

  private async run(): Promise<void> {
    if (!this.running || this.inFlight) return;
    this.inFlight = true;
    const gen = this.generation;
    const start = this.clock.now();
    let result: CheckResult;
    try {
      result = await this.check();
    } catch (e) {
      // A check must not throw; if it does, that says nothing about the peer.
      result = { ok: false, kind: 'network', reason: `check error: ${(e as Error).message}` };
      this.emit('check-error', e);
    }
    if (gen !== this.generation || !this.running) return;
    this.inFlight = false;
    const end = this.clock.now();
    this.emit('check', { result, start, end });
    try {
      this.onResult(result, start, end);
    } catch (e) {
      // A listener threw: keep monitoring rather than stop silently.
      this.emit('check-error', e);
      if (this.timer === undefined && this.running && this._state !== 'confirmed') this.schedule(this.intervalMs);
    }
  }

  private timings(s: Suspicion, at: number): Timings {
    return {
      detectedAt: s.detectedAt,
      lastOkAt: this.lastOkAt,
      at,
      reexaminationMs: this.reexamMs(s.kind),
      elapsedMs: at - s.detectedAt,
      checks: s.checks,
      failed: s.failed,
      inconclusive: s.inconclusive,
    };
  }

  private transition(to: Transition['to'], s: Suspicion, at: number): void {
    const from = this._state;
    this._state = to === 'cleared' ? 'ok' : to;
    const t: Transition = { target: this.target, from, to, kind: s.kind, reason: s.reason, timings: this.timings(s, at) };
    this.emit('transition', t);
  }

  private onResult(r: CheckResult, start: number, end: number): void {
    if (this._state === 'confirmed') return;
    const s = this.suspicion;
    if (r.ok) {
      this.lastOkAt = end;
      if (s) {
        s.checks++;
        this.suspicion = undefined;
        this.transition('cleared', s, end);
      }
      // Keep the cadence: the next check one interval after this one started.
      this.schedule(start + this.intervalMs - end);
      return;
    }
    const kind: FailureKind = r.kind ?? 'network';
    const reason = r.reason ?? 'check failed';
    if (this.starvation?.inconclusive(start, end)) {
      if (s) {
        s.checks++;
        s.inconclusive++;
        s.restart = true;
        this.schedule(this.recheckMs);
      } else {
        this.schedule(start + this.intervalMs - end);
      }
      this.emit('inconclusive', { target: this.target, start, end, reason });
      return;
    }
    if (!s && this.lastOkAt === null && this.startedAt !== undefined && start < this.startedAt + this.startGraceMs) {
      // Never seen since start and still in the start-up grace: booting, not failed (see header).
      this.emit('unseen', { target: this.target, start, end, reason, graceEndsAt: this.startedAt + this.startGraceMs });
      this.schedule(start + this.intervalMs - end);
      return;
    }
    if (!s) {
      const n: Suspicion = { detectedAt: start, countFrom: start, restart: false, kind, reason, checks: 1, failed: 1, inconclusive: 0 };
      this.suspicion = n;
      this.transition('suspect', n, end);
      this.scheduleRecheck(n, end);
      return;
    }
    s.checks++;
    s.failed++;
    s.reason = reason;
    // A network failure outranks a service fault (and has the shorter re-examination).
    if (kind === 'network') s.kind = 'network';
    if (s.restart) {
      s.restart = false;
      s.countFrom = start;
    }
    if (this._state === 'suspect') this.transition('reexamining', s, end);
    if (end >= s.countFrom + this.reexamMs(s.kind)) {
      this.transition('confirmed', s, end);
      return;
    }
    this.scheduleRecheck(s, end);
  }

  /** Next re-check: every recheckMs, but one starting at deadline - timeout and one at the deadline. */
  private scheduleRecheck(s: Suspicion, now: number): void {
    const deadline = s.countFrom + this.reexamMs(s.kind);
    const candidates = [now + this.recheckMs, deadline];
    if (deadline - this.timeoutMs > now) candidates.push(deadline - this.timeoutMs);
    this.schedule(Math.min(...candidates) - now);
  }
}
