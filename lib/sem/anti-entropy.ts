// Anti-entropy with a constant cost per VM (issue 16). Each round a VM talks to two peers, not to
// all of them: its successor on the ring of members (natural hostname order) and one member chosen
// at random. Talking to a peer is a push-pull exchange that ships only what differs:
//
//   A -> B  summary   A's whole-replica digest and one digest per file (six hashes)
//   B -> A            equal digest: done (the idle case: one small request per partner).
//                     Otherwise, for each file whose digest differs, the version (lamport, origin)
//                     of every key B holds: keys and versions, no record values.
//   A -> B  pull      the keys where B's version is newer or A has none; B answers with those
//                     entries only (a partial snapshot)
//   A -> B  snapshot  the entries where A's version is newer or B has none (the existing route;
//                     merging a partial snapshot is the same LWW merge)
//
// Partial snapshots carry no sequence numbers: the replay guard is raised only by the full
// snapshot of a join, so a diff that races with an exchange is applied (a no-op) rather than
// refused. After a pairwise exchange both replicas hold the newer version of every key either had.
//
// Convergence bound. An edit made on one side of a partition reaches the other side, once the
// network heals, by push-pull gossip: with one random partner per round the number of VMs that
// hold it roughly triples each round (each holder pushes to its partner, each non-holder pulls
// from its own), so all N hold it after about log3(N) + ln(ln N) rounds, ~6 rounds for N = 100;
// the ring successor makes it certain (not only likely) within N - 1 rounds. Diffs posted during
// the partition to unreachable peers are not retried: this exchange repairs them. With the
// default round of 2 s that is ~12 s at 100 VMs; `syncIntervalMs: 500` gives ~3 s (bench:scale).
// Cost per VM and round: two exchanges started, two answered on average, whatever N is.
import { FILE_NAMES, FileName, NAME_RE } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { Replica, Snapshot, SnapshotEntry, compareVersions } from './replica';
import { Freshness, PROTOCOL_VERSION, ProtocolError, checkFreshness, freshness, parseJson } from './sem-protocol';

export const SUMMARY_PATH = '/p2p/sem/summary';
export const PULL_PATH = '/p2p/sem/pull';
/** At most this many keys asked for in one pull (a file has a record per VM or OD: far fewer). */
const MAX_PULL_KEYS = 100_000;

export type KeyVersion = [key: string, lamport: number, origin: string];

/** Summaries and pulls change nothing at the receiver: like digest requests they carry a time and
 * a nonce (docs/security.md, freshness), checked by the receiver's NonceCache. */
export interface SummaryMessage extends Freshness {
  v: number;
  type: 'summary';
  from: string;
  digest: string;
  files: Record<FileName, string>;
}

export interface SummaryReply {
  digest: string;
  /** Per file whose digest differed: the answering peer's version of every key. */
  versions?: Partial<Record<FileName, KeyVersion[]>>;
}

export interface PullMessage extends Freshness {
  v: number;
  type: 'pull';
  from: string;
  keys: [FileName, string][];
}

const HEX64 = /^[0-9a-f]{64}$/;
const isFile = (f: unknown): f is FileName => typeof f === 'string' && (FILE_NAMES as readonly string[]).includes(f);

export function encodeSummary(from: string, replica: Replica): string {
  const files = {} as Record<FileName, string>;
  for (const f of FILE_NAMES) files[f] = replica.fileDigest(f);
  const m: SummaryMessage = { v: PROTOCOL_VERSION, type: 'summary', from, digest: replica.digest(), files, ...freshness() };
  return JSON.stringify(m);
}

export function decodeSummary(body: string, now = Date.now()): SummaryMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'summary') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed summary: bad from');
  if (typeof o.digest !== 'string' || !HEX64.test(o.digest)) throw new ProtocolError('malformed summary: digest');
  const files = o.files as Record<string, unknown>;
  if (!files || typeof files !== 'object' || Array.isArray(files)) throw new ProtocolError('malformed summary: files');
  for (const f of FILE_NAMES) {
    if (typeof files[f] !== 'string' || !HEX64.test(files[f] as string)) throw new ProtocolError(`malformed summary: digest of ${f}`);
  }
  checkFreshness(o, 'summary', now);
  return o as unknown as SummaryMessage;
}

