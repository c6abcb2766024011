// The isolation rule (isolation.ts) at work: pings every member of the group file (its store's
// GET /p2p/ping, the same probe the heartbeat uses: cheap, and it proves the peer's manager runs),
// evaluates the rule every tick and says when this VM must stop serving ('self-fence') and when it
// may serve again ('rejoined'). It is also the IsolationGate the recovery layer asks before a
// recovery whose fence could not reach the host (the nodes hand it over, cluster-registry.ts).
//
// Starvation (starvation.ts): a late event loop reads answers late, so a VM whose loop stalled
// could believe it heard nobody. When the verdict would be "isolated" and the time since the last
// majority contact overlaps a starved window, the verdict is deferred once: every member is
// pinged at once and the rule decides on those fresh answers (at most one ping timeout later;
// the recovering side's margin covers it). A VM frozen longer than T_iso (SIGSTOP, a stall of
// seconds) therefore stops serving only if, once it runs again, it still hears no majority.
//
// Rejoining: a self-fenced VM that hears the majority again first catches up with it (`catchUp`,
// the store's digest exchange) and decides on the files it then holds, so that a VM replaced
// while it was cut off learns it is fenced (or removed) before it could serve again.
//
// Events: 'self-fence' (IsolationState: stop serving), 'rejoined' (IsolationState: serve again,
// after a self-fence), 'state' (every change of state name), 'majority' (boolean: majority now
// gained or lost, for the heartbeat's claims), 'warn' (string).
import { EventEmitter } from 'events';
import type { ChangeEvent, ClusterFiles, IsolationGate, IsolationVerdict } from '../records/cluster-api';
import { fromMember, type Member } from '../records/records';
import { Clock, realClock, TimerHandle } from './clock';
import { IsolationSettings, IsolationState, IsolationTracker } from './isolation';
import { pingManager, sourceAddress } from './probes';
import type { StarvationView } from './starvation';

export interface IsolationMonitorDeps {
  files: ClusterFiles;
  settings?: Partial<IsolationSettings>;
  clock?: Clock;
  starvation?: StarvationView;
  /** One ping of a member's manager (default: GET /p2p/ping on the store port, probes.ts). */
  ping?: (member: Member, timeoutMs: number) => Promise<boolean>;
  /**
   * Bring this VM's files up to date with its peers (the store's digest exchange) before a
   * self-fenced VM serves again. Absent: rejoin on the files as they are.
   */
  catchUp?: () => Promise<void>;
}

export class IsolationMonitor extends EventEmitter implements IsolationGate {
  readonly tracker: IsolationTracker;
  private readonly files: ClusterFiles;
  private readonly clock: Clock;
  private readonly starvation?: StarvationView;
  private readonly pingFn: (member: Member, timeoutMs: number) => Promise<boolean>;
  private readonly onChange = (ev: ChangeEvent) => {
    if (ev.file === 'group') this.readGroup();
  };
  private probeTimer?: TimerHandle;
  private tickTimer?: TimerHandle;
  private running = false;
  private last?: IsolationState;
  /** The stop assertion as last sent (self-fence true, rejoined false); undefined before any. */
  private stopped?: boolean;
  private deferring = false;
  private deferredOnce = false;
  private catchingUp = false;
  private readonly catchUp?: () => Promise<void>;

  constructor(deps: IsolationMonitorDeps) {
    super();
    this.files = deps.files;
    this.clock = deps.clock ?? realClock;
    this.starvation = deps.starvation;
    this.catchUp = deps.catchUp;
    this.tracker = new IsolationTracker(this.files.identity.hostname, this.clock.now(), deps.settings);
    const port = this.files.port;
    const from = sourceAddress(this.files.identity.address);
    this.pingFn = deps.ping ?? (async (m, t) => (await pingManager(m.address, port, t, m.hostname, from)).outcome === 'ok');
  }

  get settings(): IsolationSettings {
    return this.tracker.settings;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.files.on('change', this.onChange);
    this.readGroup();
    this.probeAll();
    this.tick();
  }

  stop(): void {
    this.running = false;
    this.files.removeListener('change', this.onChange);
    if (this.probeTimer !== undefined) this.clock.clearTimeout(this.probeTimer);
    if (this.tickTimer !== undefined) this.clock.clearTimeout(this.tickTimer);
    this.probeTimer = this.tickTimer = undefined;
  }

  /** The rule's state now (for the status line and the sidebar). */
  state(): IsolationState {
    this.followName();
    return this.last ?? this.tracker.evaluate(this.clock.now());
  }

  /** Is the service asserted stopped (a self-fence sent and not yet taken back)? */
  get stopAsserted(): boolean {
    return this.stopped === true;
  }

  /**
   * Majority now (rule 1), for the heartbeat's one-recovery claims; `withinMs` narrows the
   * freshness window (recovery-claim.ts rule 6: below re-examination - probe timeout).
   */
  majority(now = this.clock.now(), withinMs?: number): { ok: boolean; why: string } {
    this.followName();
    const st = this.tracker.evaluate(now, withinMs === undefined ? undefined : Math.min(withinMs, this.settings.freshMs));
    // A VM outside the group (an OD) or fenced decides nothing for the group.
    return { ok: st.state === 'majority', why: st.why };
  }

