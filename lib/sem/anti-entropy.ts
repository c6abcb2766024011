// Anti-entropy with a constant cost per VM (issue 16). Each round a VM talks to one peer, not to
// all of them: its successor on the ring of members (natural hostname order) on even rounds, a
// member chosen at random on odd ones. Talking to a peer is a push-pull exchange that ships only
// what differs:
//
//   A -> B  summary   A's whole-replica digest and one digest per file (six hashes)
//   B -> A            equal digest: done (the idle case: one small request per round).
//                     Otherwise, for each file whose digest differs, the version (lamport, origin)
//                     of every key B holds: keys and versions, no record values.
//   A -> B  pull      the keys where B's version is newer or A has none; B answers with those
//                     entries only (a partial snapshot)
//   A -> B  snapshot  the entries where A's version is newer or B has none (the existing route;
//                     merging a partial snapshot is the same LWW merge)
//
// Partial snapshots carry no sequence numbers: the replay guard's floor is raised only by the full
// snapshot of a join. Each merged entry's proof (its origin's signed diff) marks that diff's own
// number as seen (ReplicatedStore.markMergedSeqs), so a replay of it is refused as one; a live diff
// that races with an exchange carrying the same edit is answered 409 "contained" and counted as
// acknowledged. After a pairwise exchange both replicas hold the newer version of every key either had.
//
// Spreading a difference at once (Spreader below). An exchange that changed a replica (A merged
// what it pulled, or B's digest changed with what A pushed, or a pushed snapshot changed the
// receiver) means a difference is travelling: the VM it changed, and the VM that carried it, each
// start follow-up exchanges right away with FOLLOW_UP_WIDTH random members not yet asked in that
// chain (in parallel), and go on while an exchange of the step still changes something (at most
// FOLLOW_UP_STEPS steps in a chain, one chain at a time per VM). The set of VMs carrying the
// difference grows several-fold every exchange time (tens of ms), not every round. Idle, nothing
// changes and no follow-up is made: the idle cost is the one summary a round.
//
// Rounds while edits flow (RoundPacer below). A VM that applied a fan-out diff (its own edit, or
// one posted or relayed to it) since its previous round postpones this round: the fan-out is
// evidently reaching it, and a summary taken while an edit is still travelling differs only by
// that edit, so the exchange would ship what the fan-out is delivering anyway, on CPU the edits
// need (at 50 VMs on 2 cores the rounds are a quarter of the CPU an edit stream leaves, and
// bench:scale sends edits back to back). At most MAX_POSTPONED_ROUNDS in a row: under a constant
// stream of edits a VM still makes every (MAX_POSTPONED_ROUNDS + 1)-th round, and a diff it missed
// from an origin that keeps editing is caught up at once by the sequence gap (the next diff from
// that origin). With no edits nothing is postponed: the bound below holds as stated.
//
// Convergence bound. Rounds alone: an edit made on one side of a partition reaches the other side,
// once the network heals, by push-pull gossip; with one random partner every other round the VMs
// holding it roughly triple every two rounds, so all N hold it after about 2 (log3(N) + ln(ln N))
// rounds, ~12 rounds for N = 100; the ring successor makes it certain (not only likely) within
// 2 (N - 1) rounds. With follow-ups the first exchange across the healed cut starts chains that
// bring the difference to most VMs within a few exchange times, and the rounds complete what the
// chains missed. Diffs posted during the partition to unreachable peers are not retried: this
// exchange repairs them. Cost per VM and round: one exchange started, one answered on average,
// whatever N is; a difference costs O(N) extra exchanges once, cluster-wide.
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

/** The members other than `self`, in natural order starting after it (its ring successor first). */
function ringOf(self: string, members: readonly string[]): string[] {
  const ring = Array.from(new Set([...members, self])).sort(naturalCompare);
  const i = ring.indexOf(self);
  return [...ring.slice(i + 1), ...ring.slice(0, i)];
}

