// SEM messages on the wire. Every request and response body is JSON, authenticated with an
// HMAC-SHA256 over the whole body and what it answers to, keyed by the cluster secret. A message
// that fails any check is refused with a reason and nothing of it is applied.
import { createHmac, randomBytes, timingSafeEqual } from 'crypto';
import { NAME_RE, FILE_NAMES, RecordFields, SCHEMAS, recordKey, truncate } from '../records/files';
import type { Edit } from '../records/cluster-api';
import { normalizeEdit } from '../records/diff-line';
import { mapList } from '../records/lists';
import type { Diff, Snapshot, SnapshotEntry } from './replica';
import { attachProofs } from './entry-proof';
import { withFields } from '../records/objects';

/** The `v` of every message body: the format of each message, unchanged since the first release. */
export const PROTOCOL_VERSION = 1;
export const MAC_HEADER = 'x-p2p-mac';

/**
 * Wire protocol versions (issue 15, rolling upgrades). What a store speaks, announced in
 * WIRE_VERSION_HEADER on every request and every answer it makes; a peer that announces nothing
 * is version 1 (a release before the header existed):
 *
 *   1  diff, digest and snapshot routes: each round a digest exchange with every peer (whole
 *      snapshots on a difference), every diff posted directly to every peer.
 *   2  adds summary and pull (anti-entropy with one partner a round, only what differs) and
 *      relay (a fan-out tree past 24 peers); keeps answering every route of version 1.
 *   3  answers by pair key (./pair-key.ts, docs/security.md "Answers by pair key"): a group record
 *      may carry a 7th field, the VM's X25519 key (`dhKey`), which a release before version 3
 *      refuses (a record of 7 fields is invalid there); requests may carry PAIR_HEADER (the
 *      requester and the pair it expects), which a release before ignores; an answer's
 *      `x-p2p-sig` may then be a pair-key tag (`<hostname> p=<HMAC>`) instead of a signature.
 *      Routes and bodies are those of version 2.
 *
 * A version-2 store speaks version 1 to a peer whose last authenticated message announced 1 (or
 * that answered a summary with "no route"): a full digest exchange instead of a summary, direct
 * posts, and it never makes such a peer a relay. The header is not covered by the MAC: forging it
 * can only make two version-2 peers fall back to version 1, which is as safe, only costlier.
 *
 * Version 3's rules (pair keys): a VM publishes its X25519 key in its group record only once every
 * serving member of its group file (at least one) was heard announcing version 3 or later (before,
 * its record would be refused by the others); once published it stays (a VM rolled back below 3 after that
 * refuses the records that carry one: roll back only before every VM publishes, or take its files
 * from a peer again). A VM asked answers by pair key only when the request names the pair its own
 * group file gives (both published keys), else it signs with Ed25519 as version 2 does. The
 * requester accepts from a member either a tag under the pair key it computes for that member or
 * that member's Ed25519 signature, at every version: a signature is as strong against an insider
 * as a pair key, so taking it is no downgrade (only slower), and a VM whose newest key has not
 * reached the peer yet still gets its answers. Never the cluster MAC alone from a member whose
 * record publishes a key. Forging the version header or PAIR_HEADER can only turn pair-key answers
 * into signed ones, or make an answer fail its check (as dropping it would).
 * docs/operations.md, "Upgrading", gives the order.
 *
 * Diff streams (./sem-stream.ts) are not a wire version: a store of version 2 or 3 of this release accepts
 * the upgrade `GET /p2p/stream`; an older one (or one set to version 1) answers 404 and is posted
 * to as before. Frames carry the same bodies and x-p2p-* values as POSTs, this header included.
 */
export const WIRE_VERSION = 3;
export const PREVIOUS_WIRE_VERSION = 2;
export const WIRE_VERSION_HEADER = 'x-p2p-proto';
export type WireVersion = 1 | 2 | 3;

/** The version a header announces: absent or unreadable is 1; a later version than ours is ours
 * (it promises to answer our routes). */
