// Where a role taken by a role call stands until the flow deploy has persisted it in flows.json:
// the role file in the store's folder (lib/recovery/role-file.ts says what it holds and how a
// start reads it), written durably (temp file, fsync, rename, fsync of the folder) before the role
// call answers; and, per store node, why the flow is not saved yet (the deploy failed, or a start
// took the role from the file), shown in the store's status until a deploy persists it.
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import { syncDir, writeFileAtomic } from '../../lib/sem/atomic-write';
import { parseRoleFile, ROLE_FILE, ROLE_FILE_MAX_BYTES, roleFileText, RoleFileError, type RoleFile } from '../../lib/recovery/role-file';

export const roleFilePath = (folder: string) => path.join(folder, ROLE_FILE);

/** The role file of the store in `folder`, undefined when there is none; RoleFileError when it is unreadable. */
export function readRoleFile(folder: string): RoleFile | undefined {
  const file = roleFilePath(folder);
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new RoleFileError(`${file} is not a file`);
    if (st.size > ROLE_FILE_MAX_BYTES) throw new RoleFileError(`${file} has ${st.size} bytes (at most ${ROLE_FILE_MAX_BYTES})`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (e instanceof RoleFileError) throw e;
    throw new RoleFileError(`${file}: ${(e as Error).message}`);
  }
  try {
    return parseRoleFile(text);
  } catch (e) {
    throw new RoleFileError(`${file}: ${(e as Error).message}`);
  }
}

/** Write the role file durably: once this resolves, a crash or power loss keeps it. */
export async function writeRoleFile(folder: string, f: RoleFile): Promise<void> {
  await writeFileAtomic(roleFilePath(folder), roleFileText(f));
  await syncDir(folder);
}

/** Remove the role file (its role is in the flow now); false with the reason when it could not be. */
export function removeRoleFile(folder: string): true | string {
  try {
    fs.rmSync(roleFilePath(folder), { force: true });
    return true;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Store node id -> why its role is not saved in the flow yet. */
const unsaved = new Map<string, string>();
const changes = new EventEmitter();
changes.setMaxListeners(0);

export function setUnsaved(nodeId: string, why: string | undefined): void {
  if (why === undefined) {
    if (!unsaved.delete(nodeId)) return;
  } else unsaved.set(nodeId, why);
  changes.emit('change', nodeId);
}

export function unsavedWhy(nodeId: string): string | undefined {
  return unsaved.get(nodeId);
}

/** Follow changes of `nodeId`'s unsaved state; returns the function that stops following. */
export function onUnsavedChange(nodeId: string, fn: () => void): () => void {
  const l = (id: string) => {
    if (id === nodeId) fn();
  };
  changes.on('change', l);
  return () => changes.off('change', l);
}
