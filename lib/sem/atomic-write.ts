// Durable, atomic file replacement: write a temp file in the same folder, fsync it, rename it over
// the target, fsync the folder. A kill at any instant leaves either the old or the new file.
// FileReplacer does the same without fsync for files derived from a durable state (the text
// files), and frees each replaced version in libuv's pool rather than inside the rename.
import { promises as fsp, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, close } from 'fs';
import * as path from 'path';

let counter = 0;
const tmpName = (file: string) =>
  path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${++counter}`);

/**
 * Replace `file` with `data` atomically. With `sync` (the default) the data is on disk before the
 * rename; without it the rename is still atomic against a killed process, only not against a power
 * loss (used for files that are regenerated from a synced one at start).
 */
export async function writeFileAtomic(file: string, data: string, sync = true): Promise<void> {
  const tmp = tmpName(file);
  const fh = await fsp.open(tmp, 'w', 0o640);
  try {
    await fh.writeFile(data);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
}

/** fsync a folder, so the renames in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function writeFileAtomicSync(file: string, data: string): void {
  const tmp = tmpName(file);
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Old versions waiting for the pool's close before they are closed on the calling thread. */
const MAX_WAITING = 32;

/**
 * Replaces files atomically against a killed process (not a power loss: no fsync), on the calling
 * thread: open a temp file, write, rename it over the target. For small files regenerated from a
 * synced state: these page-cache system calls cost less than round trips through libuv's pool,
 * which on a busy machine each wait for a free pool thread and the next turn of the event loop.
 *
 * What it does not do on the calling thread is free the replaced version. A rename over a file
 * drops the old inode's last reference, and the kernel then truncates it and frees its blocks
 * inside the rename; on an ext4 mounted with `discard` and without a journal (this project's test
 * machines) that includes a synchronous TRIM of the freed blocks, a device round trip: measured
 * ~0.5 ms p50 and 8-17 ms p99 of a receiver's event loop per diff (docs/performance.md, fifth pass). So
 * the descriptor each replacement wrote with stays open until the file is replaced again, and
 * the rename then drops only a name: the old version is freed when its descriptor is closed, in
 * libuv's pool, one at a time. Readers see exactly what they saw before: the old version or the new
 * one, whole.
 */
export class FileReplacer {
  /** The open descriptor of each file's current version (the temp file it was written as). */
  private readonly held = new Map<string, number>();
  /** The close running in the pool, and the old versions waiting for it. */
  private inFlight?: Promise<void>;
  private readonly waiting: number[] = [];

  /** Replace `file` with `data`; throws (nothing replaced) if it cannot be written. */
  replace(file: string, data: string): void {
    let prev = this.held.get(file);
    // The first replacement in this process: hold the version on disk so that the rename does
    // not free it on this thread either.
    if (prev === undefined) prev = openIfExists(file);
    const tmp = tmpName(file);
    let fd: number;
    try {
      fd = openSync(tmp, 'w', 0o640);
    } catch (e) {
      this.hold(file, prev);
      throw e;
    }
    try {
      writeSync(fd, data);
      renameSync(tmp, file);
    } catch (e) {
      // Removed now: the text files retry a failed rewrite every second (text-files.ts), which
      // must not leave a temp file behind each time (a killed writer's are removed at start).
      closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {
        /* gone already, or the folder is: the start's cleanup takes what is left */
      }
      this.hold(file, prev);
      throw e;
    }
    this.held.set(file, fd);
    if (prev !== undefined) this.closeInPool(prev);
  }

  /** Old versions not yet closed: the one being closed in the pool and those waiting (tests). */
  get pendingCloses(): number {
    return this.waiting.length + (this.inFlight ? 1 : 0);
  }

  /** Close every held descriptor and wait for all closes. */
  async close(): Promise<void> {
    for (const fd of this.held.values()) this.closeInPool(fd);
    this.held.clear();
    while (this.inFlight) await this.inFlight;
  }

  private hold(file: string, fd: number | undefined): void {
    if (fd !== undefined) this.held.set(file, fd);
  }

  /** One close at a time in the pool (a discard can take milliseconds, and the journal's durable
   * write must find a free pool thread); a backlog beyond MAX_WAITING is closed here instead, so
   * the old versions held never grow without bound on a disk slower than the rewrites. */
  private closeInPool(fd: number): void {
    if (this.inFlight) {
      if (this.waiting.length >= MAX_WAITING) closeSync(this.waiting.shift()!);
      this.waiting.push(fd);
      return;
    }
    this.inFlight = new Promise<void>((resolve) => close(fd, () => resolve())).then(() => {
      this.inFlight = undefined;
      const next = this.waiting.shift();
      if (next !== undefined) this.closeInPool(next);
    });
  }
}

/** A read-only descriptor of `file`, or undefined if there is none (or it cannot be opened). */
function openIfExists(file: string): number | undefined {
  try {
    return openSync(file, 'r');
  } catch {
    return undefined;
  }
}

/** Remove temp files a killed writer left behind. */
export async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (/^\..+\.tmp-\d+-\d+$/.test(name)) await fsp.rm(path.join(dir, name), { force: true });
  }
}
