// Refuses a diff whose (origin, sequence number) was already accepted. Sequence numbers of one
// origin may arrive slightly out of order (one HTTP request per diff), so besides a floor (every
// number at or below it counts as seen) the numbers accepted above the floor are remembered, up to
// a window; past the window the floor rises. A number refused this way that was in fact never
// seen costs nothing: its content reaches the peer through anti-entropy.
// Numbers that follow the floor without a gap are folded into it at once, so the remembered set
// holds only the out-of-order numbers (none when diffs arrive in order): memory and the cost of an
// accept stay constant however many diffs an origin sends.
const WINDOW = 4096;

interface Slot {
  floor: number;
  recent: Set<number>;
}

export class ReplayGuard {
  private readonly slots = new Map<string, Slot>();

  /** Everything at or below `seq` from `origin` counts as seen (persisted state, a snapshot). */
  raise(origin: string, seq: number): void {
    const s = this.slot(origin);
    if (seq <= s.floor) return;
    s.floor = seq;
    for (const n of s.recent) if (n <= seq) s.recent.delete(n);
    this.fold(s);
  }

  /** Why this diff must be refused, or null when it is new. Does not record it. */
  check(origin: string, seq: number): string | null {
    const s = this.slots.get(origin);
    if (!s) return null;
    if (seq <= s.floor || s.recent.has(seq)) return `replayed diff: ${origin} #${seq} was already received`;
    return null;
  }

  accept(origin: string, seq: number): void {
    const s = this.slot(origin);
    if (seq <= s.floor) return;
    s.recent.add(seq);
    this.fold(s);
    if (s.recent.size > WINDOW) {
      let min = Infinity;
      for (const n of s.recent) if (n < min) min = n;
      this.raise(origin, min);
    }
  }

  /** Numbers remembered above the floors, all origins: what the guard retains (see the header). */
  retained(): { origins: number; window: number } {
    let window = 0;
    for (const s of this.slots.values()) window += s.recent.size;
    return { origins: this.slots.size, window };
  }

  /** Fold the numbers that continue the floor into it. */
  private fold(s: Slot): void {
    while (s.recent.delete(s.floor + 1)) s.floor += 1;
  }

  /** Forget what is known of an origin above `seq` (a poisoned floor repaired by the origin itself). */
  reset(origin: string, seq: number): void {
    this.slots.set(origin, { floor: seq, recent: new Set() });
  }

  /** Highest seq known from an origin (0 if none). */
  max(origin: string): number {
    const s = this.slots.get(origin);
    if (!s) return 0;
    let m = s.floor;
    for (const n of s.recent) if (n > m) m = n;
    return m;
  }

  private slot(origin: string): Slot {
    let s = this.slots.get(origin);
    if (!s) {
      s = { floor: 0, recent: new Set() };
      this.slots.set(origin, s);
    }
    return s;
  }
}

/**
 * Freshness of digest and snapshot requests: each carries a time and a random nonce; a request
 * outside the window is refused by its time (sem-protocol), one inside it by its nonce if seen
 * before. Nonces are kept for the window only, and at most `capacity` of them: past that, new
 * requests are refused until old nonces expire (only a holder of the secret can send that many).
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 65_536,
  ) {}

  /** Why the request must be refused, or null (and the nonce is then remembered). */
  admit(nonce: string, ts: number, now = Date.now()): string | null {
    this.expire(now);
    if (this.seen.has(nonce)) return `replayed request: nonce ${nonce.slice(0, 8)}... was already used`;
    if (this.seen.size >= this.capacity) return 'too many sync requests in the freshness window';
    this.seen.set(nonce, Math.max(ts, now) + this.windowMs);
    return null;
  }

  /** Until when a nonce is remembered (undefined: not, or no longer). */
  until(nonce: string): number | undefined {
    return this.seen.get(nonce);
  }

  /** Remember a nonce admitted before (by a previous run of this process: nonce-journal.ts). */
  restore(nonce: string, until: number, now = Date.now()): void {
    if (until > now && !this.seen.has(nonce) && this.seen.size < this.capacity) this.seen.set(nonce, until);
  }

  private expire(now: number): void {
    // Insertion order is close to expiry order; stop at the first one still valid.
    for (const [n, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(n);
    }
  }
}