  /** IsolationGate (cluster-api.ts). */
  check(target: string, now: number): IsolationVerdict {
    try {
      this.followName();
      return this.tracker.gate(target, now);
    } catch (e) {
      return { ok: false, why: `isolation gate failed: ${(e as Error).message}`, retryAfterMs: this.settings.probeIntervalMs };
    }
  }

  /**
   * The store's name is read at each use, as the heartbeat does: a backup whose identity switched
   * (role call) is judged under its new name at once, also when the flow deploy that would restart
   * this monitor under it fails or has not happened yet.
   */
  private followName(): void {
    const now = this.files.identity.hostname;
    const before = this.tracker.self;
    if (now === before) return;
    this.tracker.rename(now);
    this.emit('warn', `isolation: this VM is now ${now} (was ${before}): the isolation rule applies to ${now}`);
  }

  private readGroup(): void {
    this.followName();
    try {
      this.tracker.setGroup(this.files.records('group').map(fromMember));
    } catch (e) {
      this.emit('warn', `isolation: cannot read the group file: ${(e as Error).message}`);
    }
    if (this.running) this.evaluate();
  }

  private probeAll(): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (this.probeTimer !== undefined) this.clock.clearTimeout(this.probeTimer);
    this.probeTimer = this.clock.setTimeout(() => void this.probeAll(), this.settings.probeIntervalMs);
    const timeout = this.settings.probeTimeoutMs;
    return Promise.all(
      this.tracker.peers().map(async (m) => {
        const startedAt = this.clock.now();
        let ok = false;
        try {
          ok = await this.pingFn(m, timeout);
        } catch {
          ok = false;
        }
        if (ok && this.running) this.tracker.heard(m.hostname, startedAt, this.clock.now());
      }),
    ).then(() => undefined);
  }

  private tick(): void {
    if (!this.running) return;
    this.evaluate();
    this.tickTimer = this.clock.setTimeout(() => this.tick(), this.settings.tickMs);
  }

  private evaluate(): void {
    if (!this.running || this.deferring) return;
    try {
      this.followName();
      const now = this.clock.now();
      const st = this.tracker.evaluate(now);
      const silentMs = now - (st.majorityAt ?? this.tracker.startedAt);
      // Unseen this long, this VM may have been replaced through the gate (T_iso + margin after the
      // others last saw it, less one ping interval): then it stops first and rejoins only after
      // catching up, even when its own stall (a freeze) is why it heard nobody.
      const replaceable = silentMs > this.settings.tIsoMs + this.settings.marginMs - this.settings.probeIntervalMs;
      if (
        st.state === 'isolated' &&
        this.stopped !== true &&
        !this.deferredOnce &&
        !replaceable &&
        this.starvation?.inconclusive(st.majorityAt ?? this.tracker.startedAt, now)
      ) {
        // Our own lateness may be why we heard nobody: ask everyone now and decide on that.
        this.deferring = true;
        this.deferredOnce = true;
        this.emit('warn', `isolation: no majority heard, but this VM was starved meanwhile; asking every member again before stopping`);
        void this.probeAll().finally(() => {
          this.deferring = false;
          this.evaluate();
        });
        return;
      }
      if (st.state === 'majority') this.deferredOnce = false;
      this.apply(st);
    } catch (e) {
      this.emit('warn', `isolation: ${(e as Error).message}`);
    }
  }

  private apply(st: IsolationState): void {
    const prev = this.last;
    this.last = st;
    if (prev?.state !== st.state) this.emit('state', st);
    const hadMajority = prev?.state === 'majority';
    if (hadMajority !== (st.state === 'majority')) this.emit('majority', st.state === 'majority');
    if (st.stop && this.stopped !== true) {
      this.stopped = true;
      this.emit('self-fence', st);
    } else if (this.stopped === true && st.state === 'majority' && !this.catchingUp) {
      // Only a majority takes a self-fence back (a VM that left the group stays stopped), and only
      // on files caught up with it (it may have been fenced or removed meanwhile).
      if (!this.catchUp) return this.rejoin(st);
      this.catchingUp = true;
      const done = (caughtUp: boolean) => {
        this.catchingUp = false;
        // Not caught up: still stopped; the next tick tries again.
        if (!this.running || !caughtUp) return;
        const now = this.tracker.evaluate(this.clock.now());
        this.last = now;
        if (now.state === 'majority' && this.stopped === true) this.rejoin(now);
        else this.evaluate();
      };
      let p: Promise<void>;
      try {
        p = this.catchUp();
      } catch (e) {
        p = Promise.reject(e);
      }
      p.then(
        () => done(true),
        (e: Error) => {
          this.emit('warn', `isolation: catching up before rejoining: ${e?.message ?? e}`);
          done(false);
        },
      );
    }
  }

  private rejoin(st: IsolationState): void {
    this.stopped = false;
    this.emit('rejoined', st);
  }
}
