// Admin calls from one VM to another VM's runtime (a manager giving a resumed OD the role S2b, a
// replicator giving a fresh clone its OD identity), without any bearer token: the caller seals the
// call under the cluster key (wire-crypto), MACs it with the cluster secret and signs it with its
// own VM key (vm-key); the receiver checks, in this order, the MAC, the sealing, the freshness
// (time within LIMITS.syncFreshMs), that the call is addressed to it (the target's address, and
// its hostname when the caller names it, are inside the signed bytes, so a captured call cannot be
// replayed at another VM), that the signer is a member of the group (not fenced) whose group
// record publishes the key the call is signed with, and last that its nonce is new. Nothing secret
// travels: an insider who edits available-od so that a recovery calls its address receives a
// sealed, signed, single-use call, not a credential (docs/security.md, "The admin path").
import type { AdminCallTarget, SealedAdminCall } from '../records/cluster-api';
import { ADDRESS_RE, NAME_RE, RecordFields } from '../records/files';
import { fromMember } from '../records/records';
import { bodyKey, ENC_HEADER, open, seal } from './wire-crypto';
import { LIMITS, MAC_HEADER, freshness, mac, verifyMac } from './sem-protocol';
import { parseSignature, SIG_HEADER, signMessage, verifyMessage, type VmKey } from './vm-key';
import type { NonceCache } from './replay-guard';

/** Cap of an admin call's body (a store identity: a few hundred bytes). */
export const ADMIN_CALL_BYTES = 16 * 1024;

export interface AdminCallEnvelope {
  v: 1;
  type: 'admin';
  /** The route the call is for (also the MAC's and signature's label). */
  path: string;
  from: string;
  to: AdminCallTarget;
  ts: number;
  nonce: string;
  payload: unknown;
}

/** A refused call: the HTTP status to answer and why (logged by the receiver, told to the caller). */
export class AdminCallRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The signer's key is not known here: the receiver may catch up its files and check again. */
    readonly unknownKey = false,
  ) {
    super(message);
    this.name = 'AdminCallRefused';
  }
}

const label = (path: string) => `POST ${path}`;

/** The caller's side: the envelope sealed, MAC'd and signed. */
export function sealAdminCall(secret: string, key: VmKey, path: string, to: AdminCallTarget, payload: unknown, now = Date.now()): SealedAdminCall {
  if (!ADDRESS_RE.test(to.address)) throw new Error(`admin call target ${JSON.stringify(to.address)} is not an address`);
  if (to.hostname !== undefined && !NAME_RE.test(to.hostname)) throw new Error(`admin call target ${JSON.stringify(to.hostname)} is not a hostname`);
  const envelope: AdminCallEnvelope = { v: 1, type: 'admin', path, from: key.hostname, to, ...freshness(now), payload };
  const plain = JSON.stringify(envelope);
  const body = seal(bodyKeyOf(secret), label(path), plain);
  return {
    body,
    headers: {
      'content-type': 'application/octet-stream',
      [MAC_HEADER]: mac(secret, label(path), body),
      [SIG_HEADER]: signMessage(key, label(path), plain),
      [ENC_HEADER]: '1',
    },
  };
}

/** What the receiver knows to check a call against. */
export interface AdminCallReceiver {
  /** The cluster secret, and the previous one while a rotation window is open. */
  secrets: string[];
  /** This VM's hostname and the addresses it may be called at (its store's, the socket's). */
  hostname: string;
  addresses: string[];
  group(hostname: string): RecordFields | undefined;
  nonces: NonceCache;
  now?: number;
}

/** The receiver's side: the verified envelope, or AdminCallRefused saying why. */
export function openAdminCall(path: string, headers: Record<string, unknown>, body: string, r: AdminCallReceiver): AdminCallEnvelope {
  const now = r.now ?? Date.now();
  const secret = r.secrets.find((s) => verifyMac(s, label(path), body, headers[MAC_HEADER]));
  if (secret === undefined) throw new AdminCallRefused('forged or unauthenticated admin call: HMAC does not match the cluster secret', 401);
  if (headers[ENC_HEADER] !== '1') throw new AdminCallRefused('refused: a plain-text admin call', 400);
  let plain: string;
  try {
    plain = open(bodyKeyOf(secret), label(path), body);
  } catch (e) {
    throw new AdminCallRefused(`refused: ${(e as Error).message}`, 400);
  }
  let o: AdminCallEnvelope;
  try {
    o = JSON.parse(plain) as AdminCallEnvelope;
  } catch {
    throw new AdminCallRefused('malformed admin call: not JSON', 400);
  }
  if (!o || typeof o !== 'object' || o.v !== 1 || o.type !== 'admin' || o.path !== path) throw new AdminCallRefused('malformed admin call', 400);
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new AdminCallRefused('malformed admin call: bad from', 400);
  if (typeof o.nonce !== 'string' || !/^[0-9a-f]{32}$/.test(o.nonce)) throw new AdminCallRefused('malformed admin call: missing nonce', 400);
  if (typeof o.ts !== 'number' || Math.abs(now - o.ts) > LIMITS.syncFreshMs) {
    throw new AdminCallRefused('stale admin call: its time is too far from this VM\'s clock (replay?)', 409);
  }
  const to = o.to as Partial<AdminCallTarget> | undefined;
  if (!to || typeof to.address !== 'string' || !r.addresses.includes(to.address)) {
    throw new AdminCallRefused(`admin call addressed to ${JSON.stringify(to?.address)}, not to this VM (${r.addresses.join(' ')})`, 421);
  }
  if (to.hostname !== undefined && to.hostname !== r.hostname) {
    throw new AdminCallRefused(`admin call addressed to ${JSON.stringify(to.hostname)}, this VM is ${r.hostname}`, 421);
  }
  const sig = parseSignature(headers[SIG_HEADER]);
  if (!sig) throw new AdminCallRefused(`refused: an admin call from ${o.from} without a VM signature`, 401);
  if (sig.signer !== o.from) throw new AdminCallRefused(`refused: signed by ${sig.signer} but claims to come from ${o.from}`, 401);
  const rec = r.group(o.from);
  if (!rec) throw new AdminCallRefused(`refused: ${o.from} is not in this VM's group file`, 403, true);
  const m = fromMember(rec);
  if (m.state === 'fenced') throw new AdminCallRefused(`refused: ${o.from} is fenced`, 403);
  if (m.publicKey === '-') throw new AdminCallRefused(`refused: ${o.from} publishes no key in this VM's group file`, 403, true);
  if (!verifyMessage(m.publicKey, label(path), plain, sig.sig)) {
    throw new AdminCallRefused(`forged admin call: not signed by the key ${o.from} publishes in the group file`, 401, true);
  }
  const replay = r.nonces.admit(o.nonce, o.ts, now);
  if (replay) throw new AdminCallRefused(replay, 409);
  return o;
}

// The body key (HKDF of the secret) is derived once per secret.
let lastKey: { secret: string; key: Buffer } | undefined;
function bodyKeyOf(secret: string): Buffer {
  if (lastKey?.secret !== secret) lastKey = { secret, key: bodyKey(secret) };
  return lastKey.key;
}
