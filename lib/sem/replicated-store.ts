// The replicated management file store: this VM's replica of the six files, kept durable on disk,
// edited locally and sent to every peer of the group file as small diffs (SEM), kept convergent by
// anti-entropy (./anti-entropy.ts: one partner a round, follow-ups right after a change, only what
// differs is shipped).
// Implements ClusterFiles, the API every node uses.
import { EventEmitter } from 'events';
import { ADDRESS_RE, FILE_NAMES, FileName, NAME_RE, RecordFields, SCHEMAS, recordKey, validateRecord } from '../records/files';
import type { BatchResult, ChangeEvent, ClusterFiles, Edit, EditResult, Identity, PeerAck, PeerFailure, RefusalEvent } from '../records/cluster-api';
import { formatDiffLine, normalizeEdit } from '../records/diff-line';
import { mapList } from '../records/lists';
import { Diff, KeyChange, Replica, SnapshotEntry, compareVersions, sameRecord } from './replica';
import { DurableFiles } from './durable-files';
import { NonceCache, ReplayGuard } from './replay-guard';
import { operationRecords } from '../records/ring';
import { LIMITS, ProtocolError, WIRE_VERSION, WireDiff, WireVersion, batchProblem, decodeDiff, decodeDigest, decodeSnapshot, diffsOf, encodeDiff, freshness, lamportCeiling, validateSnapshot } from './sem-protocol';
import { Reply, RouteContext, SemClient, SemClientError, SemServer, ServerLimits, Target } from './sem-http';
import { commitRotation, loadOrCreateVmKey, makeVmKeyFile, parseSignature, prepareRotation, signMessage, verifyMessage, VmKey, X25519 } from './vm-key';
import { AnswerAuth } from './pair-key-answer';
import { fromMember, isServing, toMember, toProblem } from '../records/records';
import { AuthorityView, batchAuthorityRefusal, managersOf, mergeRefusal } from './edit-authority';
import { SemLog } from './sem-log';
import {
  PULL_PATH,
  SUMMARY_PATH,
  answerPull,
  answerSummary,
  decodePull,
  decodeSummary,
  encodePull,
  encodeSummary,
  partialSnapshot,
  roundPartner,
  RoundPacer,
  Spreader,
  plan,
  validateSummaryReply,
} from './anti-entropy';
import { DIFF_PATH, Fanout, type Peer, RELAY_LIMIT_BYTES, RELAY_PATH, decodeRelay } from './fanout';
import { RefusalLimiter, RefusalReport } from './refusal-limiter';
import { AdminCallEnvelope, AdminCallRefused, openAdminCall, sealAdminCall } from './admin-call';
import { EntryProof, packSnapshot, signEntry } from './entry-proof';
import { endorseKey, extendKeyChain, followKeyChain, KeyEndorsement, keyChainOf, loadKeyChain, withKeyChain } from './key-chain';
import { anchorsFile, loadKeyAnchors } from './key-anchors';
import { NonceJournal } from './nonce-journal';
import { describeEntry, proofDiffs, proofEdit, proofTime, provenEntries } from './entry-verify';
import type { AdminCallTarget, SealedAdminCall } from '../records/cluster-api';
import { withFields } from '../records/objects';

export const DEFAULT_SEM_PORT = 18801;
/** 128 bits as base64: what the editor requires of a new secret (the runtime warns below it). */
export const STRONG_SECRET_CHARS = 22;
/** How long a rotated-out VM key is still accepted (docs/security.md, key rotation). */
const ROTATION_GRACE_MS = 10_000;

export interface StoreOptions {
  identity: Identity;
  /** Folder of the management files. */
  folder: string;
  /** SEM port: the same on every VM of the cluster. */
  port?: number;
  /** The cluster secret shared by all VMs (HMAC key). */
  secret: string;
  /**
   * The secret before a rotation, accepted (and used for peers that do not know the new one yet)
   * until `until` (ms since the epoch); refused after. Rotate the cluster secret, docs/security.md.
   */
  previousSecret?: { secret: string; until: number };
  /** Peers to contact at start before the group file knows any: `address` or `address:port`. */
  seeds?: string[] | string;
  /** Digest exchange period (anti-entropy), ms. */
  syncIntervalMs?: number;
  /** Deadline of one request to a peer, ms. */
  requestTimeoutMs?: number;
  /** Add or update this VM's own group record at start. */
  autoJoin?: boolean;
  /** Cap of a snapshot (whole files) sent to or answered by a peer, bytes (default LIMITS.syncBytes). */
  maxSnapshotBytes?: number;
  /** Connection, deadline and pre-authentication memory bounds of the SEM endpoint. */
  serverLimits?: Partial<ServerLimits>;
  /**
   * Sign with the VM key and seal bodies with AES-256-GCM (default true). Off only to measure
   * what they cost (bench:sem): a cluster with it off trusts the cluster secret alone.
   */
  wireSecurity?: boolean;
  /**
   * The wire version this store speaks (sem-protocol WIRE_VERSION; default 3). 2 makes it behave as
   * the release before answers by pair key (it publishes no X25519 key and always signs). 1 makes it behave
   * exactly as the release before version 2 on the wire: no version header, no summary, pull or
   * relay routes, a digest exchange with every peer each round, direct posts to every peer. For a
   * rolling upgrade's tests and for holding a cluster back (docs/operations.md, "Upgrading").
   */
  protocolVersion?: WireVersion;
}

export class EditError extends Error {}
/** A local edit that every receiver would refuse under the edit authority rules (edit-authority.ts). */
export class AuthorityError extends EditError {}
export class ConfigError extends Error {}

export interface StoreStatus {
  state: 'starting' | 'ok' | 'degraded' | 'error' | 'stopped';
  /** English text (logs, tests). */
  text: string;
  /** The same as a message id and its values, for a translated status line (nodes/common/i18n.ts). */
  message?: { id: 'starting' | 'stopped' | 'alone' | 'inSync' | 'unreachable' | 'cannotListen'; values?: Record<string, string | number> };
}

interface PeerState {
  lastOk: number;
  lastError?: string;
  lastErrorAt?: number;
}

/** How long a failed contact makes a peer "known down" (its acks are then not awaited). The
 * digest exchange retries every sync interval, so a peer that is back is known up again soon. */
const KNOWN_DOWN_MS = 10_000;

/** Up to this many peers and seeds, a joining VM exchanges its full state with each of them at
 * start (as before issue 16); in a larger cluster it joins through its seeds and a round's partner, and
 * the rounds of anti-entropy bring the rest. */
const JOIN_ALL_MAX = 12;

/** Every this many rounds, a seed whose address no member of the group file has is asked too (one
 * seed in turn). When many VMs start at once under load, two seeds may each start before the other
 * listens and each joiner reach only one of them: two clusters form, each knowing only its own
 * members, and rounds (which ask members only) would never join them. Once every seed is a member
 * (the normal case) this costs nothing; a seed that never answers costs one failed request every
 * SEED_ROUNDS rounds. */
const SEED_ROUNDS = 5;

/** How long after switchIdentity a message built under the old name is still signed as it (twice an exchange's deadline). */
const RETIRED_KEY_MS = 10_000;

/** Check an identity before anything listens or is written. */
export function validateIdentity(id: Identity): Identity {
  if (!NAME_RE.test(id.hostname ?? '')) throw new ConfigError(`hostname ${JSON.stringify(id.hostname)} is not a valid name`);
  if (!ADDRESS_RE.test(id.address ?? '')) throw new ConfigError(`address ${JSON.stringify(id.address)} is not an IPv4 address or DNS name`);
  if (!NAME_RE.test(id.realServer ?? '')) throw new ConfigError(`real server ${JSON.stringify(id.realServer)} is not a valid name`);
  const services = (id.services ?? '').trim().replace(/\s+/g, ' ') || '-';
  try {
    validateRecord('group', [id.hostname, id.address, id.realServer, services]);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return { hostname: id.hostname, address: id.address, realServer: id.realServer, services };
}

export function parseSeeds(seeds: string[] | string | undefined, defaultPort: number): Target[] {
  const list = typeof seeds === 'string' ? seeds.split(/[\s,]+/) : (seeds ?? []);
  return list
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
      if (!m || !ADDRESS_RE.test(m[1])) throw new ConfigError(`seed ${JSON.stringify(s)} is not address[:port]`);
      const port = m[2] ? Number(m[2]) : defaultPort;
      if (port < 1 || port > 65535) throw new ConfigError(`seed ${JSON.stringify(s)} has a bad port`);
      return { address: m[1], port };
    });
}

