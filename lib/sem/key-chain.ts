// A chain of key rotations (docs/security.md, rule 10 and "Rotate a VM's key"), so that a VM that
// was away through several rotations of another can follow them. A rotation is a change of the
// VM's own group record signed by the key it replaces: a receiver that holds the key before the
// last one cannot check it. So at each rotation the VM also signs, with the old key, an
// endorsement of the new one (label KEY_LABEL over [hostname, old key, new key]), and keeps the last
// MAX_KEY_CHAIN endorsements in `.keys/<hostname>.chain` (newest last). Every diff it sends of its
// own group record carries them in a `keys` field of the diff body (covered by its signature, and
// kept in the entry's proof, so anti-entropy ships them with the record; a release without chains
// ignores the field). A receiver that holds the record with key A follows the chain from the first
// endorsement A signed, each next one signed by the key the previous one endorsed, to the key that
// signed the diff; an endorsement it cannot place before that start is older than what it knows.
// Bounded: a VM away through more than MAX_KEY_CHAIN rotations does not follow (its operator moves
// its files away, as before). An endorsement grants nothing a rotation does not: only the holder
// of the old key can make it.
import * as fs from 'fs';
import * as path from 'path';
import { keyFolder, signMessage, parseSignature, verifyMessage, type VmKey } from './vm-key';

/** Rotations a receiver can follow at most (endorsements a diff carries). */
export const MAX_KEY_CHAIN = 8;
/** The label an endorsement's signature covers (no route: it cannot be replayed as a message). */
export const KEY_LABEL = 'p2p-key';

/** [key replaced, new key, signature header of the replaced key over KEY_LABEL and [hostname, replaced, new]]. */
export type KeyEndorsement = [previousKey: string, publicKey: string, signature: string];

const chainFile = (folder: string, hostname: string) => path.join(keyFolder(folder), `${hostname}.chain`);
const endorsedBytes = (hostname: string, previousKey: string, publicKey: string) => JSON.stringify([hostname, previousKey, publicKey]);

/** The old key's endorsement of the key that replaces it. */
export function endorseKey(old: VmKey, publicKey: string): KeyEndorsement {
  return [old.publicKey, publicKey, signMessage(old, KEY_LABEL, endorsedBytes(old.hostname, old.publicKey, publicKey))];
}

const isEndorsement = (x: unknown): x is KeyEndorsement =>
  Array.isArray(x) && x.length === 3 && x.every((f, i) => typeof f === 'string' && f.length <= (i === 2 ? 200 : 64));

/** The endorsements kept for `hostname` (none when the file is missing or unreadable). */
export function loadKeyChain(folder: string, hostname: string): KeyEndorsement[] {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(chainFile(folder, hostname), 'utf8'));
    return Array.isArray(v) ? v.filter(isEndorsement).slice(-MAX_KEY_CHAIN) : [];
  } catch {
    return [];
  }
}

/** `chain` with `next` appended, bounded, written (atomically, 0600) and returned. */
export function extendKeyChain(folder: string, hostname: string, chain: KeyEndorsement[], next: KeyEndorsement): KeyEndorsement[] {
  const out = [...chain, next].slice(-MAX_KEY_CHAIN);
  const file = chainFile(folder, hostname);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(out), { mode: 0o600 });
  fs.renameSync(tmp, file);
  return out;
}

/** A diff body (plain JSON, as encoded) with the chain added; the body unchanged when it is empty. */
export function withKeyChain(body: string, chain: KeyEndorsement[]): string {
  if (!chain.length) return body;
  return JSON.stringify({ ...(JSON.parse(body) as object), keys: chain.slice(-MAX_KEY_CHAIN) });
}

/** The endorsements a diff body carries (at most MAX_KEY_CHAIN, the newest; malformed ones dropped). */
export function keyChainOf(body: string): KeyEndorsement[] {
  try {
    const v = (JSON.parse(body) as { keys?: unknown }).keys;
    return Array.isArray(v) ? v.slice(-MAX_KEY_CHAIN).filter(isEndorsement) : [];
  } catch {
    return [];
  }
}

/**
 * The key `hostname`'s chain leads to from one of the `trusted` keys (the ones the receiver holds
 * for it), or undefined when no endorsement starts from them or a link after the start is not
 * signed by the key the previous one endorsed.
 */
export function followKeyChain(hostname: string, chain: KeyEndorsement[], trusted: string[]): string | undefined {
  let current: string | undefined;
  for (const [previousKey, publicKey, signature] of chain.slice(-MAX_KEY_CHAIN)) {
    if (current === undefined && !trusted.includes(previousKey)) continue; // older than what is held
    if (current !== undefined && previousKey !== current) return undefined;
    const sig = parseSignature(signature);
    if (!sig || sig.signer !== hostname || !verifyMessage(previousKey, KEY_LABEL, endorsedBytes(hostname, previousKey, publicKey), sig.sig)) return undefined;
    current = publicKey;
  }
  return current;
}

/** Every key a chain names (replaced and new): the keys its VM held, as its own signed diff lists them. */
export const chainKeys = (chain: KeyEndorsement[]): string[] => Array.from(new Set(chain.flatMap(([p, k]) => [p, k])));
