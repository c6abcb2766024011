// The six plain-text management files, derived from the replica's state and written behind it.
// An acknowledged edit is durable in the journal and applied to the state (nodes, the API and
// anti-entropy read the state, never these files); the text files follow within TEXT_INTERVAL_MS.
// Rewrites are rate-limited by a token bucket (TEXT_BURST deep, one token per TEXT_INTERVAL_MS): a
// few changes close together are each written at once; in a stream, however many saves change a
// file within one interval, it is rewritten once, with the state as it is then. Each rewrite is
// atomic for readers (atomic-write.ts FileReplacer: a reader sees a whole old or a whole new file)
// and not fsynced: a start rewrites every file from the durable state, so a kill -9 or a power loss
// leaves at most the last interval's text behind until the restart, never the state. A rewrite
// that fails (a full disk) fails nothing else and is tried again RETRY_MS later or at the next
// change.
import { FileName, formatFile } from '../records/files';
import { operationRecords } from '../records/ring';
import { Replica } from './replica';
import { FileReplacer } from './atomic-write';
import * as path from 'path';

/**
 * In a stream of changes, at most one rewrite of a text file per this many milliseconds, and the
 * most the text lags the state (plus a turn of the event loop). Measured with back-to-back edits
 * on six VMs (bench:sem with STRACE=1, docs/performance.md, seventh pass): rewrites per diff on a
 * receiver 1 (a rewrite per save), 0.75 at 20 ms, 0.27 at 50 ms, 0.16 at 100 ms; 50 ms removes
 * three quarters of them and twice the lag buys little more. A change with a token left
 * (TEXT_BURST) is written at once, a turn after the save that made it durable (its
 * acknowledgement goes first): a lone edit's text is there a moment after its acknowledgement.
 */
export const TEXT_INTERVAL_MS = 50;
/**
 * Rewrites that may follow their changes at once before the interval applies: a few changes close
 * together (a recovery's status and commit, the other recovery's, the new member's key: each
 * changes the group or the problem file on every VM within tens of ms) are shown without waiting,
 * while a stream of edits is still rewritten at most once per interval in the long run (issue 16,
 * eleventh session: the interval alone held a recovery's commit back by up to 50 ms on the last VM
 * to show it; docs/recovery.md).
 */
export const TEXT_BURST = 4;
/** A failed rewrite is tried again this much later (or at the next change, if sooner). */
const RETRY_MS = 1000;
const CLOSED = 'closed before the text files were written (the next start rewrites them)';

/** The text files, rewritten from the replica: a few changes at once, a stream at most once per
 * TEXT_INTERVAL_MS. */
export class TextFiles {
  /** Files whose text is behind the state (changed, or their last rewrite failed). */
  private readonly pending = new Set<FileName>();
  private timer?: NodeJS.Timeout;
  /** When the timer fires (Date.now() units). */
  private timerAt = 0;
  /** Rewrites that may go at once (a token bucket: `burst` deep, one token per interval). */
  private tokens: number;
  private tokensAt = 0;
  /** The error of the last rewrite that failed, while its files are still pending. */
  private failure?: Error;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private closed = false;
  /** Replaces the files; frees their old versions in libuv's pool (atomic-write.ts). */
  private readonly replacer = new FileReplacer();
  /** Rewrites done (each file rewritten counts once): tests and benches. */
  rewrites = 0;

  constructor(
    readonly folder: string,
    private readonly replica: Replica,
    private readonly intervalMs = TEXT_INTERVAL_MS,
    private readonly burst = TEXT_BURST,
  ) {
    this.tokens = burst;
  }

  textPath(file: FileName): string {
    return path.join(this.folder, file);
  }

  /** The state of these files changed: rewrite them within the interval. */
  changed(files: Iterable<FileName>): void {
    for (const f of files) this.pending.add(f);
    if (this.pending.has('group')) this.pending.add('operation');
    if (this.pending.size) this.schedule((1 - this.refill()) * this.intervalMs);
  }

  /** Resolves once every change reported so far is in the text files; rejects with the error of a
   * rewrite that failed (its files are tried again). */
  written(): Promise<void> {
    if (!this.pending.size) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error(CLOSED));
    if (this.failure && !this.timerDue()) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Files whose text is behind the state. */
  get behind(): number {
    return this.pending.size;
  }

  /** Write what waits (a stop loses nothing), then close the held versions. Later changes are
   * not written (the next start rewrites every file). */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size) this.flush();
    this.closed = true;
    this.settle();
    await this.replacer.close();
  }

  /** Write every pending file now (also before the interval). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.tokens = Math.max(0, this.refill() - 1);
    this.failure = undefined;
    for (const f of Array.from(this.pending)) {
      const records = f === 'operation' ? operationRecords(this.replica.records('group')) : this.replica.records(f);
      try {
        this.replacer.replace(this.textPath(f), formatFile(f, records));
        this.pending.delete(f);
        this.rewrites++;
      } catch (e) {
        this.failure = e as Error; // left pending: tried again
      }
    }
    if (this.failure) this.schedule(RETRY_MS);
    this.settle();
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    const due = Date.now() + Math.max(0, delayMs);
    // A retry timer (long) gives way to a change's (short) one; otherwise one timer at a time.
    if (this.timer && this.timerAt <= due) return;
    clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = setTimeout(() => this.flush(), Math.max(0, delayMs));
    // A retry alone (a failing disk) keeps no process alive; a change's rewrite does (50 ms at most).
    if (delayMs > this.intervalMs) this.timer.unref();
  }

  /** The tokens now (one more per interval since the last look, at most the burst). */
  private refill(): number {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.tokensAt) / this.intervalMs);
    this.tokensAt = now;
    return this.tokens;
  }

  /** A change's rewrite is scheduled (not only a failure's retry). */
  private timerDue(): boolean {
    return !!this.timer && this.timerAt - Date.now() <= this.intervalMs;
  }

  private settle(): void {
    if (!this.waiters.length) return;
    if (this.pending.size && !this.failure && !this.closed) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (!this.pending.size) w.resolve();
      else w.reject(this.failure ?? new Error(CLOSED));
    }
  }
}
