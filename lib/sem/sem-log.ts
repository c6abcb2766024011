// The SEM log: every diff sent, received, applied or refused, one line each in the note's Diff.dat
// form with a timestamp, so the sync time can be read from the log as the note did:
//   2026-11-26T14:40:00.123Z applied group, Del, S2, 127.0.1.2, RS1, tcp:80 | origin=S1 seq=5 lamport=9
// Appends are buffered by a write stream (never on the path of an acknowledgement). The log is
// rotated once it passes `maxBytes` (one previous file kept as sem.log.1).
import * as fs from 'fs';
import * as path from 'path';

export type LogEvent = 'sent' | 'received' | 'applied' | 'refused' | 'synced' | 'repaired';

export class SemLog {
  private stream: fs.WriteStream | null = null;
  private size = 0;
  readonly file: string;

  constructor(
    folder: string,
    private readonly maxBytes = 10 * 1024 * 1024,
  ) {
    this.file = path.join(folder, 'sem.log');
  }

  write(event: LogEvent, line: string, meta: Record<string, string | number | undefined> = {}): void {
    const extras = Object.entries(meta)
      .filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => `${k}=${String(v).replace(/\s+/g, '_')}`)
      .join(' ');
    const text = `${new Date().toISOString()} ${event} ${line.replace(/[\r\n]+/g, ' ')}${extras ? ' | ' + extras : ''}\n`;
    if (!this.stream) this.open();
    this.stream!.write(text);
    this.size += text.length;
    if (this.size > this.maxBytes) this.rotate();
  }

  close(): Promise<void> {
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
