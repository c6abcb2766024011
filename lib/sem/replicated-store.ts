// The replicated management file store: this VM's replica of the six files, kept durable on disk,
// edited locally and sent to every peer of the group file as small diffs (SEM), kept convergent by
// anti-entropy (./anti-entropy.ts: two partners a round, only what differs is shipped).
// Implements ClusterFiles, the API every node uses.
import { EventEmitter } from 'events';
import { ADDRESS_RE, FileName, NAME_RE, RecordFields, SCHEMAS, recordKey, validateRecord } from '../records/files';
import type { ChangeEvent, ClusterFiles, Edit, EditResult, Identity, PeerAck, PeerFailure, RefusalEvent } from '../records/cluster-api';
import { formatDiffLine, normalizeEdit } from '../records/diff-line';
import { Diff, KeyChange, Replica, sameRecord } from './replica';
import { DurableFiles } from './durable-files';
import { ReplayGuard } from './replay-guard';
import { operationRecords } from '../records/ring';
import { LIMITS, ProtocolError, decodeDiff, decodeDigest, decodeSnapshot, encodeDiff, validateSnapshot } from './sem-protocol';
import { SemClient, SemClientError, SemServer, Target } from './sem-http';
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
  partners,
  plan,
  validateSummaryReply,
} from './anti-entropy';
import { Fanout, RELAY_LIMIT_BYTES, RELAY_PATH, decodeRelay } from './fanout';

export const DEFAULT_SEM_PORT = 18801;

export interface StoreOptions {
  identity: Identity;
  /** Folder of the management files. */
  folder: string;
  /** SEM port: the same on every VM of the cluster. */
  port?: number;
  /** The cluster secret shared by all VMs (HMAC key). */
  secret: string;
  /** Peers to contact at start before the group file knows any: `address` or `address:port`. */
  seeds?: string[] | string;
  /** Digest exchange period (anti-entropy), ms. */
  syncIntervalMs?: number;
  /** Deadline of one request to a peer, ms. */
  requestTimeoutMs?: number;
  /** Add or update this VM's own group record at start. */
  autoJoin?: boolean;
}

export class EditError extends Error {}
export class ConfigError extends Error {}

export interface StoreStatus {
  state: 'starting' | 'ok' | 'degraded' | 'error' | 'stopped';
  text: string;
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
 * start (as before issue 16); in a larger cluster it joins through its seeds and two partners, and
 * the rounds of anti-entropy bring the rest. */
const JOIN_ALL_MAX = 12;

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
  readonly identity: Identity;
  readonly port: number;
  readonly log: SemLog;
  private readonly replica = new Replica();
  private readonly disk: DurableFiles;
  private readonly guard = new ReplayGuard();
  private readonly client: SemClient;
  private readonly server: SemServer;
  private readonly seeds: Target[];
  private readonly syncIntervalMs: number;
  private readonly autoJoin: boolean;
  private readonly peerState = new Map<string, PeerState>();
  private readonly pendingSync = new Map<string, NodeJS.Timeout>();
  private readonly fanout: Fanout;
  private syncTimer?: NodeJS.Timeout;
  private stopped = false;
  private _status: StoreStatus = { state: 'starting', text: 'starting' };

  constructor(opts: StoreOptions) {
    super();
    this.identity = validateIdentity(opts.identity);
    if (typeof opts.secret !== 'string' || opts.secret.length < 8) {
      throw new ConfigError('the cluster secret is missing or shorter than 8 characters');
    }
    this.port = opts.port ?? DEFAULT_SEM_PORT;
    this.seeds = parseSeeds(opts.seeds, this.port);
    this.syncIntervalMs = Math.max(100, opts.syncIntervalMs ?? 2000);
    this.autoJoin = opts.autoJoin ?? true;
    this.disk = new DurableFiles(opts.folder, this.identity.hostname, this.replica);
    this.disk.loadSync();
    for (const [origin, seq] of Object.entries(this.replica.seqs)) this.guard.raise(origin, seq);
    this.log = new SemLog(opts.folder);
    this.client = new SemClient(
      opts.secret,
      opts.requestTimeoutMs ?? 2000,
      /^\d+\.\d+\.\d+\.\d+$/.test(this.identity.address) ? this.identity.address : undefined,
    );
    this.fanout = new Fanout({
      self: this.identity.hostname,
      port: this.port,
      timeoutMs: opts.requestTimeoutMs ?? 2000,
      post: (target, path, body, timeoutMs) => this.client.post(target, path, body, timeoutMs),
      isContained: (e) => e instanceof SemClientError && e.status === 409 && e.body?.contained === true,
      peerOk: (name) => this.peerOk(name),
      peerFailed: (name, error) => this.peerFailed(name, error),
      knownDown: (name) => this.knownDown(name),
    });
    this.server = new SemServer({
      host: this.identity.address,
      port: this.port,
      secret: opts.secret,
      ping: () => ({ hostname: this.identity.hostname, address: this.identity.address, time: Date.now() }),
      onRefused: (remote, reason) => this.refused(remote, reason),
      routes: {
        '/p2p/sem/diff': { limit: LIMITS.diffBytes, handler: ({ body, remote }) => this.onDiff(body, remote) },
        [RELAY_PATH]: { limit: RELAY_LIMIT_BYTES, handler: ({ body, remote }) => this.onRelay(body, remote) },
        '/p2p/sem/digest': { limit: LIMITS.syncBytes, handler: ({ body }) => this.onDigest(body) },
        '/p2p/sem/snapshot': { limit: LIMITS.syncBytes, handler: ({ body }) => this.onSnapshot(body) },
        [SUMMARY_PATH]: { limit: LIMITS.syncBytes, handler: ({ body }) => this.onSummary(body) },
        [PULL_PATH]: { limit: LIMITS.syncBytes, handler: ({ body }) => this.onPull(body) },
      },
    });
  }

