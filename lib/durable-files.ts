// The management files on disk. The authoritative replica state (versions, tombstones, sequence
// numbers) lives in `.sem-state.json`; the six plain-text files beside it are written from it so an
// operator can `cat` them. Every file is replaced atomically (temp file + rename). Durability costs
// two fsyncs per save, the fewest that make a rename survive a power loss: the state file's data,
// then the folder. The text files are not fsynced on their own: they are rewritten from the state
// at every start, so after a power loss they can never disagree with it for long. Saves requested
// while one is under way are coalesced into the next one, so a burst of diffs costs few fsyncs.
import * as fs from 'fs';
import * as path from 'path';
import { FILE_NAMES, FileName, formatFile } from './files';
import { Replica, Snapshot } from './replica';
import { operationRecords } from './ring';
import { removeStaleTemps, syncDir, writeFileAtomic } from './atomic-write';

export const STATE_FILE = '.sem-state.json';

interface StateFileV1 extends Snapshot {
  v: 1;
  hostname: string;
  /** Sequence number of this VM's last own diff: never reused, also across restarts. */
  ownSeq: number;
}

export class StateFileError extends Error {}

export class DurableFiles {
  private tail: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private readonly dirty = new Set<FileName>();
  ownSeq = 0;

  constructor(
    readonly folder: string,
    private readonly hostname: string,
    readonly replica: Replica,
  ) {}

  /** Load the state synchronously (nodes read files right after construction). */
  loadSync(): void {
    fs.mkdirSync(this.folder, { recursive: true, mode: 0o750 });
    const file = path.join(this.folder, STATE_FILE);
    if (!fs.existsSync(file)) return;
    let state: StateFileV1;
    try {
      state = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      // Atomic writes make this impossible short of disk corruption or a hand edit: refuse to
      // guess, the operator must look (the previous good copy is gone, peers still have the data).
      throw new StateFileError(`${file} is not valid JSON (${(e as Error).message}); move it away to rejoin from peers`);
    }
    if (state.v !== 1 || !Array.isArray(state.entries)) throw new StateFileError(`${file}: unknown state format`);
    this.replica.merge(state);
    this.ownSeq = Math.max(state.ownSeq ?? 0, state.seqs?.[this.hostname] ?? 0);
  }

  /** Remove leftovers of a killed writer and make the text files match the state. */
  async init(): Promise<void> {
    await removeStaleTemps(this.folder);
    await this.save(FILE_NAMES);
  }

  /** Persist the state and the given text files; resolves when they are durably on disk. */
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

  textPath(file: FileName): string {
    return path.join(this.folder, file);
  }

  private async writeNow(files: FileName[]): Promise<void> {
    const snap = this.replica.snapshot();
    const state: StateFileV1 = { v: 1, hostname: this.hostname, ownSeq: this.ownSeq, ...snap };
    await writeFileAtomic(path.join(this.folder, STATE_FILE), JSON.stringify(state));
    const texts = new Set(files);
    if (texts.has('group')) texts.add('operation');
    for (const f of texts) {
      const records = f === 'operation' ? operationRecords(this.replica.records('group')) : this.replica.records(f);
      await writeFileAtomic(this.textPath(f), formatFile(f, records), false);
    }
    await syncDir(this.folder);
  }
}
