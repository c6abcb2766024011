// The SEM log: every diff sent, received, applied or refused, one line each in the note's Diff.dat
// form with a timestamp, so the sync time can be read from the log as the note did:
//   2026-11-26T14:40:00.123Z applied group, Del, S2, 127.0.1.2, RS1, tcp:80 | origin=S1 seq=5 lamport=9
// Appends are collected in memory and handed to a write stream at most every FLUSH_MS (or sooner
// once FLUSH_BYTES wait), so a stream of diffs costs one write to the thread pool per interval, not
// one or two per diff: each write is a round trip through libuv's pool (a futex wake of a pool
// thread, the write, an eventfd wake of the event loop), which on a VM sharing its cores costs more
// than the line itself (docs/performance.md, fourth pass). Each line keeps the time of its event;
// only its arrival in the file may lag by up to FLUSH_MS. close() writes what waits. The log is
// rotated once it passes `maxBytes` (one previous file kept as sem.log.1). When the disk is slower
// than the diffs (a burst on a busy disk), at most `maxBuffered` bytes wait in memory: further
// lines are dropped and counted, and one line says how many once the buffer has drained. The log
// is for reading sync times, never for recovery, so memory stays bounded instead.
import * as fs from 'fs';
import * as path from 'path';

const SPACE = /\s/;
const SPACES = /\s+/g;
const NEWLINE = /[\r\n]/;
const NEWLINES = /[\r\n]+/g;

/** Lines wait at most this long in memory before they are handed to the stream. */
export const FLUSH_MS = 100;
/** ...or until this many bytes wait. */
export const FLUSH_BYTES = 64 * 1024;

export type LogEvent = 'sent' | 'received' | 'applied' | 'refused' | 'synced' | 'repaired';

export class SemLog {
  private stream: fs.WriteStream | null = null;
  private size = 0;
  private dropped = 0;
  /** Lines waiting to be handed to the stream together. */
  private pending = '';
  private flushing: NodeJS.Timeout | null = null;
  private written = 0;
  readonly file: string;

  constructor(
    folder: string,
    private readonly maxBytes = 10 * 1024 * 1024,
    private readonly maxBuffered = 1024 * 1024,
  ) {
    this.file = path.join(folder, 'sem.log');
  }

  write(event: LogEvent, line: string, meta: Record<string, string | number | undefined> = {}): void {
    // Built by hand: two lines per diff on every VM, so no intermediate arrays and a regular
    // expression only where there is something to replace.
    let extras = '';
    for (const k in meta) {
      const v = meta[k];
      if (v === undefined || v === '') continue;
      const t = String(v);
      extras += `${extras ? ' ' : ' | '}${k}=${SPACE.test(t) ? t.replace(SPACES, '_') : t}`;
    }
    const flat = NEWLINE.test(line) ? line.replace(NEWLINES, ' ') : line;
    const text = `${new Date().toISOString()} ${event} ${flat}${extras}\n`;
    if (!this.stream) this.open();
    if (this.stream!.writableLength + this.pending.length > this.maxBuffered) {
      this.dropped += 1;
      return;
    }
    if (this.dropped) {
      this.pending += `${new Date().toISOString()} dropped ${this.dropped} log lines (the disk was slower than the diffs)\n`;
      this.dropped = 0;
    }
    this.pending += text;
    if (this.pending.length >= FLUSH_BYTES) this.flush();
    else this.flushing ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Hand the waiting lines to the stream in one write; rotate once the file passed maxBytes. */
  private flush(): void {
    if (this.flushing) clearTimeout(this.flushing);
    this.flushing = null;
    const text = this.pending;
    this.pending = '';
    if (!text || !this.stream) return;
    this.stream.write(text);
    this.written += 1;
    this.size += text.length;
    if (this.size > this.maxBytes) this.rotate();
  }

  /** Writes handed to the stream so far (each one trip through the thread pool). */
  get writes(): number {
    return this.written;
  }

  /** Bytes waiting for the disk, and lines dropped since the last write that went through. */
  retained(): { bufferedBytes: number; dropped: number } {
    return { bufferedBytes: (this.stream?.writableLength ?? 0) + this.pending.length, dropped: this.dropped };
  }

  close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.end(() => resolve()));
  }

  private open(): void {
    try {
      this.size = fs.statSync(this.file).size;
    } catch {
      this.size = 0;
    }
    this.stream = fs.createWriteStream(this.file, { flags: 'a', mode: 0o640 });
    this.stream.on('error', () => undefined); // a full disk must not take the runtime down
  }

  private rotate(): void {
    // Rename first: the old stream keeps writing to its open file (now sem.log.1) until it ends,
    // and the next write opens a fresh sem.log.
    const old = this.stream;
    this.stream = null;
    try {
      fs.renameSync(this.file, this.file + '.1');
    } catch {
      /* nothing to rotate */
    }
    old?.end();
    this.size = 0;
  }
}