export class ReplicatedStore extends EventEmitter implements ClusterFiles {
  /** This VM's identity; changed only by switchIdentity (one synchronous step). */
  private current: Identity;
  readonly port: number;
  readonly log: SemLog;
  private readonly replica = new Replica();
  private readonly disk: DurableFiles;
  private readonly guard = new ReplayGuard();
  private readonly nonces = new NonceCache(2 * LIMITS.syncFreshMs);
  /** What loading the state repaired (logged at start, when the log and listeners exist). */
  private readonly repairs: string[] = [];
  private readonly client: SemClient;
  private readonly server: SemServer;
  private readonly seeds: Target[];
  private readonly syncIntervalMs: number;
  /** Whether the store adds itself to the group file at its start (false for an OD). */
  readonly autoJoin: boolean;
  private readonly snapshotBytes: number;
  /** This VM's signing key (its public half is published in its group record). */
  private key: VmKey;
  /** This VM's X25519 key (wire security on), made, rotated and gone with `key`: answers by pair key. */
  private dh?: VmKey;
  /** Authenticates this VM's answers and checks those it gets (./pair-key-answer.ts). */
  private readonly answers: AnswerAuth;
  /** The key of the name this store had before switchIdentity, for a short while (signingKey). */
  private retired?: { key: VmKey; from: string; until: number };
  /** The endorsements of this VM's keys by the keys they replaced, oldest first (./key-chain.ts):
   * sent with each diff of its own group record, so that a peer that missed rotations follows them. */
  private keyChain: KeyEndorsement[];
  /** Operator-given keys of members, for the bootstrap of a VM it holds nothing of (./key-anchors.ts). */
  private readonly anchors: ReadonlyMap<string, string>;
  private publishing = false;
  /** A member's previous key, still accepted for a short while after it rotated (messages it
   * signed before it saw its own new record published may be in flight). */
  private readonly previousKeys = new Map<string, { key: string; until: number }>();
  /** Resolved once start() has published this VM's key (or will not): peers refuse what a VM
   * without a published key signs, so edits made before wait for it to be sent. */
  private keyGate?: Promise<void>;
  private releaseKeyGate: () => void = () => undefined;
  private readonly weakSecret: boolean;
  private readonly secret: string;
  /** The previous cluster secret while it is still accepted, else undefined. */
  private readonly previousSecret: () => string | undefined;
  /** Nonces of admin calls, shared by the stores of this process: a role call redeploys the store,
   * and the new one must still refuse the call replayed. */
  private static readonly adminNonces = new NonceCache(2 * LIMITS.syncFreshMs);
  /** The same nonces on disk, so that a restart of the runtime does not forget them (nonce-journal.ts). */
  private readonly adminJournal: NonceJournal;
  private readonly secure: boolean;
  private readonly peerState = new Map<string, PeerState>();
  private readonly refusals = new RefusalLimiter((r) => this.reportRefusal(r));
  private readonly pendingSync = new Map<string, NodeJS.Timeout>();
  private readonly fanout: Fanout;
  /** Follow-up exchanges right after an exchange changed something (./anti-entropy.ts). */
  private readonly spreader: Spreader;
  /** Rounds of anti-entropy made (even: the ring successor, odd: a random member). */
  private rounds = 0;
  /** Rounds postponed while fan-out diffs arrive (./anti-entropy.ts, RoundPacer). */
  private readonly pacer = new RoundPacer();
  /** The wire version this store speaks. */
  readonly version: WireVersion;
  /** The wire version each peer address announced in its last authenticated request or answer
   * (absent: not heard yet). One entry per member or seed address. */
  private readonly peerVersions = new Map<string, WireVersion>();
  /** Sources of VMs that are no members and get this VM's edits as well (addEditDestinations). */
  private readonly editDestinations = new Set<() => readonly Peer[]>();
  /** peers() as last derived, with the group file's revision and the name it was derived for. */
  private peerList?: { revision: number; me: string; list: { hostname: string; address: string }[] };
  private syncTimer?: NodeJS.Timeout;
  private stopped = false;
  /** Settled once start() listens (true) or cannot, or the store stopped first (false). */
  private readonly listened: Promise<boolean>;
  private settleListened: (ok: boolean) => void = () => undefined;
  private _status: StoreStatus = { state: 'starting', text: 'starting', message: { id: 'starting' } };

