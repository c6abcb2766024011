// SEM messages on the wire. Every request and response body is JSON, authenticated with an
// HMAC-SHA256 over the whole body and what it answers to, keyed by the cluster secret. A message
// that fails any check is refused with a reason and nothing of it is applied.
import { createHmac, randomBytes, timingSafeEqual } from 'crypto';
import { NAME_RE, FILE_NAMES, RecordFields, SCHEMAS, truncate } from '../records/files';
import { normalizeEdit } from '../records/diff-line';
import type { Diff, Snapshot, SnapshotEntry } from './replica';

export const PROTOCOL_VERSION = 1;
export const MAC_HEADER = 'x-p2p-mac';
export const LIMITS = {
  /** A diff is one record or two: a few hundred bytes. */
  diffBytes: 16 * 1024,
  /** Digest and snapshot messages carry whole files (a few KB for hundreds of VMs). */
  syncBytes: 8 * 1024 * 1024,
  /** Diffs whose timestamp is further than this from our clock are refused as stale replays. */
  maxSkewMs: 10 * 60 * 1000,
  /** Digest and snapshot requests older or newer than this are refused; within it their nonce
   * must be new (docs/security.md, freshness). */
  syncFreshMs: 2 * 60 * 1000,
  /** A diff whose sequence number is this far above the highest known from its origin is refused
   * (a forged 1e9 would make the origin's later diffs look like replays). */
  maxSeqJump: 1_000_000,
};

/**
 * The Lamport ceiling: no Lamport time from the wire may exceed the receiver's wall clock in ms
 * plus the allowed skew. Lamport clocks start at 0 and grow by one per edit (or to the highest
 * seen), so a legitimate one is far below (1.7e12 edits); a forged MAX_SAFE_INTEGER, which would
 * stop the clock for ever, is refused, and a forged value under the ceiling costs nothing lasting
 * (later edits simply tick above it).
 */
export const lamportCeiling = (now = Date.now()) => now + LIMITS.maxSkewMs;

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    /** Extra fields for the refusal's answer (e.g. that a replayed diff's content is already here). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function mac(secret: string, label: string, body: string): string {
  return createHmac('sha256', secret).update(label).update('\n').update(body).digest('hex');
}

export function verifyMac(secret: string, label: string, body: string, given: unknown): boolean {
  if (typeof given !== 'string' || !/^[0-9a-f]{64}$/.test(given)) return false;
  const want = Buffer.from(mac(secret, label, body), 'hex');
  return timingSafeEqual(want, Buffer.from(given, 'hex'));
}

/** The label a response's MAC covers: binds it to the request it answers. */
export const responseLabel = (requestMac: string, status: number) => `response ${status} ${requestMac}`;

export interface DiffMessage {
  v: number;
  type: 'diff';
  origin: string;
  seq: number;
  lamport: number;
  ts: number;
  file: string;
  op: string;
  record: RecordFields;
  before?: RecordFields;
}

export function encodeDiff(d: Diff, now = Date.now()): string {
  const m: DiffMessage = {
    v: PROTOCOL_VERSION,
    type: 'diff',
    origin: d.origin,
    seq: d.seq,
    lamport: d.lamport,
    ts: now,
    file: d.file,
    op: d.op,
    record: d.record,
  };
  if (d.before) m.before = d.before;
  return JSON.stringify(m);
}

const isPosInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

export function parseJson(body: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(body);
  } catch {
    throw new ProtocolError('malformed message: not JSON');
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new ProtocolError('malformed message: not an object');
  return o as Record<string, unknown>;
}

/** Decode and validate a diff message (its MAC already checked). */
export function decodeDiff(body: string, now = Date.now()): Diff {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'diff') throw new ProtocolError(`unsupported message (v=${String(o.v)}, type=${String(o.type)})`);
  if (typeof o.origin !== 'string' || !NAME_RE.test(o.origin)) throw new ProtocolError('malformed diff: bad origin');
  if (!isPosInt(o.seq) || !isPosInt(o.lamport)) throw new ProtocolError('malformed diff: seq and lamport must be positive integers');
  if (o.lamport > lamportCeiling(now)) throw new ProtocolError(`refused diff: Lamport time ${o.lamport} is beyond the bound (wall clock + ${LIMITS.maxSkewMs / 60000} min)`, 422);
  if (typeof o.ts !== 'number' || Math.abs(now - o.ts) > LIMITS.maxSkewMs) {
    throw new ProtocolError('stale diff: its timestamp is too far from this peer\'s clock (replay?)', 409);
  }
  if (typeof o.file !== 'string' || !(FILE_NAMES as readonly string[]).includes(o.file)) {
    throw new ProtocolError(`unknown file ${JSON.stringify(truncate(String(o.file)))}`, 422);
  }
  if (SCHEMAS[o.file as keyof typeof SCHEMAS].derived) throw new ProtocolError(`${o.file} is derived and never replicated`, 422);
  let edit;
  try {
    edit = normalizeEdit({ file: o.file, op: o.op, record: o.record, before: o.before });
  } catch (e) {
    throw new ProtocolError(`invalid record: ${(e as Error).message}`, 422);
  }
  if (!Array.isArray(o.record)) throw new ProtocolError('malformed diff: record must be a list');
  return { ...edit, origin: o.origin, seq: o.seq, lamport: o.lamport };
}