  get folder(): string {
    return this.disk.folder;
  }

  get status(): StoreStatus {
    return this._status;
  }

  /** Listen, bring the text files in line with the state, join the cluster, start anti-entropy. */
  async start(): Promise<void> {
    await this.disk.init();
    try {
      await this.server.listen();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      this.setStatus('error', `cannot listen on ${this.identity.address}:${this.port}: ${err.code ?? err.message}`);
      throw new ConfigError(this._status.text);
    }
    await this.join();
    // If this VM's own state was lost or rolled back, peers still know its last sequence number:
    // never reuse one (peers would refuse the new diffs as replays).
    this.disk.ownSeq = Math.max(this.disk.ownSeq, this.replica.seqs[this.identity.hostname] ?? 0);
    if (this.autoJoin && !this.stopped) await this.joinGroup();
    this.updateStatus();
    this.scheduleSync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.syncTimer);
    for (const t of this.pendingSync.values()) clearTimeout(t);
    this.pendingSync.clear();
    this.client.close();
    await this.server.close();
    await this.disk.save([]).catch(() => undefined);
    await this.disk.close().catch(() => undefined);
    await this.log.close();
    this.setStatus('stopped', 'stopped');
  }

  records(file: FileName): RecordFields[] {
    if (file === 'operation') return operationRecords(this.replica.records('group'));
    return this.replica.records(file);
  }

  get(file: FileName, key: string): RecordFields | undefined {
    return this.records(file).find((r) => recordKey(file, r) === key);
  }

  peers(): { hostname: string; address: string }[] {
    return this.replica
      .records('group')
      .filter((r) => r[0] !== this.identity.hostname)
      .map((r) => ({ hostname: r[0], address: r[1] }));
  }

  /** The digest of this replica: equal on two peers means identical files. */
  digest(): string {
    return this.replica.digest();
  }

  async edit(input: Edit | string): Promise<EditResult> {
    const t0 = performance.now();
    if (this.stopped) throw new EditError('the store is stopped');
    const edit = normalizeEdit(input);
    this.checkPreconditions(edit);
    this.disk.ownSeq += 1;
    const diff: Diff = { ...edit, origin: this.identity.hostname, seq: this.disk.ownSeq, lamport: this.replica.tick() };
    this.guard.accept(diff.origin, diff.seq);
    const changes = this.replica.apply(diff);
    const line = formatDiffLine(edit);
    await this.disk.save([edit.file]);
    this.log.write('applied', line, { origin: diff.origin, seq: diff.seq, lamport: diff.lamport, local: 1 });
    if (changes.length) this.emitChange(diff, true, 'edit');
    const { acked, failed } = await this.broadcast(diff, line);
    return { line, origin: diff.origin, seq: diff.seq, lamport: diff.lamport, acked, failed, ms: performance.now() - t0 };
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

  private async broadcast(diff: Diff, line: string): Promise<{ acked: PeerAck[]; failed: PeerFailure[] }> {
    const { acked, failed } = await this.fanout.send(encodeDiff(diff), this.peers());
    this.log.write('sent', line, {
      origin: diff.origin,
      seq: diff.seq,
      acked: acked.map((a) => `${a.peer}:${a.ms.toFixed(1)}ms`).join(','),
      failed: failed.map((f) => f.peer).join(','),
    });
    this.updateStatus();
    return { acked, failed };
  }

  private async onDiff(body: string, remote: string) {
    const diff = decodeDiff(body);
    const line = formatDiffLine(diff);
    if (diff.origin === this.identity.hostname) throw new ProtocolError(`refused ${line}: it claims to come from this VM`, 409);
    const replay = this.guard.check(diff.origin, diff.seq);
    if (replay) {
      // Refused either way, but say whether this VM already holds the diff's effect: a diff that
      // raced with a digest exchange carrying the same edit is not lost, and its sender may count
      // this answer as an acknowledgement (after the state is on disk).
      const contained = this.replica.contains(diff);
      if (contained) await this.disk.save([]);
      throw new ProtocolError(replay, 409, { contained });
    }
    const gap = this.guard.max(diff.origin) > 0 && diff.seq > this.guard.max(diff.origin) + 1;
    this.guard.accept(diff.origin, diff.seq);
    this.log.write('received', line, { origin: diff.origin, seq: diff.seq, lamport: diff.lamport, from: remote });
    const changes = this.replica.apply(diff);
    await this.disk.save(changes.length ? [diff.file] : []);
    if (changes.length) {
      this.log.write('applied', line, { origin: diff.origin, seq: diff.seq, lamport: diff.lamport });
      this.emitChange(diff, false, 'diff');
    }
    this.peerOk(diff.origin);
    // Diffs from this origin were missed (this VM was down or cut off): catch up now, not at the
    // next periodic exchange.
    if (gap) this.syncSoon(diff.origin);
    return { status: 200, body: { ok: true, applied: changes.length > 0 } };
  }

  /** A diff to apply here and pass on to a subtree (./fanout.ts): answers with the subtree's
   * acknowledgements. Subtree members are reached at the addresses of this VM's group file. */
  private async onRelay(body: string, remote: string) {
    const msg = decodeRelay(body);
    const known = new Map(this.peers().map((p) => [p.hostname, p]));
    const subtree = msg.subtree.filter((h) => known.has(h)).map((h) => known.get(h)!);
    // Passed on at once, applied here meanwhile: each receiver validates the diff for itself.
    const passed = this.fanout.send(msg.diff, subtree);
    try {
      await this.onDiff(msg.diff, remote);
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

  private onDigest(body: string) {
    const msg = decodeDigest(body);
    const mine = this.replica.digest();
    this.peerOk(msg.from);
    if (msg.digest === mine) return { status: 200, body: { digest: mine } };
    return { status: 200, body: { digest: mine, snapshot: this.replica.snapshot() } };
  }

  private async onSnapshot(body: string) {
    const msg = decodeSnapshot(body);
    await this.mergeSnapshot(msg.snapshot, msg.from);
    this.peerOk(msg.from);
    return { status: 200, body: { digest: this.replica.digest() } };
  }

  private async mergeSnapshot(snapshot: ReturnType<typeof validateSnapshot>, from: string): Promise<void> {
    const changes = this.replica.merge(snapshot);
    for (const [origin, seq] of Object.entries(snapshot.seqs)) this.guard.raise(origin, seq);
    await this.disk.save(new Set(changes.map((c) => c.file)));
    for (const c of changes) this.emitKeyChange(c, from);
  }

  /** One anti-entropy round with one peer: pull its state if ours differs, push ours if it lacks. */
  async syncWith(target: Target, name = target.address): Promise<void> {
    const digest = this.replica.digest();
    const msg = { v: 1, type: 'digest', from: this.identity.hostname, digest };
    const reply = (await this.client.post(target, '/p2p/sem/digest', JSON.stringify(msg))) as {
      digest?: string;
      snapshot?: unknown;
    };
    if (reply?.snapshot) await this.mergeSnapshot(validateSnapshot(reply.snapshot), name);
    if (reply?.digest !== this.replica.digest()) {
      const snap = { v: 1, type: 'snapshot', from: this.identity.hostname, snapshot: this.replica.snapshot() };
      await this.client.post(target, '/p2p/sem/snapshot', JSON.stringify(snap));
    }
  }

  private onSummary(body: string) {
    const msg = decodeSummary(body);
    this.peerOk(msg.from);
    return { status: 200, body: answerSummary(this.replica, msg) };
  }

  private onPull(body: string) {
    const msg = decodePull(body);
    this.peerOk(msg.from);
    return { status: 200, body: { snapshot: answerPull(this.replica, msg) } };
  }

  /** One anti-entropy exchange with one peer, shipping only what differs (./anti-entropy.ts). */
  async exchange(target: Target, name = target.address): Promise<void> {
    const me = this.identity.hostname;
    const reply = validateSummaryReply(await this.client.post(target, SUMMARY_PATH, encodeSummary(me, this.replica)));
    if (reply.digest === this.replica.digest() || !reply.versions) return;
    const { pull, push } = plan(this.replica, reply.versions);
    if (pull.length) {
      const r = (await this.client.post(target, PULL_PATH, encodePull(me, pull))) as { snapshot?: unknown };
      await this.mergeSnapshot(validateSnapshot(r?.snapshot), name);
    }
    if (push.length) {
      const snap = { v: 1, type: 'snapshot', from: me, snapshot: partialSnapshot(this.replica, push) };
      await this.client.post(target, '/p2p/sem/snapshot', JSON.stringify(snap));
    }
  }

  /** One round of anti-entropy: an exchange with the ring successor and one random member; with
   * the seeds instead while the group file knows no peer (a VM joining). */
  async round(): Promise<void> {
    const byName = new Map(this.peers().map((p) => [p.hostname, p.address]));
    const chosen = partners(this.identity.hostname, Array.from(byName.keys()));
    if (chosen.length === 0) return this.syncAll();
    await Promise.all(
      chosen.map(async (name) => {
        try {
          await this.exchange({ address: byName.get(name)!, port: this.port }, name);
          this.peerOk(name);
        } catch (e) {
          this.peerFailed(name, (e as Error).message);
        }
      }),
    );
    this.updateStatus();
  }

  /** At start: a full exchange with every seed and peer in a small cluster, with the seeds and
   * this round's partners in a large one. */
  private async join(): Promise<void> {
    if (this.peers().length + this.seeds.length <= JOIN_ALL_MAX) return this.syncAll();
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
      this.round()
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
      this.exchange({ address: peer.address, port: this.port }, hostname).catch((e) => this.peerFailed(hostname, (e as Error).message));
    }, 50);
    this.pendingSync.set(hostname, t);
  }

  /** Make the group file hold this VM's record as configured. */
  private async joinGroup(): Promise<void> {
    const id = this.identity;
    const want = [id.hostname, id.address, id.realServer, id.services];
    const have = this.replica.get('group', id.hostname);
    if (sameRecord(have, want)) return;
    try {
      await this.edit(have ? { file: 'group', op: 'Mod', before: have, record: want } : { file: 'group', op: 'Add', record: want });
    } catch (e) {
      this.emit('warning', `could not add this VM to the group file: ${(e as Error).message}`);
    }
  }

  private emitChange(diff: Diff, local: boolean, via: ChangeEvent['via']): void {
    const ev: ChangeEvent = {
      file: diff.file,
      op: diff.op,
      record: diff.record,
      before: diff.before,
      line: formatDiffLine(diff),
      origin: diff.origin,
      seq: diff.seq,
      lamport: diff.lamport,
      local,
      via,
    };
    this.safeEmit('change', ev);
  }

  private emitKeyChange(c: KeyChange, from: string): void {
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
    this.log.write('refused', reason, { from: remote });
    const ev: RefusalEvent = { from: remote, reason, at: Date.now() };
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
      peerStates: this.peerState.size,
      pendingSyncs: this.pendingSync.size,
      sockets: c.sockets,
      queuedRequests: c.queued,
      listeners: this.eventNames().reduce((n, e) => n + this.listenerCount(e), 0),
    };
  }

  /** Which peers answered at the last contact: the store's status. */
  peerHealth(): { peer: string; ok: boolean; error?: string }[] {
    return this.peers().map((p) => {
      const s = this.peerState.get(p.hostname);
      return { peer: p.hostname, ok: !!s && !s.lastError, error: s?.lastError };
    });
  }

  private updateStatus(): void {
    if (this.stopped) return;
    const health = this.peerHealth();
    const down = health.filter((h) => !h.ok);
    if (health.length === 0) this.setStatus('ok', `${this.identity.hostname}: alone in the group`);
    else if (down.length === 0) this.setStatus('ok', `${this.identity.hostname}: ${health.length} peers in sync`);
    else this.setStatus('degraded', `${this.identity.hostname}: ${down.length}/${health.length} peers unreachable (${down.map((d) => d.peer).join(' ')})`);
  }

  private setStatus(state: StoreStatus['state'], text: string): void {
    if (this._status.state === state && this._status.text === text) return;
    this._status = { state, text };
    this.safeEmit('status', this._status);
  }
}
