// Pair keys: a key that only two VMs can compute, agreed from their published X25519 keys
// (node:crypto diffieHellman, then HKDF-SHA256), used to authenticate the answers one gives the
// other with an HMAC-SHA256 (a few microseconds) instead of an Ed25519 signature (~116 us to
// check, five or more per edit on the sender: issue 14 with 16).
//
// Why a pair key is enough for an answer: an answer matters only to the VM that asked. The key of
// (S1, S3) is known to S1 and S3 alone (each needs its own X25519 private key), so an insider
// holding the cluster secret and its own VM's keys (S2) cannot make an answer S1 takes as S3's.
// S1 itself could forge S3's answers to S1, which fools nobody but S1. The key is bound to both
// hostnames (ordered) and both public keys, and to its purpose (a label), in HKDF's info: another
// VM, another published key (a rotation) or another use gives another key (docs/security.md,
// "Answers by pair key").
import { createHash, createHmac, diffieHellman, hkdfSync, timingSafeEqual } from 'crypto';
import { publicKeyObject, VmKey, X25519 } from './vm-key';

/** What names a pair: a hostname and the X25519 public key (base64) its group record publishes. */
export interface PairParty {
  hostname: string;
  dhKey: string;
}

export class PairKeyError extends Error {}

/** The purpose of the key: SEM answers (another use must take another label). */
const KEY_LABEL = 'p2p-ha sem answer pair key v1';

/** HKDF's info: the label, then both parties ordered by hostname, each with its public key. */
function pairInfo(a: PairParty, b: PairParty): string {
  const [x, y] = a.hostname < b.hostname ? [a, b] : [b, a];
  return JSON.stringify([KEY_LABEL, x.hostname, x.dhKey, y.hostname, y.dhKey]);
}

/**
 * A short public name of the pair (both hostnames and keys): the requester sends it, and the VM
 * asked answers by pair key only when it names the same keys as its own group file (else a
 * signature: neither side ever computes a key the other does not).
 */
export function pairId(a: PairParty, b: PairParty): string {
  return createHash('sha256').update(`id\n${pairInfo(a, b)}`).digest('base64').slice(0, 22);
}

/** The key of `mine` (this VM's X25519 key, for hostname `me`) with `peer`; the same on both sides. */
export function derivePairKey(mine: VmKey, me: string, peer: PairParty): Buffer {
  const theirs = publicKeyObject(peer.dhKey, X25519);
  if (!theirs) throw new PairKeyError(`${peer.hostname} publishes no valid X25519 key`);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: mine.privateKey, publicKey: theirs });
  } catch (e) {
    throw new PairKeyError(`no key agreement with ${peer.hostname}: ${(e as Error).message}`);
  }
  // A low-order public key makes the shared secret zero: known to anyone.
  if (shared.every((b) => b === 0)) throw new PairKeyError(`${peer.hostname} publishes a low-order X25519 key`);
  return Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), pairInfo({ hostname: me, dhKey: mine.publicKey }, peer), 32));
}

interface Cached {
  mine: string;
  theirs: string;
  /** Null when no key can be agreed (a bad published key): not tried again until a key changes. */
  key: Buffer | null;
  id: string;
}

/**
 * Pair keys cached per (peer, the peer's public key, this VM's public key): a key is derived once
 * (an X25519 agreement and HKDF, ~100 us) and used for every answer between the two. `forget`
 * drops a peer's when its group record changes; a changed key on either side never matches an old
 * entry anyway. At most one entry per peer.
 */
export class PairKeys {
  private readonly cache = new Map<string, Cached>();

  /** The key and the pair's id of `mine` (hostname `me`) with `peer`, or null when no key can be agreed. */
  get(mine: VmKey, me: string, peer: PairParty): { key: Buffer; id: string } | null {
    let c = this.cache.get(peer.hostname);
    if (!c || c.mine !== mine.publicKey || c.theirs !== peer.dhKey) {
      c = { mine: mine.publicKey, theirs: peer.dhKey, key: null, id: pairId({ hostname: me, dhKey: mine.publicKey }, peer) };
      try {
        c.key = derivePairKey(mine, me, peer);
      } catch (e) {
        if (!(e instanceof PairKeyError)) throw e;
      }
      this.cache.set(peer.hostname, c);
    }
    // The entry itself (read only by the callers): no new object per answer.
    return c.key ? (c as { key: Buffer; id: string }) : null;
  }

  /** The peer's record changed (or went): its key is derived again at its next use. */
  forget(hostname: string): void {
    this.cache.delete(hostname);
  }

  clear(): void {
    this.cache.clear();
  }

  get size(): number {
    return this.cache.size;
  }
}

/** Request header: who asks (the VM that reads the answer: for a relayed diff the relay, not the
 * origin) and the id of the pair it expects the answer under. Not covered by the request's MAC:
 * a changed header only makes the answer fail its check or come signed (docs/security.md). */
export const PAIR_HEADER = 'x-p2p-pair';

const NAME = '[A-Za-z0-9_][A-Za-z0-9._-]{0,62}';
const REQUEST_RE = new RegExp(`^(${NAME}) ([A-Za-z0-9+/]{22})$`);
const TAG_RE = new RegExp(`^(${NAME}) p=([A-Za-z0-9+/]{43}=)$`);

export function pairRequest(requester: string, id: string): string {
  return `${requester} ${id}`;
}

export function parsePairRequest(header: unknown): { requester: string; id: string } | null {
  if (typeof header !== 'string' || header.length > 100) return null;
  const m = REQUEST_RE.exec(header);
  return m ? { requester: m[1], id: m[2] } : null;
}

/** The HMAC of an answer: who asked, who answers, the answer's label (the request's MAC and the
 * status: ties it to that one request) and its plain body. */
function answerMac(key: Buffer, requester: string, signer: string, label: string, body: string): Buffer {
  return createHmac('sha256', key).update(`p2p-answer\n${requester}\n${signer}\n${label}\n`).update(body).digest();
}

/** The `x-p2p-sig` value of an answer authenticated by pair key: `<signer> p=<HMAC, base64>`. */
export function pairTag(key: Buffer, requester: string, signer: string, label: string, body: string): string {
  return `${signer} p=${answerMac(key, requester, signer, label, body).toString('base64')}`;
}

/** A pair-key tag (`<signer> p=<mac>`), or null when the header is something else (a signature). */
export function parsePairTag(header: unknown): { signer: string; mac: Buffer } | null {
  if (typeof header !== 'string' || header.length > 120) return null;
  const m = TAG_RE.exec(header);
  return m ? { signer: m[1], mac: Buffer.from(m[2], 'base64') } : null;
}

export function verifyPairTag(key: Buffer, requester: string, signer: string, label: string, body: string, mac: Buffer): boolean {
  const want = answerMac(key, requester, signer, label, body);
  return mac.length === want.length && timingSafeEqual(mac, want);
}
