// Refuses a diff whose (origin, sequence number) was already accepted. Sequence numbers of one
// origin may arrive slightly out of order (one HTTP request per diff), so besides a floor (every
// number at or below it counts as seen) the numbers accepted above the floor are remembered, up to
// a window; past the window the floor rises. A number refused this way that was in fact never
// seen costs nothing: its content reaches the peer through anti-entropy.
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
    s.recent.add(seq);
    if (s.recent.size > WINDOW) this.raise(origin, Math.min(...s.recent));
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