/** B's answer to A's summary: nothing but the digest when equal, else the differing files' versions. */
export function answerSummary(replica: Replica, msg: SummaryMessage): SummaryReply {
  const digest = replica.digest();
  if (msg.digest === digest) return { digest };
  const versions: Partial<Record<FileName, KeyVersion[]>> = {};
  for (const f of FILE_NAMES) if (msg.files[f] !== replica.fileDigest(f)) versions[f] = replica.versions(f);
  return { digest, versions };
}

export function validateSummaryReply(r: unknown): SummaryReply {
  const o = r as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || typeof o.digest !== 'string' || !HEX64.test(o.digest)) throw new ProtocolError('malformed summary answer');
  if (o.versions === undefined) return { digest: o.digest };
  const v = o.versions as Record<string, unknown>;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ProtocolError('malformed summary answer: versions');
  const versions: Partial<Record<FileName, KeyVersion[]>> = {};
  for (const [f, list] of Object.entries(v)) {
    if (!isFile(f) || !Array.isArray(list)) throw new ProtocolError('malformed summary answer: versions');
    versions[f] = list.map((kv: unknown) => {
      if (!Array.isArray(kv) || kv.length !== 3) throw new ProtocolError('malformed summary answer: key version');
      const [key, lamport, origin] = kv;
      if (typeof key !== 'string' || !Number.isSafeInteger(lamport) || lamport < 1 || typeof origin !== 'string' || !NAME_RE.test(origin)) {
        throw new ProtocolError('malformed summary answer: key version');
      }
      return [key, lamport, origin] as KeyVersion;
    });
  }
  return { digest: o.digest, versions };
}

/** What A must fetch from B (B's version newer or A has none) and send to B (the reverse). */
export function plan(replica: Replica, theirs: Partial<Record<FileName, KeyVersion[]>>): { pull: [FileName, string][]; push: SnapshotEntry[] } {
  const pull: [FileName, string][] = [];
  const pushKeys: [FileName, string][] = [];
  for (const f of FILE_NAMES) {
    const list = theirs[f];
    if (!list) continue;
    const known = new Map<string, { lamport: number; origin: string }>();
    for (const [key, lamport, origin] of list) {
      known.set(key, { lamport, origin });
      const mine = replica.version(f, key);
      if (!mine || compareVersions({ lamport, origin }, mine) > 0) pull.push([f, key]);
    }
    for (const [key, lamport, origin] of replica.versions(f)) {
      const t = known.get(key);
      if (!t || compareVersions({ lamport, origin }, t) > 0) pushKeys.push([f, key]);
    }
  }
  return { pull, push: replica.entries(pushKeys) };
}

export function encodePull(from: string, keys: [FileName, string][]): string {
  const m: PullMessage = { v: PROTOCOL_VERSION, type: 'pull', from, keys, ...freshness() };
  return JSON.stringify(m);
}

export function decodePull(body: string, now = Date.now()): PullMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'pull') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed pull: bad from');
  if (!Array.isArray(o.keys) || o.keys.length > MAX_PULL_KEYS) throw new ProtocolError('malformed pull: keys');
  for (const k of o.keys) {
    if (!Array.isArray(k) || k.length !== 2 || !isFile(k[0]) || typeof k[1] !== 'string') throw new ProtocolError('malformed pull: key');
  }
  checkFreshness(o, 'pull', now);
  return o as unknown as PullMessage;
}

/** The entries a pull asks for, as a partial snapshot (no sequence numbers: see the header). */
export function answerPull(replica: Replica, msg: PullMessage): Snapshot {
  return { clock: replica.clock, seqs: {}, entries: replica.entries(msg.keys) };
}

/** A partial snapshot of the given entries, sent with the existing snapshot message. */
export function partialSnapshot(replica: Replica, entries: SnapshotEntry[]): Snapshot {
  return { clock: replica.clock, seqs: {}, entries };
}

/**
 * This round's partners of `self` among `members` (self included or not): the ring successor and
 * `random` others drawn without repetition. Never more than 1 + random, whatever the cluster size.
 */
export function partners(self: string, members: readonly string[], random = 1, rng: () => number = Math.random): string[] {
  const ring = Array.from(new Set([...members, self])).sort(naturalCompare);
  if (ring.length < 2) return [];
  const successor = ring[(ring.indexOf(self) + 1) % ring.length];
  const others = ring.filter((m) => m !== self && m !== successor);
  const out = [successor];
  for (let i = 0; i < random && others.length; i++) out.push(others.splice(Math.floor(rng() * others.length), 1)[0]);
  return out;
}
