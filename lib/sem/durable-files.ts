// The management files on disk. The authoritative replica state (versions, tombstones, sequence
// numbers) is a checkpoint, `.sem-state.json`, plus a journal, `.sem-wal`: each save appends one
// line holding what changed since the previous one and makes it durable in the same write (one
// journal commit of the file system, where a new checkpoint needs two: the temp file and the
// folder after the rename). Every CHECKPOINT_LINES saves, and at every start, the journal is
// folded into a new checkpoint (temp file, fsync, rename, fsync of the folder) and emptied.
// A journal line carries a hash of itself: a line torn by a crash is recognised and dropped (it was
// never acknowledged), and the lines before it are intact.
// The journal is opened with O_DSYNC: appending a line and making it durable is one write(2) in
// libuv's pool (no separate fdatasync; the event loop never waits for the journal).
// What an acknowledgement promises: a save resolves once its journal line (or checkpoint) is
// durable; the state it saved is already applied in memory (every node, the API and anti-entropy
// see it at once). The six plain-text files are derived from that state and follow it within a
// bounded lag (text-files.ts: each file rewritten at most once per TEXT_INTERVAL_MS, coalescing
// the saves in between, atomically for readers, not fsynced). They are not on the save's path: a
// save never waits for them, and a text file that cannot be written (a full disk) fails nothing
// and is tried again. close() writes what waits, so a stop loses nothing in them; a start rewrites
// every one from the durable state, so a kill -9 leaves at most the last interval's text behind
// until the restart, never the state. A caller that needs the files on disk (the CLI, tests)
// waits with textsWritten().
// Group commit: saves requested while one is under way are coalesced into the next one, so a burst
// of diffs (from several senders, or a batch) costs one journal line and one durable write.
import { createHash } from 'crypto';
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FILE_NAMES, FileName } from '../records/files';
import { Replica, Snapshot } from './replica';
import { removeStaleTemps, syncDir, writeFileAtomic } from './atomic-write';
import { TextFiles } from './text-files';
import { attachProofs, packSnapshot } from './entry-proof';

export const STATE_FILE = '.sem-state.json';
export const WAL_FILE = '.sem-wal';
const CHECKPOINT_LINES = 1000;
const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fs.constants;
/** Append-only, each write durable before it returns (the journal's fdatasync, in the same call). */
const WAL_FLAGS = O_WRONLY | O_APPEND | O_CREAT | O_DSYNC;

interface StateFileV1 extends Snapshot {
  v: 1;
  hostname: string;
  /** Sequence number of this VM's last own diff: never reused, also across restarts. */
  ownSeq: number;
}

/** One journal line: the entries changed by one save, and the counters as they were then. */
interface WalDelta extends Snapshot {
  ownSeq: number;
}

export class StateFileError extends Error {}

const lineHash = (json: string) => createHash('sha256').update(json).digest('hex').slice(0, 16);

/** The valid lines of a journal's text, stopping at the first torn or corrupt one. */
export function readJournal(text: string): WalDelta[] {
  const out: WalDelta[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const sp = line.indexOf(' ');
    const json = line.slice(sp + 1);
    if (sp !== 16 || lineHash(json) !== line.slice(0, 16)) break;
    out.push(JSON.parse(json));
  }
  return out;
}

export class DurableFiles {
  private tail: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private readonly dirty = new Set<FileName>();
  private wal?: fsp.FileHandle;
  private walLines = 0;
  /** The text files, written behind the state (text-files.ts). */
  readonly texts: TextFiles;
  ownSeq = 0;

  constructor(
    readonly folder: string,
    /** The VM's hostname, written in the checkpoint (changed by ReplicatedStore.switchIdentity). */
    public hostname: string,
    readonly replica: Replica,
    /** Test hook: the text files' rewrite interval and burst (default TEXT_INTERVAL_MS, TEXT_BURST). */
    texts?: { intervalMs?: number; burst?: number },
  ) {
    this.texts = new TextFiles(folder, replica, texts?.intervalMs, texts?.burst);
  }

