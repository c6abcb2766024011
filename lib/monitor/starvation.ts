// Is this monitor itself starved? A watcher whose event loop runs late, or whose CPU is saturated,
// sees its peers' answers late and its own timeouts fire early relative to the work it could do:
// its failed checks say nothing about the peer. So while starved, verdicts are suspended.
//
// Rule (defaults, all settable):
//  - A timer should fire every `periodMs` (100 ms). Lag = how late it fired. A tick later than
//    `lagThresholdMs` (250 ms = half the default probe timeout: past that, a 0.5 s probe may have
//    timed out because of us, not the peer) opens a starved window from the moment the tick was
//    due until `holdOffMs` (500 ms, the probe timeout: a check that started after that is
//    clean) after it fired.
//  - The loop is also starved *right now* when the next tick is already overdue by more than the
//    threshold (a check's result can run before the late tick in the same loop turn).
//  - CPU: the share of wall time this process's main thread spent runnable but waiting for a CPU
//    (Linux /proc/thread-self/schedstat, run-queue wait) is sampled every `cpuSampleMs` (500 ms);
//    above `cpuThreshold` (0.5) the sample's span is a starved window too (plus the hold-off).
//    This is this monitor's own CPU starvation, not the host's: a host whose CPUs are saturated
//    by others (system-wide pressure /proc/pressure/cpu near 100%) leaves an idle watcher that
//    still runs on time trustworthy, and suspending every verdict there would hide real failures
//    for as long as the load lasts. Set cpuThreshold to 0 to disable this.
//  - A failed check whose span [start, end] overlaps a starved window is inconclusive: it neither
//    starts a suspicion nor counts in a re-examination (see target-monitor.ts).
import * as fs from 'fs';
import { Clock, realClock, TimerHandle } from './clock';

export interface StarvationOptions {
  clock?: Clock;
  periodMs?: number;
  lagThresholdMs?: number;
  holdOffMs?: number;
  cpuSampleMs?: number;
  cpuThreshold?: number;
  /** Reads this thread's total run-queue wait in microseconds; undefined when not available. */
  readCpuStallUs?: () => number | undefined;
}

export interface StarvationView {
  /** true when a failed check spanning [fromMs, toMs] must not count. */
  inconclusive(fromMs: number, toMs: number): boolean;
}

interface Window {
  from: number;
  to: number;
  why: string;
}

/** This thread's run-queue wait so far (µs): the second field of schedstat, in ns. */
export function readRunQueueWaitUs(path = '/proc/thread-self/schedstat'): number | undefined {
  try {
    const f = fs.readFileSync(path, 'utf8').trim().split(/\s+/);
    const ns = Number(f[1]);
    return Number.isFinite(ns) ? ns / 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class StarvationMeter implements StarvationView {
  readonly periodMs: number;
  readonly lagThresholdMs: number;
  readonly holdOffMs: number;
  readonly cpuSampleMs: number;
  readonly cpuThreshold: number;
  private readonly clock: Clock;
  private readonly readStall: () => number | undefined;
  private windows: Window[] = [];
  private tickTimer: TimerHandle | undefined;
  private cpuTimer: TimerHandle | undefined;
  private expectedAt = 0;
  private lastCpu: { at: number; stallUs: number } | undefined;
  private running = false;
  /** Figures for the node's status and the benchmarks. */
  lastLagMs = 0;
  maxLagMs = 0;
  lastCpuStall = 0;
  starvedEvents = 0;

  constructor(opts: StarvationOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.periodMs = opts.periodMs ?? 100;
    this.lagThresholdMs = opts.lagThresholdMs ?? 250;
    this.holdOffMs = opts.holdOffMs ?? 500;
    this.cpuSampleMs = opts.cpuSampleMs ?? 500;
    this.cpuThreshold = opts.cpuThreshold ?? 0.5;
    this.readStall = opts.readCpuStallUs ?? (() => readRunQueueWaitUs());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.expectedAt = this.clock.now() + this.periodMs;
    this.tickTimer = this.clock.setTimeout(() => this.tick(), this.periodMs);
    if (this.cpuThreshold > 0) {
      const s = this.readStall();
      if (s !== undefined) {
        this.lastCpu = { at: this.clock.now(), stallUs: s };
        this.cpuTimer = this.clock.setTimeout(() => this.sampleCpu(), this.cpuSampleMs);
      }
    }
  }

  stop(): void {
    this.running = false;
    if (this.tickTimer !== undefined) this.clock.clearTimeout(this.tickTimer);
    if (this.cpuTimer !== undefined) this.clock.clearTimeout(this.cpuTimer);
    this.tickTimer = this.cpuTimer = undefined;
  }

  private tick(): void {
    if (!this.running) return;
    const now = this.clock.now();
    const lag = Math.max(0, now - this.expectedAt);
    this.lastLagMs = lag;
    if (lag > this.maxLagMs) this.maxLagMs = lag;
    if (lag > this.lagThresholdMs) this.mark(this.expectedAt, now, `event loop ${lag} ms late`);
    this.expectedAt = now + this.periodMs;
    this.tickTimer = this.clock.setTimeout(() => this.tick(), this.periodMs);
  }

  private sampleCpu(): void {
    if (!this.running) return;
    const now = this.clock.now();
    const s = this.readStall();
    if (s !== undefined && this.lastCpu && now > this.lastCpu.at) {
      const share = (s - this.lastCpu.stallUs) / 1000 / (now - this.lastCpu.at);
      this.lastCpuStall = share;
      if (share > this.cpuThreshold) this.mark(this.lastCpu.at, now, `waited for a CPU ${Math.round(share * 100)}% of the time`);
    }
    if (s !== undefined) this.lastCpu = { at: now, stallUs: s };
    this.cpuTimer = this.clock.setTimeout(() => this.sampleCpu(), this.cpuSampleMs);
  }

  private mark(from: number, to: number, why: string): void {
    this.starvedEvents++;
    this.windows.push({ from, to: to + this.holdOffMs, why });
    // Keep only windows that can still overlap a check: a check lasts at most a few seconds.
    const horizon = to - 60_000;
    while (this.windows.length > 0 && (this.windows[0].to < horizon || this.windows.length > 200)) this.windows.shift();
  }

  /** The starved window covering `at`, or the current overdue tick, if any. */
  starvedAt(at: number = this.clock.now()): string | undefined {
    if (this.running && this.clock.now() - this.expectedAt > this.lagThresholdMs) return 'event loop late now';
    for (let i = this.windows.length - 1; i >= 0; i--) {
      const w = this.windows[i];
      if (w.from <= at && at <= w.to) return w.why;
    }
    return undefined;
  }

  inconclusive(fromMs: number, toMs: number): boolean {
    if (this.running && this.clock.now() - this.expectedAt > this.lagThresholdMs) return true;
    return this.windows.some((w) => w.from <= toMs && fromMs <= w.to);
  }
}
