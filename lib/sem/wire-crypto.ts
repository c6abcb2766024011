// Confidentiality of SEM traffic: every request and answer body is sealed with AES-256-GCM under a
// key derived from the cluster secret by HKDF-SHA256, so a LAN observer learns neither the files nor
// the procedures. The route (a request) or the answered request's MAC (an answer) is the additional
// authenticated data, so a sealed body cannot be moved to another route or answer. On the wire a
// sealed body is `base64(iv) . base64(ciphertext + tag)`; the MAC and the VM signature are computed
// as before (the MAC over the sealed bytes, the signature over the plain body).
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'crypto';

export const ENC_HEADER = 'x-p2p-enc';
const ALG = 'aes-256-gcm';

export class SealError extends Error {}

/** The body key of a cluster secret. */
export function bodyKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('p2p-ha sem'), Buffer.from('body encryption v1'), 32));
}

export function seal(key: Buffer, aad: string, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv(ALG, key, iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
  return `${iv.toString('base64')}.${ct.toString('base64')}`;
}

export function open(key: Buffer, aad: string, sealed: string): string {
  const dot = sealed.indexOf('.');
  if (dot !== 16) throw new SealError('not a sealed body');
  const iv = Buffer.from(sealed.slice(0, dot), 'base64');
  const all = Buffer.from(sealed.slice(dot + 1), 'base64');
  if (iv.length !== 12 || all.length < 16) throw new SealError('not a sealed body');
  const d = createDecipheriv(ALG, key, iv);
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(all.subarray(all.length - 16));
  try {
    // GCM's final() checks the tag and adds no bytes: the plain text is update's output (no
    // concatenated copy per answer; issue 16, the sender's allocation per edit).
    const plain = d.update(all.subarray(0, all.length - 16));
    const rest = d.final();
    return (rest.length ? Buffer.concat([plain, rest]) : plain).toString('utf8');
  } catch {
    throw new SealError('sealed body does not open with the cluster key');
  }
}
