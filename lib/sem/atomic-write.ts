// Durable, atomic file replacement: write a temp file in the same folder, fsync it, rename it over
// the target, fsync the folder. A kill at any instant leaves either the old or the new file.
import { promises as fsp, openSync, writeSync, fsyncSync, closeSync, renameSync } from 'fs';
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

/**
 * Replace `file` atomically against a killed process (not a power loss: no fsync), in one go on the
 * calling thread. For small files regenerated from a synced state: four page-cache system calls
 * cost less than four round trips through libuv's thread pool, which on a busy machine each wait
 * for a free pool thread and the next turn of the event loop.
 */
export function replaceFileSync(file: string, data: string): void {
  const tmp = tmpName(file);
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Remove temp files a killed writer left behind. */
export async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (/^\..+\.tmp-\d+-\d+$/.test(name)) await fsp.rm(path.join(dir, name), { force: true });
  }
}