  constructor(opts: StoreOptions) {
    super();
    this.listened = new Promise<boolean>((r) => (this.settleListened = r));
    this.current = validateIdentity(opts.identity);
    if (typeof opts.secret !== 'string' || opts.secret.length < 8) {
      throw new ConfigError('the cluster secret is missing or shorter than 8 characters');
    }
    this.weakSecret = opts.secret.length < STRONG_SECRET_CHARS;
    this.secret = opts.secret;
    const prev = opts.previousSecret;
    if (prev && (typeof prev.secret !== 'string' || prev.secret.length < 8 || !Number.isFinite(prev.until))) {
      throw new ConfigError('the previous cluster secret needs at least 8 characters and an end time');
    }
    this.previousSecret = prev && prev.secret !== opts.secret ? () => (Date.now() < prev.until ? prev.secret : undefined) : () => undefined;
    this.secure = opts.wireSecurity !== false;
    this.version = opts.protocolVersion === 1 || opts.protocolVersion === 2 ? opts.protocolVersion : WIRE_VERSION;
    this.port = opts.port ?? DEFAULT_SEM_PORT;
    this.seeds = parseSeeds(opts.seeds, this.port);
    this.syncIntervalMs = Math.max(100, opts.syncIntervalMs ?? 2000);
    this.autoJoin = opts.autoJoin ?? true;
    this.snapshotBytes = Math.max(LIMITS.diffBytes, opts.maxSnapshotBytes ?? LIMITS.syncBytes);
    this.disk = new DurableFiles(opts.folder, this.identity.hostname, this.replica);
    try {
      this.key = loadOrCreateVmKey(opts.folder, this.identity.hostname);
      if (this.secure) this.dh = loadOrCreateVmKey(opts.folder, this.identity.hostname, X25519);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    this.keyChain = loadKeyChain(opts.folder, this.identity.hostname);
    try {
      this.anchors = loadKeyAnchors(opts.folder);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    this.disk.loadSync();
    this.repairLoadedState();
    if (this.secure) this.proveOwnEntries();
    this.adminJournal = new NonceJournal(opts.folder);
    this.adminJournal.load(ReplicatedStore.adminNonces);
    for (const [origin, seq] of Object.entries(this.replica.seqs)) this.guard.raise(origin, seq);
    this.log = new SemLog(opts.folder);
    this.answers = new AnswerAuth({
      hostname: () => this.identity.hostname,
      signingKey: (text) => this.signingKey(text),
      dhKey: () => (this.version >= 3 ? this.dh : undefined),
      record: (h) => this.replica.get('group', h),
      records: () => this.replica.records('group'),
      revision: () => this.replica.revision('group'),
    });
    this.client = new SemClient(
      opts.secret,
      opts.requestTimeoutMs ?? 2000,
      /^\d+\.\d+\.\d+\.\d+$/.test(this.identity.address) ? this.identity.address : undefined,
      this.secure ? (label, body) => signMessage(this.signingKey(body), label, body) : undefined,
      this.secure ? (target, label, text, signature) => this.answers.check(target.address, label, text, signature) : undefined,
      this.secure,
      this.previousSecret,
      {
        version: this.version,
        heard: (target, v) => this.heardVersion(target.address, v),
        pair: this.secure ? (target) => this.answers.requestHeader(target.address) : undefined,
      },
      // Diffs (and relayed diffs) travel on a stream per peer when the peer accepts one (./sem-stream.ts).
      this.version > 1 ? [DIFF_PATH, RELAY_PATH] : [],
    );
    const store = this;
    this.fanout = new Fanout({
      // Read at each use: switchIdentity changes it.
      get self() {
        return store.identity.hostname;
      },
      port: this.port,
      timeoutMs: opts.requestTimeoutMs ?? 2000,
      post: (target, path, body, opts) => this.client.post(target, path, body, opts),
      isContained: (e) => e instanceof SemClientError && e.status === 409 && e.body?.contained === true,
      peerOk: (name) => this.peerOk(name),
      peerFailed: (name, error) => this.peerFailed(name, error),
      knownDown: (name) => this.knownDown(name),
      // Only a peer known to speak version 2 or later relays (a version-1 store has no relay route).
      canRelay: (name) => this.version > 1 && (this.versionOf(name) ?? 1) >= 2,
      isNoRoute: (e) => e instanceof SemClientError && e.status === 404,
      cannotRelay: (name) => this.setVersionOf(name, 1),
    });
    this.spreader = new Spreader({
      get self() {
        return store.identity.hostname;
      },
      peers: () => this.peers().map((p) => p.hostname),
      exchange: (name) => this.tryCatchUp(name),
    });
    this.server = new SemServer({
      host: this.identity.address,
      port: this.port,
      secret: opts.secret,
      ping: () => ({ hostname: this.identity.hostname, address: this.identity.address, time: Date.now() }),
      onRefused: (remote, reason) => this.refused(remote, reason),
      // By the pair key of (this VM, the requester) when the request names it, else signed (./pair-key-answer.ts).
      sign: this.secure ? (label, text, pair) => this.answers.sign(label, text, pair) : undefined,
      encrypt: this.secure,
      previousSecret: this.previousSecret,
      // Every answer announces this store's wire version: a peer that hears none takes it for a
      // version-1 VM (full digest exchanges with it, never a relay).
      version: this.version,
      limits: { preAuthBytesPerPeer: this.snapshotBytes, preAuthBytes: 2 * this.snapshotBytes, ...(opts.serverLimits ?? {}) },
      // A version-1 store is a release before streams: it accepts none (an upgrade is answered 404).
      streamRoutes: this.version > 1 ? [DIFF_PATH, RELAY_PATH] : [],
      routes: {
        // Version 1's routes, answered by every version.
        '/p2p/sem/diff': { limit: LIMITS.diffBytes, handler: this.heard((ctx) => this.onDiff(ctx)) },
        '/p2p/sem/digest': { limit: LIMITS.diffBytes, handler: this.heard((ctx) => this.onDigest(ctx)) },
        '/p2p/sem/snapshot': { limit: this.snapshotBytes, handler: this.heard((ctx) => this.onSnapshot(ctx)) },
        // Version 2's: a summary is six hashes (small cap); a pull lists keys, as many as a snapshot has.
        ...(this.version > 1
          ? {
              [RELAY_PATH]: { limit: RELAY_LIMIT_BYTES, handler: this.heard((ctx) => this.onRelay(ctx)) },
              [SUMMARY_PATH]: { limit: LIMITS.diffBytes, handler: this.heard((ctx) => this.onSummary(ctx)) },
              [PULL_PATH]: { limit: this.snapshotBytes, handler: this.heard((ctx) => this.onPull(ctx)) },
            }
          : {}),
      },
    });
  }

  /** A route handler that, once the request was handled (it was authenticated), notes the wire
   * version its sender announced. */
  private heard(handler: (ctx: RouteContext) => Promise<Reply> | Reply): (ctx: RouteContext) => Promise<Reply> {
    return async (ctx) => {
      const reply = await handler(ctx);
      this.heardVersion(ctx.remote, ctx.version);
      return reply;
    };
  }

  /** A peer's wire version, heard on an authenticated request or answer. A peer heard at version 3
   * for the first time may be the last one this VM's X25519 key waits for (dhKeyToPublish): it is
   * published now, not at the next round (up to the sync interval later; until then every answer
   * to and from this VM is signed and verified with Ed25519 instead of tagged by pair key). */
  private heardVersion(address: string, v: WireVersion): void {
    const was = this.peerVersions.get(address);
    this.peerVersions.set(address, v);
    if (was !== v && v >= 3) this.publishKeySoon();
  }

  private publishKeyQueued = false;

  /** publishKey at the next turn, once however often asked in this one (it reads the group file). */
  private publishKeySoon(): void {
    if (this.publishKeyQueued || this.version < 3 || !this.dh) return;
    this.publishKeyQueued = true;
    setImmediate(() => {
      this.publishKeyQueued = false;
      this.publishKey();
    });
  }

  /** The wire version a member announced last (by its group file address), if heard. */
  private versionOf(hostname: string): WireVersion | undefined {
    const r = this.replica.get('group', hostname);
    return r ? this.peerVersions.get(fromMember(r).address) : undefined;
  }

  private setVersionOf(hostname: string, v: WireVersion): void {
    const r = this.replica.get('group', hostname);
    if (r) this.peerVersions.set(fromMember(r).address, v);
  }

  /** Anti-entropy rounds made, periodic rounds postponed while diffs arrived, follow-up chains
   * started and their exchanges (benches, tests). */
  roundCounts(): { made: number; postponed: number; chains: number; followUps: number } {
    return { made: this.rounds, postponed: this.pacer.total, chains: this.spreader.counts.chains, followUps: this.spreader.counts.exchanges };
  }

  /** Answers this store accepted, by how they were authenticated: by pair key, by signature, by
   * the cluster MAC alone (a seed, or a member without a published key) (tests, benches). */
  answersAccepted(): { pair: number; signed: number; macOnly: number } {
    return { ...this.answers.accepted };
  }

  /** Which wire version each member was last heard speaking (for status and tests). */
  peerWireVersions(): Record<string, WireVersion | undefined> {
    return Object.fromEntries(this.peers().map((p) => [p.hostname, this.peerVersions.get(p.address)]));
  }

  /** A Lamport time on disk beyond the bound (a clock poisoned before bounds existed) is brought
   * down to it; the repaired state is written by start()'s checkpoint. */
  private repairLoadedState(): void {
    const ceiling = lamportCeiling();
    const fixed = this.replica.clampVersions(ceiling);
    if (fixed.highest > ceiling) {
      this.repairs.push(
        `repaired a poisoned Lamport clock at load: ${fixed.highest} is beyond the bound (wall clock + ${LIMITS.maxSkewMs / 60000} min); ` +
          `the clock and ${fixed.entries} record version(s) brought down to ${ceiling}`,
      );
    }
  }

  /**
   * Upgrade path of entry proofs (docs/security.md, rule 10): this VM's own entries that carry no
   * proof (written before proofs existed, or whose time a repair changed) are signed now with its
   * key (e proofs, entry-proof.ts), so peers that lack them can take them from it. Entries of other
   * origins without a proof are kept here but never shipped: peers take them from their origin.
   */
  private proveOwnEntries(): void {
    const n = this.replica.prove(this.identity.hostname, (e) => signEntry(this.key, e.file, e.key, e.value, e.lamport));
    if (n > 0) this.repairs.push(`signed ${n} record version(s) of ${this.identity.hostname} that carried no origin proof (written before proofs existed)`);
  }

  /** A snapshot as it goes to a peer: entries with their origin proofs; with wire security on,
   * unproven entries are left out (the peer would refuse them). */
  private wireSnapshot<S extends { clock: number; seqs: Record<string, number>; entries: SnapshotEntry[] }>(snap: S) {
    return packSnapshot(snap, this.secure);
  }

  get folder(): string {
    return this.disk.folder;
  }

  /**
   * Resolves once every change this store has applied so far is in its plain-text files; rejects
   * if a text file could not be written (it is tried again). An acknowledged edit is durable and
   * applied at once; the text files follow within TEXT_INTERVAL_MS (durable-files.ts): wait here
   * where the files on disk, not the state (records()), must show it.
   */
  textsWritten(): Promise<void> {
    return this.disk.textsWritten();
  }

  /**
   * The key a message is signed with: this VM's, except for a message an exchange built under the
   * name it had before switchIdentity and sends after it (an anti-entropy exchange's pull after
   * its summary), which is signed as what it claims to be (its `from`, in the first bytes of every
   * exchange message) for RETIRED_KEY_MS. Signed with the new key it would be refused as a mix.
   */
  private signingKey(text: string): VmKey {
    const r = this.retired;
    if (!r) return this.key;
    if (Date.now() > r.until) {
      this.retired = undefined;
      return this.key;
    }
    return text.slice(0, 128).includes(r.from) ? r.key : this.key;
  }

  get identity(): Identity {
    return this.current;
  }

  /**
   * The keys switchIdentity would make for `hostname` (its signing key, and its X25519 key when
   * this store has one), made now on disk, both at once and off the event loop, so that the switch
   * only reads them (nodes/common/role-endpoint.ts calls this first). Changes nothing else: a
   * failure here leaves the store as it was.
   */
  async prepareIdentityKeys(hostname: string): Promise<void> {
    if (this.stopped) throw new ConfigError('the store is stopped');
    if (!NAME_RE.test(hostname)) throw new ConfigError(`hostname ${JSON.stringify(hostname)} is not a valid name`);
    try {
      await Promise.all([
        hostname === this.key.hostname ? undefined : makeVmKeyFile(this.folder, hostname),
        !this.dh || hostname === this.dh.hostname ? undefined : makeVmKeyFile(this.folder, hostname, X25519),
      ]);
    } catch (e) {
      throw new ConfigError(`the keys of ${hostname} could not be made: ${(e as Error).message}`);
    }
  }

  /**
   * Take another identity in place (an OD taking a backup's role, nodes/common/role-endpoint.ts):
   * the same address, port, folder and files, another hostname, real server and services, signed
   * with the key of the new hostname (created beside the others, vm-key.ts: each name its own key).
   * The key is made ready first (a failure there changes nothing); then one synchronous step swaps
   * identity, key, sequence numbers and checkpoint name, so every request is handled and answered
   * either wholly as the old identity or wholly as the new one: the old one has stopped answering
   * before the new one answers. Returns the identity it had (switch back to it to undo).
   */
  switchIdentity(next: Identity): Identity {
    if (this.stopped) throw new ConfigError('the store is stopped');
    const id = validateIdentity(next);
    const before = this.current;
    if (id.address !== before.address) throw new ConfigError(`a store keeps its address: ${before.address}, not ${id.address}`);
    let key: VmKey;
    let dh: VmKey | undefined;
    let chain: KeyEndorsement[];
    try {
      key = id.hostname === this.key.hostname ? this.key : loadOrCreateVmKey(this.folder, id.hostname);
      dh = !this.dh || id.hostname === this.dh.hostname ? this.dh : loadOrCreateVmKey(this.folder, id.hostname, X25519);
      // The endorsements of the new name's keys (key-chain.ts): none for a name this VM never had.
      chain = id.hostname === before.hostname ? this.keyChain : loadKeyChain(this.folder, id.hostname);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    // From here on nothing throws: the swap is one turn of the event loop.
    if (key !== this.key) this.retired = { key: this.key, from: `"from":${JSON.stringify(before.hostname)}`, until: Date.now() + RETIRED_KEY_MS };
    this.current = id;
    this.key = key;
    this.dh = dh;
    this.keyChain = chain;
    this.disk.hostname = id.hostname;
    // Never reuse a sequence number the new name already used (a former VM of that name).
    this.disk.ownSeq = Math.max(this.disk.ownSeq, this.replica.seqs[id.hostname] ?? 0);
    if (this.secure) this.proveOwnEntries();
    for (const r of this.repairs.splice(0)) this.log.write('repaired', r);
    this.log.write('applied', `identity ${before.hostname} -> ${id.hostname} (in place)`, { realServer: id.realServer, services: id.services });
    // A record of the new name already in the group (a recovery taken over): its key is published.
    if (this.replica.get('group', id.hostname)) this.publishKey();
    this.updateStatus();
    this.safeEmit('identity', { identity: id, before });
    return before;
  }

  get status(): StoreStatus {
    return this._status;
  }

  /**
   * Resolves true once this store's SEM server listens (diffs sent to it from now on are
   * received), false if it could not listen or was stopped first. A VM that took a role answers
   * its caller after this (nodes/common/role-endpoint.ts), so the caller need not poll.
   */
  listening(): Promise<boolean> {
    return this.listened;
  }

  /** Listen, bring the text files in line with the state, join the cluster, start anti-entropy. */
  async start(): Promise<void> {
    // The start's checkpoint and text files are written while the server
    // already listens: every later save is queued after this one, so nothing received is
    // acknowledged before both are durable. (A redeployed store, e.g. an OD taking a backup's role,
    // answers 50 ms to over a second sooner on a busy disk.)
    let checkpoint: Promise<void>;
    try {
      await this.disk.clean();
      checkpoint = this.disk.save(FILE_NAMES);
    } catch (e) {
      this.settleListened(false);
      throw e;
    }
    checkpoint.catch(() => undefined); // awaited below, after listen
    if (!this.secure) this.safeEmit('warning', 'wire security is off: messages are neither signed nor encrypted (for measurements only)');
    if (this.weakSecret) this.safeEmit('warning', `the cluster secret is shorter than ${STRONG_SECRET_CHARS} characters (128 bits): generate a longer one (docs/security.md)`);
    for (const r of this.repairs.splice(0)) {
      this.log.write('repaired', r);
      this.safeEmit('warning', r);
    }
    this.keyGate = new Promise<void>((r) => (this.releaseKeyGate = r));
    try {
      try {
        await this.server.listen();
        this.settleListened(true);
      } catch (e) {
        this.settleListened(false);
        const err = e as NodeJS.ErrnoException;
        const values = { address: this.identity.address, port: this.port, reason: err.code ?? err.message };
        this.setStatus('error', `cannot listen on ${values.address}:${values.port}: ${values.reason}`, { id: 'cannotListen', values });
        throw new ConfigError(this._status.text);
      }
      try {
        await checkpoint;
      } catch (e) {
        // A store whose files cannot be written serves nothing (as before, when it did not listen
        // until they were): its peers see it down.
        await this.server.close().catch(() => undefined);
        this.setStatus('error', `cannot write ${this.folder}: ${(e as Error).message}`);
        throw e;
      }
      // The start's text files (a turn of the loop; one that cannot be written is tried again).
      await this.disk.textsWritten().catch(() => undefined);
      await this.join();
      // If this VM's own state was lost or rolled back, peers still know its last sequence number:
      // never reuse one (peers would refuse the new diffs as replays).
      this.disk.ownSeq = Math.max(this.disk.ownSeq, this.replica.seqs[this.identity.hostname] ?? 0);
      if (this.autoJoin && !this.stopped) await this.joinGroup();
      else this.publishKey();
    } finally {
      this.releaseKeyGate();
    }
    this.updateStatus();
    this.scheduleSync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.settleListened(false);
    this.releaseKeyGate();
    clearTimeout(this.syncTimer);
    this.spreader.stop();
    for (const t of this.pendingSync.values()) clearTimeout(t);
    this.pendingSync.clear();
    this.client.close();
    await this.server.close();
    this.refusals.close();
    await this.disk.save([]).catch(() => undefined);
    await this.disk.close().catch(() => undefined);
    await this.log.close();
    this.setStatus('stopped', 'stopped', { id: 'stopped' });
  }

  records(file: FileName): RecordFields[] {
    if (file === 'operation') return operationRecords(this.replica.records('group'));
    return this.replica.records(file);
  }

  get(file: FileName, key: string): RecordFields | undefined {
    if (file === 'operation') return this.records(file).find((r) => recordKey(file, r) === key);
    return this.replica.get(file, key);
  }

  peers(): { hostname: string; address: string }[] {
    return mapList(this.peerListNow(), (p) => ({ ...p }));
  }

  /** The peers, derived once per change of the group file (or of this VM's name): read by every
   * round, status update and fan-out; handed out as copies (peers()), and as this list itself
   * only to the fan-out of an edit, which reads it (no copies per edit: issue 16). */
  private peerListNow(): readonly { hostname: string; address: string }[] {
    const me = this.identity.hostname;
    const revision = this.replica.revision('group');
    if (this.peerList?.revision !== revision || this.peerList.me !== me) {
      // A fenced member (destroyed and replaced) is no peer: edits are not sent to it.
      const list = this.replica
        .records('group')
        .map(fromMember)
        .filter((m) => m.hostname !== me && isServing(m))
        .map((m) => ({ hostname: m.hostname, address: m.address }));
      this.peerList = { revision, me, list };
    }
    return this.peerList.list;
  }

  /** The digest of this replica: equal on two peers means identical files. */
  digest(): string {
    return this.replica.digest();
  }

  async edit(input: Edit | string): Promise<EditResult> {
    const r = await this.commit([input]);
    return { line: r.lines[0], origin: r.origin, seq: r.seq, lamport: r.lamport, acked: r.acked, failed: r.failed, ms: r.ms };
  }

  /**
   * Several edits as one: all checked first (nothing is applied if one is refused), applied locally
   * in one turn with one journal line, and sent as one diff (one sequence number, one signature,
   * one request per peer) that every receiver applies all or nothing, checking each record's
   * authority as if they had come one after another (sem-protocol.ts WireDiff). Each record is
   * written once per batch.
   */
  editBatch(inputs: (Edit | string)[]): Promise<BatchResult> {
    return this.commit(inputs);
  }

  private async commit(inputs: (Edit | string)[]): Promise<BatchResult> {
    const t0 = performance.now();
    if (this.stopped) throw new EditError('the store is stopped');
    if (!Array.isArray(inputs)) throw new EditError('a batch is a list of edits');
    const edits = mapList(inputs, (i) => normalizeEdit(i));
    const why = batchProblem(edits);
    if (why) throw new EditError(`refused batch: ${why}`);
    // Distinct keys: each edit's precondition reads what no other edit of the batch writes.
    for (const e of edits) this.checkPreconditions(e);
    // The rules every receiver applies (onDiff), applied here first: a batch they would all refuse
    // is refused with the same reason and changes nothing, instead of staying local.
    const denied = batchAuthorityRefusal(this.identity.hostname, edits, { get: (f, k) => this.replica.get(f, k), records: (f) => this.replica.records(f) });
    if (denied) throw new AuthorityError(`refused ${formatDiffLine(edits[denied.index])}: ${denied.reason}`);
    this.disk.ownSeq += 1;
    const origin = this.identity.hostname;
    const seq = this.disk.ownSeq;
    const diffs: Diff[] = mapList(edits, (e) => withFields(e, { origin, seq, lamport: this.replica.tick() }));
    const [first, ...more] = diffs;
    const wire: WireDiff = more.length ? { ...first, more } : first;
    // Signed once here: the signature travels with the diff (also through relays, ./fanout.ts) and
    // stays with the entries it writes as their origin proof (entry-proof.ts, d proofs).
    // A diff of this VM's own group record carries its chain of key rotations (./key-chain.ts).
    const own = this.secure && diffs.some((d) => d.file === 'group' && d.record[0] === origin);
    const body = own ? withKeyChain(encodeDiff(wire), this.keyChain) : encodeDiff(wire);
    const signature = this.secure ? signMessage(this.key, `POST ${DIFF_PATH}`, body) : undefined;
    const proof: EntryProof | undefined = signature ? { d: body, s: signature } : undefined;
    this.guard.accept(origin, seq);
    const changed = mapList(diffs, (d) => this.replica.apply(d, proof).length > 0);
    const lines = mapList(edits, (e) => formatDiffLine(e));
    await this.disk.save(new Set(mapList(edits, (e) => e.file)));
    this.pacer.diffApplied();
    // The frames to the peers are written first (broadcast writes them before its first await once
    // the key gate is open), the edit's own log lines and change listeners run while the peers
    // work on it: their time is not added to every peer's acknowledgement (docs/performance.md, sixth pass).
    diffs.forEach((d, i) => {
      if (changed[i]) this.noteChange(d, true);
    });
    const sent = this.broadcast(wire, lines.join(' + '), { body, signature });
    diffs.forEach((d, i) => {
      this.log.write('applied', lines[i], { origin, seq, lamport: d.lamport, local: 1 });
      if (changed[i]) this.emitChangeEvent(d, true, 'edit', lines[i]);
    });
    const { acked, failed } = await sent;
    return { lines, origin, seq, lamport: first.lamport, acked, failed, ms: performance.now() - t0 };
  }

  /** A Mod whose `before` does not match is refused here, at the sender (DESIGN.md). */
  private checkPreconditions(edit: Edit): void {
    const schema = SCHEMAS[edit.file];
    if (schema.derived) throw new EditError(`${edit.file} is derived from group and cannot be edited`);
    const key = recordKey(edit.file, edit.record);
    const current = this.replica.get(edit.file, key);
    const line = formatDiffLine(edit);
    if (edit.op === 'Add' && current) {
      throw new EditError(`refused ${line}: ${edit.file} already has a record ${key} (use Mod)`);
    }
    if (edit.op === 'Del' && !sameRecord(current, edit.record)) {
      throw new EditError(`refused ${line}: ${edit.file} has no such record${current ? ` (it is: ${current.join(', ')})` : ''}`);
    }
    if (edit.op === 'Mod') {
      const beforeKey = recordKey(edit.file, edit.before!);
      const actual = this.replica.get(edit.file, beforeKey);
      if (!sameRecord(actual, edit.before)) {
        throw new EditError(`refused ${line}: before does not match ${edit.file} (it is: ${actual ? actual.join(', ') : 'absent'})`);
      }
      if (beforeKey !== key && this.replica.get(edit.file, key)) {
        throw new EditError(`refused ${line}: ${edit.file} already has a record ${key}`);
      }
    }
  }

  private async broadcast(diff: WireDiff, line: string, signed: { body: string; signature?: string }): Promise<{ acked: PeerAck[]; failed: PeerFailure[] }> {
    const me = this.identity.hostname;
    if (this.keyGate && this.secure && !(!diff.more && diff.file === 'group' && recordKey('group', diff.record) === me) && this.publishedKey(me) !== this.key.publicKey) {
      await this.keyGate;
    }
    const members = this.peerListNow();
    const { acked, failed } = await this.fanout.send(signed, members, this.editDestinationsNow(members));
    this.log.write('sent', line, {
      origin: diff.origin,
      seq: diff.seq,
      acked: mapList(acked, (a) => `${a.peer}:${a.ms.toFixed(1)}ms`).join(','),
      failed: mapList(failed, (f) => f.peer).join(','),
    });
    // For the metrics (SEM ack latency per peer): one event per fanned-out diff.
    this.safeEmit('sent', { line, acked, failed });
    this.updateStatus();
    return { acked, failed };
  }

  /**
   * VMs that are no members of the group file and are to get this VM's edits all the same, as
   * they are made: `source` is asked at each edit, once it is applied here, and names each by a
   * hostname (for the acknowledgement lists and the peer's state) and an address. Each edit goes
   * to them directly from this VM (never through a relay), under the members' acknowledgement rule
   * (./fanout.ts); an address that is a member's or this VM's own is left out (a member gets the
   * edit once, as a member). What they do with it is theirs: every diff is authenticated, checked
   * and applied or refused by its receiver as a member's would be. Used by a manager while its
   * recovery is under way, for the resumed ODs of the other recoveries in hand
   * (lib/recovery/role-catch-up.ts sendEditsToBackupsInHand). Returns the function that removes it.
   */
  addEditDestinations(source: () => readonly Peer[]): () => void {
    // A function of its own per call, so the same source added twice is removed once per call.
    const entry = () => source();
    this.editDestinations.add(entry);
    return () => {
      this.editDestinations.delete(entry);
    };
  }

  /** The edit destinations besides `members` (addEditDestinations), each address once. */
  private editDestinationsNow(members: readonly Peer[]): Peer[] {
    if (this.editDestinations.size === 0) return [];
    const taken = new Set([this.identity.address, ...mapList(members, (m) => m.address)]);
    const out: Peer[] = [];
    for (const source of this.editDestinations) {
      let list: readonly Peer[];
      try {
        list = source();
      } catch (e) {
        // The edit is applied here already: it goes to the members whatever a source does.
        this.safeEmit('warning', `edit destinations: ${(e as Error).message}`);
        continue;
      }
      for (const p of list) {
        if (taken.has(p.address)) continue;
        taken.add(p.address);
        out.push({ hostname: p.hostname, address: p.address });
      }
    }
    return out;
  }

  /**
   * Rotate this VM's key without downtime: a new key is made beside the old one, the group record
   * is changed to publish it in a diff signed by the old key (which every peer holds), and only
   * then is the new key used and the old file removed. Resolves with the new public key.
   */
  async rotateKey(): Promise<string> {
    const have = this.replica.get('group', this.identity.hostname);
    if (!have) throw new EditError(`${this.identity.hostname} has no group record to publish a key in`);
    const next = prepareRotation(this.folder, this.identity.hostname);
    // The X25519 key is rotated with it, published in the same change (when it is published at all).
    const published = this.dhKeyToPublish(have) !== '-';
    const nextDh = this.dh ? prepareRotation(this.folder, this.identity.hostname, X25519) : undefined;
    const record = toMember({ ...fromMember(have), publicKey: next.publicKey, dhKey: published && nextDh ? nextDh.publicKey : '-' });
    await this.edit({ file: 'group', op: 'Mod', before: have, record });
    // The old key endorses the new one: the next diffs of this record carry it, so a peer that
    // still holds a key before the old one follows (./key-chain.ts).
    const endorsement = endorseKey(this.key, next.publicKey);
    this.key = commitRotation(this.folder, this.identity.hostname);
    if (nextDh) this.dh = commitRotation(this.folder, this.identity.hostname, X25519);
    this.keyChain = extendKeyChain(this.folder, this.identity.hostname, this.keyChain, endorsement);
    // This VM's other entries are signed again under the new key: a peer that learns them later
    // (a newcomer) can check them once the old key is no longer visible in the group record's own
    // proof (a later change of the record replaces that proof). The record keeps its proof, signed
    // by the old key: that is what holders of the old key check the change against. Group and
    // problem entries that carry their diff keep it: the rules at merge read its time and its
    // edit (docs/security.md rule 7), and the old key stays listed in this VM's chain of
    // rotations, which receivers accept for entries older than its record (entry-verify.ts K2).
    const me = this.identity.hostname;
    const keepsDiff = (e: { file: string; proof?: EntryProof }) => (e.file === 'group' || e.file === 'problem') && e.proof?.d !== undefined;
    this.replica.prove(me, (e) => signEntry(this.key, e.file, e.key, e.value, e.lamport), (e) => !(e.file === 'group' && e.key === me) && !keepsDiff(e));
    await this.disk.save([]);
    this.log.write('applied', `key of ${this.identity.hostname} rotated`, { publicKey: next.publicKey });
    return next.publicKey;
  }

  /**
   * Revoke a member (a compromised VM cut out): its group record is deleted, so no receiver knows
   * its key any more and everything it signs is refused. Its own diffs cannot bring it back without
   * the cluster secret: rotate the secret too (docs/security.md).
   */
  async revoke(hostname: string): Promise<EditResult> {
    const me = this.identity.hostname;
    if (hostname === me) throw new EditError('a VM does not revoke itself');
    const have = this.replica.get('group', hostname);
    if (!have) throw new EditError(`${JSON.stringify(hostname)} is not in the group file`);
    // The edit authority rules (G2) let only a manager of a VM delete its record, with a dated
    // problem record of its own: revocation is a failure declared by the operator.
    const managers = managersOf(this.replica.records('group'), hostname);
    if (!managers.includes(me)) throw new EditError(`revoke ${hostname} from one of its managers (${managers.join(' ')}), not from ${me}`);
    const before = this.replica.get('problem', hostname);
    const record = toProblem({ target: hostname, detectedBy: me, kind: 'service', status: 'failed', backup: '-', since: new Date().toISOString(), note: 'revoked by the operator' });
    await this.edit(before ? { file: 'problem', op: 'Mod', before, record } : { file: 'problem', op: 'Add', record });
    return this.edit({ file: 'group', op: 'Del', record: have });
  }

  /** An admin call to another VM's runtime, sealed and signed by this VM (lib/sem/admin-call.ts). */
  sealAdminCall(path: string, to: AdminCallTarget, payload: unknown): SealedAdminCall {
    // During a secret rotation, under the previous secret: every VM accepts it until the window
    // ends (as its current secret, or as its previous one), an OD suspended before the rotation too.
    return sealAdminCall(this.previousSecret() ?? this.secret, this.key, path, to, payload);
  }

  /**
   * Check an admin call received by this runtime (addressed to this VM at one of `addresses`):
   * the verified envelope, or AdminCallRefused (logged as a refusal). A signer whose key this
   * replica does not know yet (an OD resumed with files older than the caller's key) is checked
   * again after one catch-up with the peers.
   */
  async openAdminCall(path: string, headers: Record<string, unknown>, body: string, remote: string, addresses: string[]): Promise<AdminCallEnvelope> {
    const check = () =>
      openAdminCall(path, headers, body, {
        secrets: [this.secret, this.previousSecret()].filter((s): s is string => s !== undefined),
        hostname: this.identity.hostname,
        addresses: [this.identity.address, ...addresses],
        group: (h) => this.replica.get('group', h),
        nonces: ReplicatedStore.adminNonces,
      });
    try {
      let call: AdminCallEnvelope;
      try {
        call = check();
      } catch (e) {
        if (!(e instanceof AdminCallRefused) || !e.unknownKey || this.stopped) throw e;
        await this.syncAll();
        call = check();
      }
      // Durable before the call is acted on: a replay after a restart of this runtime is refused too.
      try {
        this.adminJournal.record(call.nonce, ReplicatedStore.adminNonces.until(call.nonce) ?? Date.now() + 2 * LIMITS.syncFreshMs);
      } catch (e) {
        throw new AdminCallRefused(`refused: the call's nonce could not be recorded (${(e as Error).message})`, 503);
      }
      return call;
    } catch (e) {
      this.refused(remote, `admin call ${path}: ${(e as Error).message}`);
      throw e;
    }
  }

  /** This VM's public key, as published in its group record. */
  get publicKey(): string {
    return this.key.publicKey;
  }

  /** The key a member's group record publishes, or undefined (no record, or none published). */
  private publishedKey(hostname: string): string | undefined {
    const r = this.replica.get('group', hostname);
    const k = r ? fromMember(r).publicKey : '-';
    return k === '-' ? undefined : k;
  }

  /**
   * Check that a message claiming to come from `claimed` was signed by the key its group record
   * publishes. A VM without a published key may only publish its own: a diff that adds (or
   * completes) its own group record with a key, signed by that key (the cluster secret admits the
   * key), and, while it joins, digest requests.
   */
  private authenticate(claimed: string, ctx: RouteContext, opts: { join?: Diff; readOnly?: boolean } = {}): void {
    if (!this.secure) return;
    const sig = parseSignature(ctx.signature);
    if (!sig) throw new ProtocolError(`refused: a message from ${claimed} without a VM signature`, 401);
    if (sig.signer !== claimed) throw new ProtocolError(`refused: signed by ${sig.signer} but claims to come from ${claimed}`, 401);
    const key = this.publishedKey(claimed);
    if (key) {
      if (verifyMessage(key, ctx.label, ctx.body, sig.sig)) return;
      const prev = this.previousKeys.get(claimed);
      if (prev && prev.until > Date.now() && verifyMessage(prev.key, ctx.label, ctx.body, sig.sig)) return;
      throw new ProtocolError(`forged message: not signed by the key ${claimed} publishes in the group file`, 401);
    }
    // One record only: a batch never speaks for a VM whose key is not published yet.
    const j = opts.join;
    if (j && !(j as WireDiff).more?.length && j.file === 'group' && j.op !== 'Del' && j.record[0] === claimed) {
      const anchor = this.anchors.get(claimed);
      if (anchor) {
        // A VM whose key the operator gave (and whose record this VM does not hold with a key):
        // that key, or where its chain of rotations leads (./key-anchors.ts).
        const followed = followKeyChain(claimed, keyChainOf(ctx.body), [anchor]);
        if ([anchor, followed].some((k) => k && verifyMessage(k, ctx.label, ctx.body, sig.sig))) return;
        throw new ProtocolError(`refused: ${claimed}'s group record is not signed by the key the anchors file gives for it (${anchorsFile(this.folder)})`, 401);
      }
      const offered = fromMember(j.record).publicKey;
      if (offered !== '-' && verifyMessage(offered, ctx.label, ctx.body, sig.sig)) return;
    }
    if (opts.readOnly) return;
    throw new ProtocolError(`refused: ${claimed} publishes no key in the group file (a VM first adds its own group record with its key)`, 401);
  }

  /** A diff posted to this VM, or relayed to it (`checked`: decoded and authenticated by onRelay). */
  private async onDiff(ctx: RouteContext, checked?: WireDiff): Promise<Reply & { ready: Promise<unknown>; afterSend: () => void }> {
    const remote = ctx.remote;
    const diff = checked ?? decodeDiff(ctx.body);
    const all = diffsOf(diff);
    // Each record's line is made once: the refusals, both log lines and the change event share it.
    const lines = mapList(all, (d) => formatDiffLine(d));
    const line = lines.join(' + ');
    if (diff.origin === this.identity.hostname) throw new ProtocolError(`refused ${line}: it claims to come from this VM`, 409);
    if (!checked) this.authenticate(diff.origin, ctx, { join: diff });
    const floor = this.guard.max(diff.origin);
    if (floor - diff.seq > LIMITS.maxSeqJump) {
      // An origin never steps back this far: what this VM holds for it was poisoned (a forged
      // sequence number accepted before the bound existed). Its own diff repairs it.
      const r = `repaired the sequence numbers of ${diff.origin}: ${floor} is more than ${LIMITS.maxSeqJump} above its diff #${diff.seq}`;
      this.guard.reset(diff.origin, diff.seq - 1);
      this.replica.seqs[diff.origin] = diff.seq - 1;
      this.log.write('repaired', r, { from: remote });
      this.safeEmit('warning', r);
    }
    const replay = this.guard.check(diff.origin, diff.seq);
    if (replay) {
      // Refused either way, but say whether this VM already holds the diff's effect: a diff that
      // raced with a digest exchange carrying the same edit is not lost, and its sender may count
      // this answer as an acknowledgement (after the state is on disk).
      const contained = all.every((d) => this.replica.contains(d));
      if (contained) await this.disk.save([]);
      throw new ProtocolError(replay, 409, { contained });
    }
    const known = this.guard.max(diff.origin);
    if (known > 0 && diff.seq > known + LIMITS.maxSeqJump) {
      throw new ProtocolError(`refused ${line}: sequence number ${diff.seq} jumps more than ${LIMITS.maxSeqJump} above ${known}, the highest known from ${diff.origin}`, 422);
    }
    // Every record of a batch is judged as if the earlier ones had arrived before it; one refused
    // record refuses the batch (nothing of it is applied).
    const denied = batchAuthorityRefusal(diff.origin, all, { get: (f, k) => this.replica.get(f, k), records: (f) => this.replica.records(f) });
    if (denied) throw new ProtocolError(`refused ${line}: ${all.length > 1 ? `record ${denied.index + 1} of ${all.length}: ` : ''}${denied.reason}`, 403);
    const gap = known > 0 && diff.seq > known + 1;
    this.guard.accept(diff.origin, diff.seq);
    all.forEach((d, i) => this.log.write('received', lines[i], { origin: d.origin, seq: d.seq, lamport: d.lamport, from: remote }));
    // Applied in one turn, saved as one journal line: all of the batch or, after a crash, none.
    // The origin's signed bytes stay with the entries: anti-entropy ships them as their proof.
    const proof: EntryProof | undefined = this.secure && ctx.signature ? { d: ctx.body, s: ctx.signature } : undefined;
    const changed = mapList(all, (d) => this.replica.apply(d, proof).length > 0);
    const saved = this.disk.save(new Set(all.filter((_, i) => changed[i]).map((d) => d.file)));
    // The answer is known now: the server prepares it (signs, seals) while the journal line
    // becomes durable, and writes it only once it is. What only reports the diff (the log, the
    // change event and its listeners) runs after the answer has gone.
    return {
      status: 200,
      body: { ok: true, applied: changed.some(Boolean) },
      ready: saved,
      afterSend: () => {
        all.forEach((d, i) => {
          if (!changed[i]) return;
          this.log.write('applied', lines[i], { origin: d.origin, seq: d.seq, lamport: d.lamport });
          this.emitChange(d, false, 'diff', lines[i]);
        });
        this.peerOk(diff.origin);
        this.pacer.diffApplied();
        // Diffs from this origin were missed (this VM was down or cut off): catch up now, not at
        // the next periodic exchange.
        if (gap) this.syncSoon(diff.origin);
      },
    };
  }

  /**
   * A diff to apply here and pass on to a subtree (./fanout.ts). The relay message is signed by its
   * sender (`from`: the origin, or the relay above); the diff inside is its origin's bytes with its
   * origin's signature, checked here exactly as a direct diff and passed on unchanged, so a relay
   * can never speak for the origin (each receiver checks the origin's signature again). The answer,
   * the subtree's acknowledgements, is signed by this VM (the server signs every answer). Subtree
   * members are reached at the addresses of this VM's group file, never at addresses a message names.
   */
  private async onRelay(ctx: RouteContext) {
    const msg = decodeRelay(ctx.body);
    const inner: RouteContext = { body: msg.diff, remote: ctx.remote, label: `POST ${DIFF_PATH}`, signature: msg.signature, version: ctx.version };
    const diff = decodeDiff(msg.diff);
    // A joining VM's own first diff may reach a relay from the VM itself: the join rule then.
    this.authenticate(msg.from, ctx, { join: msg.from === diff.origin ? diff : undefined });
    // The origin's signature before anything is passed on: a forged diff goes nowhere.
    this.authenticate(diff.origin, inner, { join: diff });
    const known = new Map(this.peers().map((p) => [p.hostname, p]));
    const subtree = msg.subtree.filter((h) => known.has(h) && h !== diff.origin).map((h) => known.get(h)!);
    // Passed on at once, applied here meanwhile: each receiver validates the diff for itself.
    const passed = this.fanout.send({ body: msg.diff, signature: msg.signature }, subtree);
    try {
      const applied = await this.onDiff(inner, diff);
      await applied.ready;
      applied.afterSend();
    } catch (e) {
      // Already here (raced with anti-entropy): still acknowledged. Anything else: this relay
      // failed, and its sender reaches the subtree again directly (they answer "contained").
      if (!(e instanceof ProtocolError && e.details.contained === true)) {
        await passed;
        throw e;
      }
    }
    const r = await passed;
    const unknown = msg.subtree.filter((h) => !known.has(h) && h !== this.identity.hostname);
    return {
      status: 200,
      body: {
        acked: r.acked.map((a) => ({ peer: a.peer })),
        failed: [...r.failed.map((f) => ({ peer: f.peer, error: f.error })), ...unknown.map((peer) => ({ peer, error: `not in the group file of relay ${this.identity.hostname}` }))],
      },
    };
  }

  /** A sync request seen before (same nonce) is refused. */
  private checkNonce(msg: { nonce: string; ts: number }): void {
    const why = this.nonces.admit(msg.nonce, msg.ts);
    if (why) throw new ProtocolError(why, 409);
  }

  private onDigest(ctx: RouteContext) {
    const msg = decodeDigest(ctx.body);
    this.authenticate(msg.from, ctx, { readOnly: true });
    this.checkNonce(msg);
    const mine = this.replica.digest();
    this.peerOk(msg.from);
    if (msg.digest === mine) return { status: 200, body: { digest: mine } };
    return { status: 200, body: { digest: mine, snapshot: this.wireSnapshot(this.replica.snapshot()) } };
  }

  /**
   * A snapshot pushed by a peer (full, or the entries a summary exchange found missing here).
   * From a VM whose key this VM does not know yet, the join rule applies as to a diff: signed by
   * the key its own group record in the snapshot offers, and then only that record is merged.
   * Without this, a VM whose join diff reached nobody (it started while the group file it got
   * from its seeds was still empty) could never make itself known: its pushes would be refused
   * and its peers do not pull from a VM that is not in their group file.
   */
  private async onSnapshot(ctx: RouteContext) {
    const msg = decodeSnapshot(ctx.body);
    const own = msg.snapshot.entries.find((e) => e[0] === 'group' && e[1] === msg.from && e[2]);
    const join: Diff | undefined = own ? { file: 'group', op: 'Add', record: own[2]!, origin: msg.from, seq: 0, lamport: own[3] } : undefined;
    this.authenticate(msg.from, ctx, { join });
    this.checkNonce(msg);
    if (this.secure && !this.publishedKey(msg.from)) {
      // Admitted by the join rule: its own group record only.
      msg.snapshot.entries = [own!];
      msg.snapshot.seqs = {};
    }
    // It changed this replica: a difference is travelling, carry it on (./anti-entropy.ts).
    if ((await this.mergeSnapshot(msg.snapshot, msg.from)) > 0) this.spreader.changed(msg.from);
    this.peerOk(msg.from);
    return { status: 200, body: { digest: this.replica.digest() } };
  }

  /** Merge a snapshot (full or partial) from `from`; resolves with the number of keys it changed. */
  private async mergeSnapshot(snapshot: ReturnType<typeof validateSnapshot>, from: string): Promise<number> {
    // Sequence numbers that jump further than the bound above what this VM knows of their origin
    // are not taken (they would make the origin's next diffs look like replays); the records are.
    for (const [origin, seq] of Object.entries(snapshot.seqs)) {
      const known = origin === this.identity.hostname ? Math.max(this.disk.ownSeq, this.guard.max(origin)) : this.guard.max(origin);
      if (known > 0 && seq > known + LIMITS.maxSeqJump) {
        delete snapshot.seqs[origin];
        this.refused(from, `snapshot from ${from}: sequence number ${seq} of ${origin} jumps more than ${LIMITS.maxSeqJump} above ${known}; not taken`);
      }
    }
    snapshot.entries = this.authorisedEntries(snapshot.entries, from);
    if (this.secure) this.boundSeqsByProofs(snapshot);
    const changes = this.replica.merge(snapshot);
    for (const [origin, seq] of Object.entries(snapshot.seqs)) this.guard.raise(origin, seq);
    if (this.secure) this.markMergedSeqs(snapshot.entries);
    await this.disk.save(new Set(changes.map((c) => c.file)));
    for (const c of changes) this.emitKeyChange(c, from);
    return changes.length;
  }

  /**
   * The (origin, seq) of each merged entry's proof (its origin's signed diff) counts as received,
   * as if the diff had come live: a replay of it is then refused by the replay guard (409), as a
   * replay of a live diff is, whatever path the original came by (docs/security.md, rule 3).
   * Durable as the live path is: the origin's highest number goes into the replica's numbers,
   * saved with the merged entries, and is the guard's floor after a restart. The numbers are
   * signed by their origin (the proof was verified), so no sender can raise them for another.
   * Only a diff this VM now holds whole counts: a pull carries the keys that differed when the
   * partner answered the summary, with their values when it answers the pull, so it can bring one
   * record of a batch made in between and not the others. Marked received, that batch's live diff
   * was refused as a replay without its effect held here (409, not contained: not acknowledged,
   * the rest left to anti-entropy). Seen in bench:failover, two at once: a backup pulled the other
   * manager's `recovered` from it and not the same commit's group Add, and showed the other backup
   * 184 ms after the first VM did. Left unmarked, the live diff is applied (what is held already
   * changes nothing).
   */
  private markMergedSeqs(entries: SnapshotEntry[]): void {
    const whole = new Map<EntryProof, boolean>();
    for (const e of entries) {
      const d = proofEdit(e);
      if (!d || d.origin === this.identity.hostname || d.seq < 1) continue;
      let held = whole.get(e[5]!);
      if (held === undefined) whole.set(e[5]!, (held = proofDiffs(e[5]!)!.every((x) => this.replica.contains(x))));
      if (!held) continue;
      this.guard.accept(d.origin, d.seq);
      this.replica.seqs[d.origin] = Math.max(this.replica.seqs[d.origin] ?? 0, d.seq);
    }
  }

  /**
   * A snapshot's sequence numbers are its sender's word, not their origins': another origin's is
   * taken only as far as this VM already knows it or a merged entry's proof (its origin's signed
   * diff) shows it, so an insider cannot raise another VM's floor and have its next diffs refused
   * here as replays (docs/security.md, rule 2). A floor left lower only lets old diffs of that
   * origin through the sequence check: their time (10 min) and the Lamport order still make them
   * change nothing. This VM's own number is taken as given (it only makes it skip numbers).
   */
  private boundSeqsByProofs(snapshot: { seqs: Record<string, number>; entries: SnapshotEntry[] }): void {
    const shown = new Map<string, number>();
    for (const e of snapshot.entries) {
      const d = proofEdit(e);
      if (d) shown.set(d.origin, Math.max(shown.get(d.origin) ?? 0, d.seq));
    }
    for (const [origin, seq] of Object.entries(snapshot.seqs)) {
      if (origin === this.identity.hostname) continue;
      const cap = Math.max(this.guard.max(origin), shown.get(origin) ?? 0);
      if (seq <= cap) continue;
      if (cap > 0) snapshot.seqs[origin] = cap;
      else delete snapshot.seqs[origin];
    }
  }

  /**
   * The entries of a snapshot (full, partial or a pull's answer) that may be merged: each entry
   * newer than what this VM holds must carry its origin's proof, signed with a key its origin
   * publishes (entry-verify.ts; with wire security on), and is then checked against the edit
   * authority rules as they apply at merge (edit-authority.ts mergeRefusal); a refused one is left
   * out and logged (rate-limited), the rest are merged. A refused entry keeps the digests apart:
   * the partner is asked again at later rounds and refused again, which costs a summary, not a
   * divergence.
   */
  private authorisedEntries(all: SnapshotEntry[], from: string): SnapshotEntry[] {
    const winning = (e: SnapshotEntry) => {
      const v = this.replica.version(e[0], e[1]);
      return !v || compareVersions({ lamport: e[3], origin: e[4] }, v) > 0;
    };
    // Entries that do not win change nothing here; the others need their origin's proof.
    let entries = all.filter(winning);
    if (this.secure) {
      const held = (h: string) => {
        const e = this.replica.entries([['group', h]])[0];
        return e ? { value: e[2], lamport: e[3], proof: e[5] } : undefined;
      };
      entries = provenEntries(entries, held, (e, why) => this.refused(from, `entry from ${from} not merged: ${describeEntry(e)}: ${why}`), this.anchors);
    }
    // The view the rules read: this VM's group and problem files overlaid with what wins here.
    const overlay = { group: new Map<string, RecordFields | null>(), problem: new Map<string, RecordFields | null>() };
    for (const e of entries) if ((e[0] === 'group' || e[0] === 'problem') && winning(e)) overlay[e[0]].set(e[1], e[2]);
    let deleted: RecordFields[] | undefined;
    const view: AuthorityView = {
      get: (f, k) => (overlay[f].has(k) ? overlay[f].get(k) ?? undefined : this.replica.get(f, k)),
      records: (f) => {
        const out = this.replica.records(f).filter((r) => !overlay[f].has(recordKey(f, r)));
        for (const r of overlay[f].values()) if (r) out.push(r);
        return out;
      },
      // The problem records deletions removed, from the deletions' proofs (verified above when
      // they come in this merge, when they were merged or applied when they are held): what wins
      // in this merge overrides what is held. Read once per merge, on first use.
      deletedProblems: () => (deleted ??= this.deletedProblems(entries.filter((e) => e[0] === 'problem' && winning(e)))),
    };
    const ring = this.replica.records('group');
    return entries.filter((e) => {
      const [file, key, value, , origin] = e;
      if ((file !== 'group' && file !== 'problem') || !winning(e)) return true;
      // Claims are judged at the time of the entry's signed diff (none without one, wire security on).
      const at = this.secure ? (proofTime(e) ?? null) : undefined;
      const denied = mergeRefusal(origin, file, key, value, this.replica.get(file, key), view, ring, proofEdit(e), at);
      if (denied) this.refused(from, `entry from ${from} not merged: ${denied}`);
      return !denied;
    });
  }

  /** The problem records removed by the deletions among `incoming` and, for the other keys, held. */
  private deletedProblems(incoming: SnapshotEntry[]): RecordFields[] {
    const tombs = new Map<string, SnapshotEntry>();
    for (const e of this.replica.entries(this.replica.versions('problem').map(([k]): [FileName, string] => ['problem', k]))) tombs.set(e[1], e);
    for (const e of incoming) tombs.set(e[1], e);
    const out: RecordFields[] = [];
    for (const tomb of tombs.values()) {
      if (tomb[2]) continue;
      const d = proofEdit(tomb);
      if (d && d.op === 'Del') out.push(d.record);
    }
    return out;
  }

  /** One anti-entropy round with one peer: pull its state if ours differs, push ours if it lacks.
   * True when it changed this replica or the peer's. */
  async syncWith(target: Target, name = target.address): Promise<boolean> {
    const digest = this.replica.digest();
    const msg = { v: 1, type: 'digest', from: this.identity.hostname, digest, ...freshness() };
    const reply = (await this.client.post(target, '/p2p/sem/digest', JSON.stringify(msg), { maxAnswerBytes: this.snapshotBytes })) as {
      digest?: string;
      snapshot?: unknown;
    };
    let changed = false;
    if (reply?.snapshot) changed = (await this.mergeSnapshot(validateSnapshot(reply.snapshot), name)) > 0;
    if (reply?.digest !== this.replica.digest()) {
      const snap = { v: 1, type: 'snapshot', from: this.identity.hostname, snapshot: this.wireSnapshot(this.replica.snapshot()), ...freshness() };
      const after = (await this.client.post(target, '/p2p/sem/snapshot', JSON.stringify(snap))) as { digest?: string } | undefined;
      if (after?.digest !== reply?.digest) changed = true;
    }
    return changed;
  }

  /** A summary (./anti-entropy.ts): changes nothing here, so it is fresh (time + nonce) and signed. */
  private onSummary(ctx: RouteContext) {
    const msg = decodeSummary(ctx.body);
    this.authenticate(msg.from, ctx, { readOnly: true });
    this.checkNonce(msg);
    this.peerOk(msg.from);
    return { status: 200, body: answerSummary(this.replica, msg) };
  }

  /** A pull: the entries asked for; fresh and signed like a summary. */
  private onPull(ctx: RouteContext) {
    const msg = decodePull(ctx.body);
    this.authenticate(msg.from, ctx, { readOnly: true });
    this.checkNonce(msg);
    this.peerOk(msg.from);
    return { status: 200, body: { snapshot: this.wireSnapshot(answerPull(this.replica, msg)) } };
  }

  /** Open the SEM stream to a VM that is about to be sent edits that matter, before the first of
   * them (SemClient.warm: a recovery's backup, lib/recovery/role-catch-up.ts warmBackupStreams). */
  warmStream(target: Target): boolean {
    if (this.stopped) return false;
    return this.client.warm(target);
  }

  /**
   * One anti-entropy exchange with one peer, shipping only what differs (./anti-entropy.ts). Its
   * answers are signed by the peer asked (SemClient checks them); what they carry goes through the
   * same merge as a snapshot, with its entries' authority checked (mergeSnapshot).
   */
  async exchange(target: Target, name = target.address): Promise<boolean> {
    const me = this.identity.hostname;
    const reply = validateSummaryReply(await this.client.post(target, SUMMARY_PATH, encodeSummary(me, this.replica), { maxAnswerBytes: this.snapshotBytes }));
    if (reply.digest === this.replica.digest() || !reply.versions) return false;
    const { pull, push } = plan(this.replica, reply.versions);
    // The pull and the push are independent (both planned from the summary's answer): in parallel,
    // so an exchange with a difference costs two round trips, not three.
    const pulled = async () => {
      if (!pull.length) return false;
      const r = (await this.client.post(target, PULL_PATH, encodePull(me, pull), { maxAnswerBytes: this.snapshotBytes })) as { snapshot?: unknown };
      return (await this.mergeSnapshot(validateSnapshot(r?.snapshot), name)) > 0;
    };
    const pushed = async () => {
      if (!push.length) return false;
      const snap = { v: 1, type: 'snapshot', from: me, snapshot: this.wireSnapshot(partialSnapshot(this.replica, push)), ...freshness() };
      // The peer answers with its digest after the merge: changed if it took anything.
      const after = (await this.client.post(target, '/p2p/sem/snapshot', JSON.stringify(snap))) as { digest?: string } | undefined;
      return after?.digest !== reply.digest;
    };
    const [a, b] = await Promise.all([pulled(), pushed()]);
    return a || b;
  }

  /**
   * Catch up with one peer in the version it speaks: a summary exchange with a version-2 peer (or
   * one not heard yet), a full digest exchange with a version-1 peer; a peer that answers a
   * summary with "no route" (404: a version-1 store) is marked version 1 and gets the digest
   * exchange at once. True when it changed this replica or the peer's.
   */
  private async catchUpWith(target: Target, name: string): Promise<boolean> {
    if (this.version === 1 || this.peerVersions.get(target.address) === 1) return this.syncWith(target, name);
    try {
      return await this.exchange(target, name);
    } catch (e) {
      if (!(e instanceof SemClientError && e.status === 404)) throw e;
      this.peerVersions.set(target.address, 1);
      return this.syncWith(target, name);
    }
  }

  /** Catch up with a member by name, noting whether it answered; true when a replica changed. */
  private async tryCatchUp(name: string): Promise<boolean> {
    const peer = this.peers().find((p) => p.hostname === name);
    if (!peer || this.stopped) return false;
    try {
      const changed = await this.catchUpWith({ address: peer.address, port: this.port }, name);
      this.peerOk(name);
      return changed;
    } catch (e) {
      this.peerFailed(name, (e as Error).message);
      return false;
    }
  }

  /** One round of anti-entropy: an exchange with this round's partner (the ring successor or a
   * random member, in turn), and follow-ups when it changed something; with the seeds instead
   * while the group file knows no peer (a VM joining). Version 1: a digest exchange with every
   * peer, as that release did. */
  async round(): Promise<void> {
    if (this.version === 1) return this.syncAll();
    const round = this.rounds++;
    const peers = this.peers();
    // Members never heard from (and not known down) are preferred as random partners (./anti-entropy.ts).
    const unheard = new Set(peers.filter((p) => !this.peerVersions.has(p.address) && !this.knownDown(p.hostname)).map((p) => p.hostname));
    const name = roundPartner(this.identity.hostname, peers.map((p) => p.hostname), round, Math.random, unheard);
    if (!name) return this.syncAll();
    const strangers = round % SEED_ROUNDS === SEED_ROUNDS - 1 ? this.strangerSeeds() : [];
    const seed = strangers[Math.floor(round / SEED_ROUNDS) % Math.max(1, strangers.length)];
    await Promise.all([
      this.tryCatchUp(name).then((changed) => changed && this.spreader.changed(name)),
      seed &&
        this.catchUpWith(seed, seed.address).then(
          (changed) => changed && this.spreader.changed(seed.address),
          (e: Error) => this.peerFailed(seed.address, e.message),
        ),
    ]);
    // The peers heard this round may be the last ones the wire version rules wait for (dhKeyToPublish).
    this.publishKey();
    this.updateStatus();
  }

  /** Seeds whose address is not that of this VM nor of any member of the group file (fenced ones
   * included): see SEED_ROUNDS. */
  private strangerSeeds(): Target[] {
    const known = new Set(this.replica.records('group').map((r) => fromMember(r).address));
    known.add(this.identity.address);
    return this.seeds.filter((s) => !known.has(s.address));
  }

  /** At start: a full exchange with every seed and peer in a small cluster, with the seeds and
   * this round's partners in a large one. */
  private async join(): Promise<void> {
    if (this.version === 1 || this.peers().length + this.seeds.length <= JOIN_ALL_MAX) return this.syncAll();
    if (this.seeds.length) await this.syncAll([]);
    await this.round();
  }

  /** Full exchange with every seed and every peer of the group (or only the seeds and the given
   * peers); failures only mark the peer. */
  async syncAll(only?: { hostname: string; address: string }[]): Promise<void> {
    const targets = new Map<string, { target: Target; name: string }>();
    for (const s of this.seeds) targets.set(`${s.address}:${s.port}`, { target: s, name: s.address });
    for (const p of only ?? this.peers()) targets.set(`${p.address}:${this.port}`, { target: { address: p.address, port: this.port }, name: p.hostname });
    targets.delete(`${this.identity.address}:${this.port}`);
    await Promise.all(
      Array.from(targets.values()).map(async ({ target, name }) => {
        try {
          await this.syncWith(target, name);
          this.peerOk(name);
        } catch (e) {
          this.peerFailed(name, (e as Error).message);
        }
      }),
    );
    this.updateStatus();
  }

  private scheduleSync(): void {
    if (this.stopped) return;
    this.syncTimer = setTimeout(() => {
      // A periodic round is postponed while fan-out diffs arrive (./anti-entropy.ts, RoundPacer).
      (this.version > 1 && this.pacer.postpone() ? Promise.resolve() : this.round())
        .catch(() => undefined)
        .finally(() => this.scheduleSync());
    }, this.syncIntervalMs);
    this.syncTimer.unref?.();
  }

  private syncSoon(hostname: string): void {
    if (this.pendingSync.has(hostname) || this.stopped) return;
    const t = setTimeout(() => {
      this.pendingSync.delete(hostname);
      const peer = this.peers().find((p) => p.hostname === hostname);
      if (!peer) return;
      this.catchUpWith({ address: peer.address, port: this.port }, hostname).catch((e) => this.peerFailed(hostname, (e as Error).message));
    }, 50);
    this.pendingSync.set(hostname, t);
  }

  /** Make the group file hold this VM's record as configured, with its public key (its state kept). */
  private async joinGroup(): Promise<void> {
    const id = this.identity;
    const have = this.replica.get('group', id.hostname);
    // Keep the record's state (maintenance, fenced): a VM restarted while in maintenance stays so
    // until someone changes it (lib/ops/maintenance.ts); the public key is this VM's own.
    const want = toMember({ ...id, state: have ? fromMember(have).state : 'member', publicKey: this.key.publicKey, dhKey: this.dhKeyToPublish(have) });
    if (sameRecord(have, want)) return;
    // A fence is not undone by a restart (issue 12): a VM marked fenced stays out until an
    // operator re-admits it (lib/monitor/readmit.ts); its heartbeat keeps its service stopped.
    if (have && fromMember(have).state === 'fenced') {
      this.emit('warning', `${id.hostname} is fenced in the group file (replaced): not rejoining until an operator re-admits it`);
      return;
    }
    try {
      await this.edit(have ? { file: 'group', op: 'Mod', before: have, record: want } : { file: 'group', op: 'Add', record: want });
    } catch (e) {
      this.emit('warning', `could not add this VM to the group file: ${(e as Error).message}`);
    }
  }

  /**
   * A VM made a member by another (a backup added by the manager that recovered it) publishes its
   * key in the record it was given, and any VM its X25519 key once the wire version rules allow it
   * (dhKeyToPublish). A record that publishes another key is not overwritten: this VM's messages
   * are then refused everywhere, and it says so.
   */
  private publishKey(): void {
    const have = this.replica.get('group', this.identity.hostname);
    if (!have || this.publishing || this.stopped) return;
    const m = fromMember(have);
    if (m.publicKey !== '-' && m.publicKey !== this.key.publicKey) {
      this.safeEmit('warning', `the group record of ${this.identity.hostname} publishes another key than this VM's (${this.key.file}): peers refuse this VM's messages; rotate or revoke (docs/security.md)`);
      return;
    }
    const dhKey = this.dhKeyToPublish(have);
    if (m.publicKey === this.key.publicKey && m.dhKey === dhKey) return;
    this.publishing = true;
    this.edit({ file: 'group', op: 'Mod', before: have, record: toMember({ ...m, publicKey: this.key.publicKey, dhKey }) })
      .catch((e: Error) => this.safeEmit('warning', `could not publish this VM's key: ${e.message}`))
      .finally(() => (this.publishing = false));
  }

  /**
   * The X25519 key this VM's group record should carry (sem-protocol.ts, version 3's rules): its
   * own once published, or once every serving member (at least one) was heard speaking version 3
   * or later (a release before refuses a record with it); '-' before that, and at wire version 2
   * or below.
   */
  private dhKeyToPublish(have: RecordFields | undefined): string {
    const dh = this.version >= 3 ? this.dh : undefined;
    if (!dh) return '-';
    if (have && fromMember(have).dhKey !== '-') return dh.publicKey;
    // Alone (or not knowing its peers yet: a newcomer whose seeds did not answer) it waits: the
    // members it has not heard of may run an older release, and a VM alone needs no answers.
    const peers = this.peers();
    const all3 = peers.length > 0 && peers.every((p) => (this.peerVersions.get(p.address) ?? 1) >= 3);
    return all3 ? dh.publicKey : '-';
  }

  /** A group record whose key changed: the old key stays acceptable for ROTATION_GRACE_MS. */
  private noteKeyChange(before: RecordFields | null | undefined, after: RecordFields | null | undefined): void {
    if (!before || !after) return;
    const was = fromMember(before).publicKey;
    if (was !== '-' && was !== fromMember(after).publicKey) this.previousKeys.set(before[0], { key: was, until: Date.now() + ROTATION_GRACE_MS });
  }

  private emitChange(diff: Diff, local: boolean, via: ChangeEvent['via'], line = formatDiffLine(diff)): void {
    this.noteChange(diff, local);
    this.emitChangeEvent(diff, local, via, line);
  }

  /** What the store itself keeps track of when a record changes (keys, pair keys, the X25519 key's
   * publication), before any listener hears of it. */
  private noteChange(diff: Diff, local: boolean): void {
    if (diff.file !== 'group') return;
    if (diff.op === 'Mod') this.noteKeyChange(diff.before, diff.record);
    for (const r of [diff.record, diff.before]) if (r) this.answers.forget(recordKey('group', r));
    if (!local && recordKey('group', diff.record) === this.identity.hostname) this.publishKey();
    // Another member came or changed: it may be the last one the X25519 key waited for.
    else if (recordKey('group', diff.record) !== this.identity.hostname) this.publishKeySoon();
  }

  /** The `change` event and its listeners. */
  private emitChangeEvent(diff: Diff, local: boolean, via: ChangeEvent['via'], line: string): void {
    const ev: ChangeEvent = {
      file: diff.file,
      op: diff.op,
      record: diff.record,
      before: diff.before,
      line,
      origin: diff.origin,
      seq: diff.seq,
      lamport: diff.lamport,
      local,
      via,
    };
    this.safeEmit('change', ev);
  }

  private emitKeyChange(c: KeyChange, from: string): void {
    if (c.file === 'group') this.noteKeyChange(c.before, c.after);
    if (c.file === 'group') this.answers.forget(c.key);
    if (c.file === 'group' && c.key === this.identity.hostname) this.publishKey();
    // Another member learned by anti-entropy: it may be the last one the X25519 key waited for.
    else if (c.file === 'group') this.publishKeySoon();
    const op = !c.before ? 'Add' : !c.after ? 'Del' : 'Mod';
    const edit: Edit = op === 'Mod' ? { file: c.file, op, before: c.before!, record: c.after! } : { file: c.file, op, record: (c.after ?? c.before)! };
    const line = formatDiffLine(edit);
    this.log.write('synced', line, { origin: c.version.origin, lamport: c.version.lamport, from });
    this.safeEmit('change', { ...edit, line, origin: c.version.origin, seq: 0, lamport: c.version.lamport, local: false, via: 'sync' } as ChangeEvent);
  }

  /** A listener that throws must not break replication (nor the runtime). */
  private safeEmit(event: string, arg: unknown): void {
    for (const l of this.listeners(event)) {
      try {
        (l as (a: unknown) => void)(arg);
      } catch (e) {
        if (event !== 'warning') this.safeEmit('warning', `a ${event} listener failed: ${(e as Error).message}`);
      }
    }
  }

  private refused(remote: string, reason: string): void {
    this.refusals.refused(remote, reason);
  }

  /** A refusal (or a summary of many) that passed the rate limit: logged and emitted. */
  private reportRefusal(r: RefusalReport): void {
    this.log.write('refused', r.reason, { from: r.from, count: r.count });
    const ev: RefusalEvent = { from: r.from, reason: r.reason, at: Date.now(), ...(r.count !== undefined ? { count: r.count } : {}) };
    this.safeEmit('refused', ev);
  }

  private peerOk(name: string): void {
    this.peerState.set(name, { lastOk: Date.now() });
  }

  private peerFailed(name: string, error: string): void {
    const s = this.peerState.get(name) ?? { lastOk: 0 };
    s.lastError = error;
    s.lastErrorAt = Date.now();
    this.peerState.set(name, s);
  }

  /** The last error of a peer whose last contact failed recently, else undefined. */
  private knownDown(name: string): string | undefined {
    const s = this.peerState.get(name);
    if (!s?.lastError || !s.lastErrorAt) return undefined;
    return Date.now() - s.lastErrorAt < KNOWN_DOWN_MS ? s.lastError : undefined;
  }

  /** Counts of everything this store keeps between edits (memory check, issue 16): each must be
   * bounded by the cluster's size and key space, never grow with the number of edits. */
  retained(): Record<string, number> {
    const r = this.replica.retained();
    const g = this.guard.retained();
    const l = this.log.retained();
    const d = this.disk.retained();
    const c = this.client.retained();
    return {
      records: r.records,
      tombstones: r.tombstones,
      unjournaled: r.unjournaled,
      seqOrigins: r.origins,
      guardOrigins: g.origins,
      guardWindow: g.window,
      logBufferedBytes: l.bufferedBytes,
      dirtyFiles: d.dirtyFiles,
      textsBehind: d.textsBehind,
      peerStates: this.peerState.size,
      pendingSyncs: this.pendingSync.size,
      sockets: c.sockets,
      pairKeys: this.answers.retained(),
      queuedRequests: c.queued,
      streams: c.streams,
      streamRequests: c.inFlight,
      listeners: this.eventNames().reduce((n, e) => n + this.listenerCount(e), 0),
    };
  }

  /** Which peers answered at the last contact: the store's status. */
  peerHealth(): { peer: string; ok: boolean; error?: string }[] {
    return mapList(this.peers(), (p) => {
      const s = this.peerState.get(p.hostname);
      return { peer: p.hostname, ok: !!s && !s.lastError, error: s?.lastError };
    });
  }

  private updateStatus(): void {
    if (this.stopped) return;
    const health = this.peerHealth();
    const down = health.filter((h) => !h.ok);
    const me = this.identity.hostname;
    if (health.length === 0) this.setStatus('ok', `${me}: alone in the group`, { id: 'alone', values: { me } });
    else if (down.length === 0) this.setStatus('ok', `${me}: ${health.length} peers in sync`, { id: 'inSync', values: { me, peers: health.length } });
    else {
      const values = { me, down: down.length, peers: health.length, names: down.map((d) => d.peer).join(' ') };
      this.setStatus('degraded', `${me}: ${values.down}/${values.peers} peers unreachable (${values.names})`, { id: 'unreachable', values });
    }
  }

  private setStatus(state: StoreStatus['state'], text: string, message?: StoreStatus['message']): void {
    if (this._status.state === state && this._status.text === text) return;
    this._status = { state, text, message };
    this.safeEmit('status', this._status);
  }
}
