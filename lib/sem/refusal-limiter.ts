// Rate-limited reporting of refused messages. Refusals cost an attacker nothing to cause, and each
// one used to become a SEM log line, a 'refused' event, a node warning and a flow message: a flood
// of bad requests rotated every useful line out of the log within seconds and loaded the runtime.
// So per sending address, the first `fullPerWindow` refusals of each window are reported in full
// (the first ones are what an operator needs to see why); the rest are only counted, and when the
// window ends one summary stands for them:
//   1234 refused from 10.0.0.9 in the last 10 s (1214 not logged one by one; last: message too large ...)
// A global allowance of full reports per window bounds an attacker that rotates addresses, and
// the number of addresses tracked is capped (the excess is counted under "other addresses").

export interface RefusalReport {
  from: string;
  reason: string;
  /** For a summary: how many refusals it stands for (including the ones reported in full). */
  count?: number;
}

export interface RefusalLimiterOptions {
  windowMs?: number;
  fullPerWindow?: number;
  fullPerWindowInAll?: number;
  maxAddresses?: number;
}

interface Slot {
  total: number;
  full: number;
  lastReason: string;
}

const OTHERS = 'other addresses';

export class RefusalLimiter {
  private readonly windowMs: number;
  private readonly fullPerWindow: number;
  private readonly fullInAll: number;
  private readonly maxAddresses: number;
  private slots = new Map<string, Slot>();
  private fullThisWindow = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly report: (r: RefusalReport) => void,
    o: RefusalLimiterOptions = {},
  ) {
    this.windowMs = o.windowMs ?? 10_000;
    this.fullPerWindow = o.fullPerWindow ?? 20;
    this.fullInAll = o.fullPerWindowInAll ?? 100;
    this.maxAddresses = o.maxAddresses ?? 256;
  }

  refused(from: string, reason: string): void {
    let key = from;
    if (!this.slots.has(key) && this.slots.size >= this.maxAddresses) key = OTHERS;
    let s = this.slots.get(key);
    if (!s) {
      s = { total: 0, full: 0, lastReason: '' };
      this.slots.set(key, s);
    }
    s.total += 1;
    s.lastReason = reason;
    if (key !== OTHERS && s.full < this.fullPerWindow && this.fullThisWindow < this.fullInAll) {
      s.full += 1;
      this.fullThisWindow += 1;
      this.report({ from, reason });
    }
    if (!this.timer) {
      this.timer = setTimeout(() => this.endWindow(), this.windowMs);
      this.timer.unref?.();
    }
  }

  /** End the window now: summaries for whoever was not reported in full, counters reset. */
  endWindow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const slots = this.slots;
    this.slots = new Map();
    this.fullThisWindow = 0;
    const secs = Math.round(this.windowMs / 1000);
    for (const [from, s] of slots) {
      const hidden = s.total - s.full;
      if (hidden <= 0) continue;
      this.report({
        from,
        count: s.total,
        reason: `${s.total} refused from ${from} in the last ${secs} s (${hidden} not logged one by one; last: ${s.lastReason})`,
      });
    }
  }

  /** Stop the window timer (summaries of the current window are reported). */
  close(): void {
    this.endWindow();
  }
}
