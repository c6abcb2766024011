// Re-admitting a fenced server: the operator's act that ends a fence (issue 12). A server marked
// `fenced` in the group file was replaced by a backup; it stays out (does not serve, does not
// rejoin, isolation.ts rule 4) until an operator sets its state back to `member` here, from the
// sidebar's button or the admin endpoint POST /p2p-ha/readmit (nodes/p2p-heartbeat.ts). The
// operator decides what the server serves afterwards: re-admitting it while its backup still
// serves the same function gives two copies, which is why nothing does this automatically.
import type { ClusterFiles, EditResult } from '../records/cluster-api';
import { NAME_RE } from '../records/files';
import { fromMember, toMember } from '../records/records';

export type ReadmitRefusal = 'bad-name' | 'not-in-group' | 'not-fenced';

export class ReadmitError extends Error {
  constructor(
    readonly kind: ReadmitRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Set `hostname`'s group state from fenced back to member; refuses anything else, changing nothing. */
export async function readmit(files: ClusterFiles, hostname: unknown): Promise<EditResult> {
  if (typeof hostname !== 'string' || !NAME_RE.test(hostname)) {
    throw new ReadmitError('bad-name', `hostname ${JSON.stringify(hostname)} is not a valid name`);
  }
  const before = files.get('group', hostname);
  if (!before) throw new ReadmitError('not-in-group', `${hostname} is not in the group file`);
  const m = fromMember(before);
  if (m.state !== 'fenced') throw new ReadmitError('not-fenced', `${hostname} is not fenced (state ${m.state})`);
  return files.edit({ file: 'group', op: 'Mod', before, record: toMember({ ...m, state: 'member' }) });
}