/**
 * The partner of `self` in round number `round`: its ring successor on even rounds, a member
 * chosen at random among the others on odd rounds (the successor when it is the only other).
 * On odd rounds, while some members in `unheard` were never heard from (their wire version is
 * not known here), the random partner is one of them: a VM learns every member's wire version
 * within about N rounds instead of the ~N ln N of uniform choice, and version 3's pair keys (which
 * wait for every member to be heard speaking version 3: replicated-store.ts dhKeyToPublish) come
 * into use that much sooner; at 50 VMs they save two Ed25519 operations per answer. The caller
 * leaves out members known down, so a dead member cannot take every random round.
 * One partner a round, whatever the cluster size; undefined when `self` is alone.
 */
export function roundPartner(self: string, members: readonly string[], round: number, rng: () => number = Math.random, unheard: ReadonlySet<string> = new Set()): string | undefined {
  const others = ringOf(self, members);
  if (others.length === 0) return undefined;
  if (round % 2 === 0 || others.length === 1) return others[0];
  const fresh = others.filter((m) => unheard.has(m));
  if (fresh.length) return fresh[Math.floor(rng() * fresh.length)];
  return others[1 + Math.floor(rng() * (others.length - 1))];
}

/** A member other than `self` and those in `not`, chosen at random; undefined when none is left. */
export function randomPartner(self: string, members: readonly string[], not: ReadonlySet<string>, rng: () => number = Math.random): string | undefined {
  const left = ringOf(self, members).filter((m) => !not.has(m));
  return left.length ? left[Math.floor(rng() * left.length)] : undefined;
}

/** Steps of one chain at most, and members asked in parallel at each step (see the header). */
export const FOLLOW_UP_STEPS = 4;
export const FOLLOW_UP_WIDTH = 2;

export interface SpreaderDeps {
  self: string;
  /** Hostnames of the current peers. */
  peers(): string[];
  /** One exchange with a peer: true when it changed a replica (this one or the peer's); never throws. */
  exchange(peer: string): Promise<boolean>;
  rng?: () => number;
  steps?: number;
  width?: number;
}

/**
 * Follow-up exchanges after a change (see the header): `changed(from)` starts a chain unless one
 * is running; each step of the chain asks `width` random members not asked yet in it (nor
 * `from`) in parallel; the chain stops after a step where no exchange changed anything, after
 * `steps` steps, when nobody is left to ask, or at stop().
 */
export class Spreader {
  private running = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  /** Chains started and follow-up exchanges made (tests, status). */
  readonly counts = { chains: 0, exchanges: 0 };

  constructor(private readonly deps: SpreaderDeps) {}

  /** An exchange with `from` (or a snapshot from it) changed a replica. */
  changed(from: string): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.chain(from);
    }, 0);
  }

  /** True while a chain is scheduled or running. */
  get busy(): boolean {
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.running = false;
  }

  private async chain(from: string): Promise<void> {
    this.counts.chains += 1;
    const asked = new Set([from]);
    try {
      for (let i = 0; i < (this.deps.steps ?? FOLLOW_UP_STEPS) && !this.stopped; i++) {
        const step: string[] = [];
        for (let k = 0; k < (this.deps.width ?? FOLLOW_UP_WIDTH); k++) {
          const peer = randomPartner(this.deps.self, this.deps.peers(), asked, this.deps.rng);
          if (!peer) break;
          asked.add(peer);
          step.push(peer);
        }
        if (step.length === 0) break;
        this.counts.exchanges += step.length;
        const changed = await Promise.all(step.map((p) => this.deps.exchange(p)));
        if (!changed.some(Boolean)) break;
      }
    } finally {
      if (!this.stopped) this.running = false;
    }
  }
}

/** Rounds postponed in a row at most while fan-out diffs keep arriving (see the header). */
export const MAX_POSTPONED_ROUNDS = 3;

/**
 * Whether a round is due or postponed (see the header): `diffApplied()` on every fan-out diff
 * applied here (own edits included); `postpone()` once per round, true when this round is skipped.
 */
export class RoundPacer {
  private applied = false;
  private postponed = 0;
  /** Rounds postponed since start (tests, status). */
  total = 0;

  constructor(private readonly max = MAX_POSTPONED_ROUNDS) {}

  diffApplied(): void {
    this.applied = true;
  }

  postpone(): boolean {
    const skip = this.applied && this.postponed < this.max;
    this.applied = false;
    this.postponed = skip ? this.postponed + 1 : 0;
    if (skip) this.total += 1;
    return skip;
  }
}
