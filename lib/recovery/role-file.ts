// The role file: a VM's role made durable in its store's own folder before the role call answers,
// so that the flow deploy that persists the role in flows.json can run after the answer (off the
// recovery's path) without a crash or a failed deploy losing it (docs/recovery.md, "The role").
//
// It says which identity the VM's flow had when the role was taken (`from`) and which one it took
// (`to`). At a start, the store node compares it with its flow's identity:
//   - the flow still says `from`: the deploy did not happen (a crash between the answer and the
//     deploy, or a deploy that failed): start as `to`, say so, and deploy the flow again;
//   - the flow says `to`: the deploy happened: the file has done its work (removed);
//   - the flow says anything else: someone deployed another identity since: the flow wins (the
//     file is removed).
// Pure: the reading and writing are the node's (nodes/common/role-persist.ts).
import type { Identity } from '../records/cluster-api';
import { ADDRESS_RE, NAME_RE } from '../records/files';

export const ROLE_FILE = '.role.json';
/** A role file is a few hundred bytes; anything much larger is not one. */
export const ROLE_FILE_MAX_BYTES = 8 * 1024;

export interface RoleFile {
  /** The identity the flow gave the store when the role was taken. */
  from: Identity;
  /** The identity taken, with the seeds the flow is to get (where a restarted store catches up). */
  to: Identity & { seeds?: string };
  /** When it was taken (ISO time), for people. */
  at: string;
}

export class RoleFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoleFileError';
  }
}

const sameIdentity = (a: Identity, b: Identity) => a.hostname === b.hostname && a.address === b.address && a.realServer === b.realServer && a.services === b.services;

function identityOf(v: unknown, what: string): Identity {
  const o = v as Partial<Record<keyof Identity, unknown>> | null;
  if (!o || typeof o !== 'object') throw new RoleFileError(`${what} is not an identity`);
  const id = { hostname: String(o.hostname), address: String(o.address), realServer: String(o.realServer), services: typeof o.services === 'string' ? o.services : '-' };
  if (!NAME_RE.test(id.hostname) || !ADDRESS_RE.test(id.address) || !NAME_RE.test(id.realServer)) throw new RoleFileError(`${what} is not a valid identity: ${JSON.stringify(o)}`);
  return id;
}

/** The role file's text -> its content, or a RoleFileError saying what is wrong. */
export function parseRoleFile(text: string): RoleFile {
  let v: { from?: unknown; to?: { seeds?: unknown }; at?: unknown };
  try {
    v = JSON.parse(text) as typeof v;
  } catch (e) {
    throw new RoleFileError(`not JSON: ${(e as Error).message}`);
  }
  const from = identityOf(v?.from, 'from');
  const to = identityOf(v?.to, 'to');
  if (from.address !== to.address) throw new RoleFileError(`a role keeps the address: from ${from.address}, to ${to.address}`);
  const seeds = v.to?.seeds;
  return { from, to: typeof seeds === 'string' ? { ...to, seeds } : to, at: typeof v.at === 'string' ? v.at : '?' };
}

export function roleFileText(f: RoleFile): string {
  return `${JSON.stringify(f)}\n`;
}

/** What a store starts as, given its flow's identity and the role file (if any). */
export type StartChoice =
  | { use: 'flow'; identity: Identity; removeFile: boolean; why?: string }
  | { use: 'file'; identity: Identity; seeds?: string; why: string };

export function startIdentity(flow: Identity, file: RoleFile | undefined): StartChoice {
  if (!file) return { use: 'flow', identity: flow, removeFile: false };
  if (sameIdentity(flow, file.to)) return { use: 'flow', identity: flow, removeFile: true };
  if (sameIdentity(flow, file.from)) {
    const { seeds, ...to } = file.to;
    return {
      use: 'file',
      identity: to,
      ...(seeds !== undefined ? { seeds } : {}),
      why: `this VM took the role ${to.hostname} at ${file.at} (role call), but its flow still says ${flow.hostname}: the deploy that persists it did not happen`,
    };
  }
  return { use: 'flow', identity: flow, removeFile: true, why: `the role file (${file.from.hostname} -> ${file.to.hostname}, ${file.at}) no longer applies: the flow was deployed as ${flow.hostname} since` };
}

/**
 * The role file to write when a running store whose identity is `current` takes `to`: `from` is
 * the identity in the flow. Without a file the flow says what the store is; with one that says
 * the store is what it is now, the flow still says that file's `from` (its deploy is yet to come).
 */
export function nextRoleFile(current: Identity, existing: RoleFile | undefined, to: Identity & { seeds?: string }, at: string): RoleFile {
  const from = existing && sameIdentity(existing.to, current) ? existing.from : current;
  return { from, to, at };
}