/** What makes a sync request fresh: its time and a random nonce, refused when seen again. */
export interface Freshness {
  ts: number;
  nonce: string;
}

export interface DigestMessage extends Freshness {
  v: number;
  type: 'digest';
  from: string;
  digest: string;
}

export interface SnapshotMessage extends Freshness {
  v: number;
  type: 'snapshot';
  from: string;
  snapshot: Snapshot;
}

export const freshness = (now = Date.now()): Freshness => ({ ts: now, nonce: randomBytes(16).toString('hex') });

export function checkFreshness(o: Record<string, unknown>, what: string, now: number): Freshness {
  if (typeof o.nonce !== 'string' || !/^[0-9a-f]{32}$/.test(o.nonce)) throw new ProtocolError(`malformed ${what}: missing nonce`);
  if (typeof o.ts !== 'number' || Math.abs(now - o.ts) > LIMITS.syncFreshMs) {
    throw new ProtocolError(`stale ${what}: its timestamp is too far from this peer's clock (replay?)`, 409);
  }
  return { ts: o.ts, nonce: o.nonce };
}

export function decodeDigest(body: string, now = Date.now()): DigestMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'digest') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed digest: bad from');
  if (typeof o.digest !== 'string' || !/^[0-9a-f]{64}$/.test(o.digest)) throw new ProtocolError('malformed digest');
  const f = checkFreshness(o, 'digest request', now);
  return { v: PROTOCOL_VERSION, type: 'digest', from: o.from, digest: o.digest, ...f };
}

/** Validate a snapshot fully before any of it is merged. */
export function validateSnapshot(s: unknown, now = Date.now()): Snapshot {
  if (!s || typeof s !== 'object') throw new ProtocolError('malformed snapshot');
  const o = s as Record<string, unknown>;
  const ceiling = lamportCeiling(now);
  if (!Number.isSafeInteger(o.clock) || (o.clock as number) < 0) throw new ProtocolError('malformed snapshot: clock');
  if ((o.clock as number) > ceiling) throw new ProtocolError(`refused snapshot: Lamport clock ${String(o.clock)} is beyond the bound`, 422);
  if (!o.seqs || typeof o.seqs !== 'object' || Array.isArray(o.seqs)) throw new ProtocolError('malformed snapshot: seqs');
  const seqs: Record<string, number> = {};
  for (const [k, v] of Object.entries(o.seqs as Record<string, unknown>)) {
    if (!NAME_RE.test(k) || !Number.isSafeInteger(v) || (v as number) < 0) throw new ProtocolError('malformed snapshot: seqs');
    seqs[k] = v as number;
  }
  if (!Array.isArray(o.entries)) throw new ProtocolError('malformed snapshot: entries');
  const entries: SnapshotEntry[] = o.entries.map((e: unknown) => {
    if (!Array.isArray(e) || e.length !== 5) throw new ProtocolError('malformed snapshot entry');
    const [file, key, value, lamport, origin] = e;
    if (!(FILE_NAMES as readonly string[]).includes(file) || SCHEMAS[file as keyof typeof SCHEMAS].derived) {
      throw new ProtocolError(`snapshot entry of unknown file ${JSON.stringify(truncate(String(file)))}`);
    }
    if (typeof key !== 'string' || !isPosInt(lamport) || typeof origin !== 'string' || !NAME_RE.test(origin)) {
      throw new ProtocolError('malformed snapshot entry');
    }
    if (lamport > ceiling) throw new ProtocolError(`refused snapshot: entry ${file} ${truncate(key)} has Lamport time ${lamport}, beyond the bound`, 422);
    if (value !== null) {
      try {
        const edit = normalizeEdit({ file, op: 'Add', record: value });
        if (SCHEMAS[edit.file].key(edit.record) !== key) throw new Error('key does not match record');
      } catch (err) {
        throw new ProtocolError(`invalid snapshot record: ${(err as Error).message}`);
      }
    }
    return [file, key, value, lamport, origin] as SnapshotEntry;
  });
  return { clock: o.clock as number, seqs, entries };
}

export function decodeSnapshot(body: string, now = Date.now()): SnapshotMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'snapshot') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed snapshot: bad from');
  const f = checkFreshness(o, 'snapshot request', now);
  return { v: PROTOCOL_VERSION, type: 'snapshot', from: o.from, snapshot: validateSnapshot(o.snapshot, now), ...f };
}