  /** Load checkpoint and journal synchronously (nodes read files right after construction). */
  loadSync(): void {
    fs.mkdirSync(this.folder, { recursive: true, mode: 0o750 });
    const file = path.join(this.folder, STATE_FILE);
    if (fs.existsSync(file)) {
      let state: StateFileV1;
      try {
        state = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        // Atomic writes make this impossible short of disk corruption or a hand edit: refuse to
        // guess, the operator must look (peers still have the data).
        throw new StateFileError(`${file} is not valid JSON (${(e as Error).message}); move it away to rejoin from peers`);
      }
      if (state.v !== 1 || !Array.isArray(state.entries)) throw new StateFileError(`${file}: unknown state format`);
      // Entries' origin proofs are packed apart (entry-proof.ts); a state without them loads as before.
      attachProofs(state, state.entries);
      this.replica.merge(state);
      this.ownSeq = Math.max(this.ownSeq, state.ownSeq ?? 0);
    }
    const wal = path.join(this.folder, WAL_FILE);
    if (fs.existsSync(wal)) {
      for (const delta of readJournal(fs.readFileSync(wal, 'utf8'))) {
        attachProofs(delta, delta.entries);
        this.replica.merge(delta);
        this.ownSeq = Math.max(this.ownSeq, delta.ownSeq ?? 0);
      }
    }
    this.ownSeq = Math.max(this.ownSeq, this.replica.seqs[this.hostname] ?? 0);
    this.replica.takeChanged();
  }

  /** Remove leftovers of a killed writer, fold the journal into a checkpoint, rewrite the text files. */
  async init(): Promise<void> {
    await this.clean();
    await this.save(FILE_NAMES);
    await this.texts.written().catch(() => undefined); // one that cannot be written is tried again
  }

  /** Remove leftovers of a killed writer: before any save (a save's temp file looks the same). */
  async clean(): Promise<void> {
    await removeStaleTemps(this.folder);
  }

  /** Persist the state; resolves when it is durably on disk. The given text files follow within
   * TEXT_INTERVAL_MS (textsWritten()). */
  save(files: Iterable<FileName>): Promise<void> {
    for (const f of files) this.dirty.add(f);
    if (this.queued) return this.queued;
    const run = this.tail.then(async () => {
      this.queued = null;
      const files = Array.from(this.dirty);
      this.dirty.clear();
      await this.writeNow(files);
    });
    this.queued = run;
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every save requested so far is durable and shown by the text files; rejects
   * with the error of a text rewrite that failed (tried again) or of a failed save. */
  async textsWritten(): Promise<void> {
    await (this.queued ?? this.tail);
    await this.texts.written();
  }

  /** Wait for pending saves, close the journal, write the text files that wait. */
  async close(): Promise<void> {
    await this.tail;
    await this.wal?.close();
    this.wal = undefined;
    await this.texts.close();
  }

  /** Files waiting for the next save (at most the six), whether a save is queued, and text files
   * behind the state (at most the six). */
  retained(): { dirtyFiles: number; queued: boolean; textsBehind: number } {
    return { dirtyFiles: this.dirty.size, queued: this.queued !== null, textsBehind: this.texts.behind };
  }

  textPath(file: FileName): string {
    return this.texts.textPath(file);
  }

  private async writeNow(files: FileName[]): Promise<void> {
    try {
      await (!this.wal || this.walLines >= CHECKPOINT_LINES ? this.checkpoint() : this.appendJournal());
    } finally {
      // After the save resolved (the acknowledgement goes first); also when it failed: the state
      // in memory changed all the same.
      this.texts.changed(files);
    }
  }

  private async appendJournal(): Promise<void> {
    const delta: WalDelta = { ownSeq: this.ownSeq, clock: this.replica.clock, seqs: this.replica.seqs, entries: this.replica.takeChanged() };
    const json = JSON.stringify(packSnapshot(delta));
    // O_DSYNC: durable when the write returns. The line's bytes are written straight into one
    // buffer, not first joined into a string that the write then flattens and copies again (a
    // line per save on every VM; issue 16, allocation per edit). Every byte of it is written here
    // (the hash, a space, the JSON, a newline; its length is exactly theirs), so nothing of the
    // pool slice it comes from can be left in it.
    const hash = lineHash(json);
    const jsonBytes = Buffer.byteLength(json);
    const line = Buffer.allocUnsafe(hash.length + 1 + jsonBytes + 1);
    line.write(hash, 0, 'latin1');
    line[hash.length] = 0x20;
    line.write(json, hash.length + 1, jsonBytes, 'utf8');
    line[line.length - 1] = 0x0a;
    await this.wal!.write(line);
    this.walLines++;
  }

  private async checkpoint(): Promise<void> {
    const snap = this.replica.snapshot();
    this.replica.takeChanged();
    const state: StateFileV1 = { v: 1, hostname: this.hostname, ownSeq: this.ownSeq, ...snap };
    await writeFileAtomic(path.join(this.folder, STATE_FILE), JSON.stringify(packSnapshot(state)));
    await syncDir(this.folder);
    // Only once the checkpoint is durable may the journal it contains be emptied.
    this.wal ??= await fsp.open(path.join(this.folder, WAL_FILE), WAL_FLAGS, 0o640);
    await this.wal.truncate(0);
    await this.wal.sync();
    this.walLines = 0;
  }
}