export function announcedVersion(header: unknown): WireVersion {
  const n = typeof header === 'string' ? Number(header) : NaN;
  if (!Number.isInteger(n) || n < 2) return 1;
  return n >= WIRE_VERSION ? WIRE_VERSION : (n as WireVersion);
}
export const LIMITS = {
  /** A diff is one record or two, a batch a few more: a few hundred bytes to a few KB. */
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

/**
 * A diff as it travels: one record, or a batch (`more`: the records after the first). A batch is
 * the edits one VM makes together (e.g. the commit of a recovery): one message, one sequence
 * number, one signature, applied by each receiver all or nothing. Its records have the Lamport
 * times `lamport`, `lamport + 1`, ... in order and touch distinct keys. On the wire a batch lists
 * every record in `edits` and has no top-level `file`, so a receiver that does not know batches
 * refuses it whole (unknown file) rather than applying its first record alone.
 */
export interface WireDiff extends Diff {
  more?: Diff[];
}

/** Records in one batch at most (a recovery commits three to five). */
export const MAX_BATCH = 32;

/** Every record of a diff or batch, in order. */
export const diffsOf = (d: WireDiff): Diff[] => [d, ...(d.more ?? [])];

/** The keys an edit writes (a Mod that changes the key writes the old one too). */
function keysOf(e: Edit): string[] {
  const key = `${e.file}\0${recordKey(e.file, e.record)}`;
  return e.op === 'Mod' && e.before ? [key, `${e.file}\0${recordKey(e.file, e.before)}`] : [key];
}

/** Why these edits cannot go as one batch, or null: 1..MAX_BATCH records, each key written once. */
export function batchProblem(edits: Edit[]): string | null {
  if (edits.length === 0) return 'a batch holds at least one edit';
  if (edits.length > MAX_BATCH) return `a batch holds at most ${MAX_BATCH} edits, not ${edits.length}`;
  const seen = new Set<string>();
  for (const e of edits) {
    for (const k of new Set(keysOf(e))) {
      if (seen.has(k)) return `a batch writes each record once: ${k.replace('\0', ' ')} appears twice`;
      seen.add(k);
    }
  }
  return null;
}

const wireEdit = (e: Edit): Edit => (e.before ? { file: e.file, op: e.op, record: e.record, before: e.before } : { file: e.file, op: e.op, record: e.record });

export function encodeDiff(d: WireDiff, now = Date.now()): string {
  if (d.more?.length) {
    return JSON.stringify({ v: PROTOCOL_VERSION, type: 'diff', origin: d.origin, seq: d.seq, lamport: d.lamport, ts: now, edits: diffsOf(d).map(wireEdit) });
  }
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

/** One record of a diff message, validated. */
function decodeEdit(o: Record<string, unknown>): Edit {
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
  return edit;
}

/** Decode and validate a diff message, one record or a batch (its MAC already checked). */
export function decodeDiff(body: string, now = Date.now()): WireDiff {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'diff') throw new ProtocolError(`unsupported message (v=${String(o.v)}, type=${String(o.type)})`);
  if (typeof o.origin !== 'string' || !NAME_RE.test(o.origin)) throw new ProtocolError('malformed diff: bad origin');
  if (!isPosInt(o.seq) || !isPosInt(o.lamport)) throw new ProtocolError('malformed diff: seq and lamport must be positive integers');
  const n = Array.isArray(o.edits) ? o.edits.length : 1;
  if (o.lamport + n - 1 > lamportCeiling(now)) throw new ProtocolError(`refused diff: Lamport time ${o.lamport} is beyond the bound (wall clock + ${LIMITS.maxSkewMs / 60000} min)`, 422);
  if (typeof o.ts !== 'number' || Math.abs(now - o.ts) > LIMITS.maxSkewMs) {
    throw new ProtocolError('stale diff: its timestamp is too far from this peer\'s clock (replay?)', 409);
  }
  const { origin, seq, lamport } = o as { origin: string; seq: number; lamport: number };
  if (o.edits === undefined) return withFields(decodeEdit(o), { origin, seq, lamport });
  if (!Array.isArray(o.edits) || o.file !== undefined) throw new ProtocolError('malformed diff: a batch lists its records in edits only');
  const edits = mapList(o.edits as unknown[], (e) => {
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw new ProtocolError('malformed diff: a batch record is not an object');
    return decodeEdit(e as Record<string, unknown>);
  });
  const why = batchProblem(edits);
  if (why) throw new ProtocolError(`malformed batch: ${why}`, 422);
  const [first, ...more] = mapList(edits, (e, i) => ({ ...e, origin, seq, lamport: lamport + i }));
  return more.length ? { ...first, more } : first;
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
  // Each entry's origin proof, packed apart (entry-proof.ts); checked by the merge (entry-verify.ts).
  attachProofs(o, entries);
  return { clock: o.clock as number, seqs, entries };
}

export function decodeSnapshot(body: string, now = Date.now()): SnapshotMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'snapshot') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed snapshot: bad from');
  const f = checkFreshness(o, 'snapshot request', now);
  return { v: PROTOCOL_VERSION, type: 'snapshot', from: o.from, snapshot: validateSnapshot(o.snapshot, now), ...f };
}
