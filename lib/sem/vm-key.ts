// This VM's own signing identity: an Ed25519 key pair (node:crypto, no dependency), created on the
// store's first start and kept in a file only the runtime's user can read (mode 0600, in a 0700
// folder of the files' folder), one per hostname: an OD that takes the role S2b gets a key of its
// own for S2b. Its public key is published in the VM's group record (the optional `publicKey`
// field); every message this VM sends is signed with it, and receivers check it against that record
// (docs/security.md). Beside it, made, rotated and removed with it, the VM's X25519 key (`X25519`,
// `<hostname>.x25519.pem`): answers to a peer are authenticated with a key agreed with that peer
// (./pair-key.ts), its public half published as the group record's `dhKey`.
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** A kind of key pair kept per hostname in the key folder: its type, its file's suffix, and the
 * DER prefix of its SubjectPublicKeyInfo (the raw 32-byte public key follows it). */
export interface KeyKind {
  type: 'ed25519' | 'x25519';
  suffix: string;
  spki: Buffer;
}
/** The signing key (every message, every entry proof). */
export const ED25519: KeyKind = { type: 'ed25519', suffix: '.pem', spki: Buffer.from('302a300506032b6570032100', 'hex') };
/** The key agreement key: answers authenticated by a pair key (./pair-key.ts). */
export const X25519: KeyKind = { type: 'x25519', suffix: '.x25519.pem', spki: Buffer.from('302a300506032b656e032100', 'hex') };

export class VmKeyError extends Error {}

export interface VmKey {
  hostname: string;
  privateKey: KeyObject;
  /** The raw public key, base64 (44 characters): what the group record carries. */
  publicKey: string;
  file: string;
}

export const keyFolder = (folder: string) => path.join(folder, '.keys');
const keyFile = (folder: string, hostname: string, kind: KeyKind) => path.join(keyFolder(folder), `${hostname}${kind.suffix}`);

export function publicKeyB64(key: KeyObject): string {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return der.subarray(ED25519.spki.length).toString('base64');
}

const cache = new Map<string, KeyObject | null>();

/** The KeyObject of a published public key, or null when it is not a valid key of that kind. */
export function publicKeyObject(b64: string, kind: KeyKind = ED25519): KeyObject | null {
  const id = `${kind.type}:${b64}`;
  if (cache.has(id)) return cache.get(id)!;
  let k: KeyObject | null = null;
  try {
    const raw = Buffer.from(b64, 'base64');
    if (raw.length === 32) k = createPublicKey({ key: Buffer.concat([kind.spki, raw]), format: 'der', type: 'spki' });
  } catch {
    k = null;
  }
  if (cache.size > 4096) cache.clear();
  cache.set(id, k);
  return k;
}

/** The key folder (0700) made for `file`; the temp name its key is written under first. */
function keyTemp(file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(file), 0o700);
  return `${file}.tmp-${process.pid}-${++tmpCounter}`;
}
let tmpCounter = 0;
const pem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }) as string;

function writeKey(file: string, key: KeyObject): void {
  const tmp = keyTemp(file);
  fs.writeFileSync(tmp, pem(key), { mode: 0o600 });
  const fd = fs.openSync(tmp, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/** writeKey off the event loop (libuv's pool): the same temp file, fsync and rename. */
async function writeKeyAsync(file: string, key: KeyObject): Promise<void> {
  const tmp = keyTemp(file);
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(pem(key));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
}

const generate = (kind: KeyKind): KeyObject =>
  // Two literal calls: the overloads of generateKeyPairSync are per type.
  kind.type === 'ed25519' ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('x25519').privateKey;

/** This VM's key of a kind (default: its Ed25519 signing key) for `hostname`, created (0600) when there is none. */
export function loadOrCreateVmKey(folder: string, hostname: string, kind: KeyKind = ED25519): VmKey {
  const file = keyFile(folder, hostname, kind);
  let privateKey: KeyObject;
  if (fs.existsSync(file)) {
    const mode = fs.statSync(file).mode & 0o777;
    if (mode & 0o077) fs.chmodSync(file, 0o600);
    try {
      privateKey = createPrivateKey(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new VmKeyError(`${file} is not a private key (${(e as Error).message}); move it away to make a new one (then rotate: docs/security.md)`);
    }
    if (privateKey.asymmetricKeyType !== kind.type) throw new VmKeyError(`${file} is not an ${kind.type === 'ed25519' ? 'Ed25519' : 'X25519'} key`);
  } else {
    privateKey = generate(kind);
    writeKey(file, privateKey);
  }
  return { hostname, privateKey, publicKey: publicKeyB64(privateKey), file };
}

/**
 * The key file of a kind for `hostname` made (0600, fsynced) when there is none, off the event
 * loop; loadOrCreateVmKey then only reads it. A role's switch (ReplicatedStore.switchIdentity) is
 * one synchronous step: made inside it, the new name's two keys cost two fsyncs on the event loop
 * of the OD, which meanwhile cannot answer the installation procedure's call or run its catch-up.
 */
export async function makeVmKeyFile(folder: string, hostname: string, kind: KeyKind = ED25519): Promise<void> {
  const file = keyFile(folder, hostname, kind);
  if (fs.existsSync(file)) return;
  await writeKeyAsync(file, generate(kind));
}

/** Rotation, step 1: a new key beside the current one (`<hostname><suffix>.next`); the current one stays in use. */
export function prepareRotation(folder: string, hostname: string, kind: KeyKind = ED25519): VmKey {
  const file = `${keyFile(folder, hostname, kind)}.next`;
  const privateKey = generate(kind);
  writeKey(file, privateKey);
  return { hostname, privateKey, publicKey: publicKeyB64(privateKey), file };
}

/** Rotation, step 2 (once the new public key is published): the new key replaces the current one. */
export function commitRotation(folder: string, hostname: string, kind: KeyKind = ED25519): VmKey {
  const file = keyFile(folder, hostname, kind);
  fs.renameSync(`${file}.next`, file);
  return loadOrCreateVmKey(folder, hostname, kind);
}

export const SIG_HEADER = 'x-p2p-sig';

/** The signature header's value: who signs, and the Ed25519 signature of label + body. */
export function signMessage(key: VmKey, label: string, body: string): string {
  const sig = sign(null, Buffer.from(`${label}\n${body}`), key.privateKey);
  return `${key.hostname} ${sig.toString('base64')}`;
}

/** Parse a signature header: the claimed signer and the signature, or null when malformed. */
export function parseSignature(header: unknown): { signer: string; sig: Buffer } | null {
  if (typeof header !== 'string' || header.length > 200) return null;
  const m = /^([A-Za-z0-9_][A-Za-z0-9._-]{0,62}) ([A-Za-z0-9+/]{86}==)$/.exec(header);
  return m ? { signer: m[1], sig: Buffer.from(m[2], 'base64') } : null;
}

export function verifyMessage(publicKey: string, label: string, body: string, sig: Buffer): boolean {
  const k = publicKeyObject(publicKey);
  if (!k) return false;
  try {
    return verify(null, Buffer.from(`${label}\n${body}`), k, sig);
  } catch {
    return false;
  }
}
