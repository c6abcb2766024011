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
// The six plain-text files are derived from the state: each save rewrites the ones it changed on
// this thread while the journal line is being written in the pool (the save waits for both), each
// replaced atomically (temp file + rename; the replaced version is freed in libuv's pool, not in
// the rename: atomic-write.ts FileReplacer) but not fsynced: they are rewritten at every start, so
// after a power loss they can never disagree with the state for long. A text file that cannot be
// written (a full disk) does not fail the save: the state is what is durable; it is tried again at
// the next save.
// Group commit: saves requested while one is under way are coalesced into the next one, so a burst
// of diffs (from several senders, or a batch) costs one journal line and one durable write.
import { createHash } from 'crypto';
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FILE_NAMES, FileName, formatFile } from '../records/files';
import { Replica, Snapshot } from './replica';
import { operationRecords } from '../records/ring';
import { FileReplacer, removeStaleTemps, syncDir, writeFileAtomic } from './atomic-write';
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
  /** Text files whose last rewrite failed (tried again at the next save). */
  private readonly textsDirty = new Set<FileName>();
  /** Replaces the text files; frees their old versions in libuv's pool (atomic-write.ts). */
  private readonly texts = new FileReplacer();
  ownSeq = 0;

  constructor(
    readonly folder: string,
    /** The VM's hostname, written in the checkpoint (changed by ReplicatedStore.switchIdentity). */
    public hostname: string,
    readonly replica: Replica,
  ) {}

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
  }

  /** Remove leftovers of a killed writer: before any save (a save's temp file looks the same). */
  async clean(): Promise<void> {
    await removeStaleTemps(this.folder);
  }

  /** Persist the state and the given text files; resolves when the state is durably on disk and
   * the text files show it. */
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

  /** Wait for pending saves and close the journal. */
  async close(): Promise<void> {
    await this.tail;
    await this.wal?.close();
    this.wal = undefined;
    await this.texts.close();
  }

  /** Files waiting for the next save (at most the six), and whether a save is queued. */
  retained(): { dirtyFiles: number; queued: boolean } {
    return { dirtyFiles: this.dirty.size, queued: this.queued !== null };
  }

  textPath(file: FileName): string {
    return path.join(this.folder, file);
  }

  private async writeNow(files: FileName[]): Promise<void> {
    // The journal line (or checkpoint) is handed to libuv's pool first; while it is being made
    // durable the text files are rewritten here (a few page-cache system calls: cheaper than pool
    // round trips), so they cost the acknowledgement no time.
    const durable = !this.wal || this.walLines >= CHECKPOINT_LINES ? this.checkpoint() : this.appendJournal();
    this.writeTexts(files);
    await durable;
  }

  /** Rewrite the given text files (and operation with group, and any that failed before) from the
   * state. A file that cannot be written (a full disk) does not fail the save: the state, not the
   * text, is what is durable; it is tried again at the next save. */
  private writeTexts(files: FileName[]): void {
    for (const f of files) this.textsDirty.add(f);
    if (this.textsDirty.has('group')) this.textsDirty.add('operation');
    for (const f of Array.from(this.textsDirty)) {
      const records = f === 'operation' ? operationRecords(this.replica.records('group')) : this.replica.records(f);
      try {
        this.texts.replace(this.textPath(f), formatFile(f, records));
        this.textsDirty.delete(f);
      } catch {
        /* left dirty: the next save tries again */
      }
    }
  }

  private async appendJournal(): Promise<void> {
    const delta: WalDelta = { ownSeq: this.ownSeq, clock: this.replica.clock, seqs: this.replica.seqs, entries: this.replica.takeChanged() };
    const json = JSON.stringify(packSnapshot(delta));
    // O_DSYNC: durable when the write returns.
    await this.wal!.write(`${lineHash(json)} ${json}\n`);
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
