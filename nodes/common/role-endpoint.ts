// POST /p2p-ha/role on this runtime's admin HTTP server: how another VM (a manager recovering a
// failed server, a replicator naming a fresh clone) tells this VM to take an identity, without a
// bearer token. The route has no editor permission: it authenticates by the call itself (lib/sem/
// admin-call.ts: cluster-secret MAC, sealed body, the caller's VM signature checked against the
// caller's group record in this VM's own files, caller not fenced, fresh time, unseen nonce, this
// VM's address and name inside the signed bytes). Only the store's identity fields can change
// (lib/recovery/role.ts identityFromCall: the address stays the one called): the running store
// takes them in place (takeIdentity below) and they are made durable in the store's own folder
// (the role file, role-persist.ts), while the store catches up with the calling manager (one
// anti-entropy exchange: the OD was frozen and missed the recovery's own edits); then the call is
// answered, and the flow is deployed with them through the runtime's flows API (runtime-flows.ts)
// after the answer, off the recovery's path, to persist them in flows.json. Every refusal goes to the store's rate-limited refusal log; nothing
// is changed by a refused call.
import type { IncomingMessage, ServerResponse } from 'http';
import { readBounded } from '../../lib/net/bounded-body';
import { ADMIN_CALL_BYTES, AdminCallRefused } from '../../lib/sem/admin-call';
import { ReplicatedStore, validateIdentity } from '../../lib/sem/replicated-store';
import { performance } from 'perf_hooks';
import { expectHandover, sameIdentity } from './store-handover';
import { identityFromCall, ROLE_PATH, RoleError, type StoreIdentity } from '../../lib/recovery/role';
import { registry } from './cluster-registry';
import type { ChangeEvent } from '../../lib/records/cluster-api';
import type { RED } from './node-red';
import { deployOwnIdentity, runtimeFlowsProblem } from './runtime-flows';
import { readRoleFile, removeRoleFile, roleFilePath, setUnsaved, writeRoleFile } from './role-persist';
import { nextRoleFile, type RoleFile } from '../../lib/recovery/role-file';
import { fromMember } from '../../lib/records/records';
import { catchUpPartners, recoveriesUnderWay } from '../../lib/recovery/role-catch-up';

/** How long a caller may take to send its (small) body. */
const BODY_TIMEOUT_MS = 5_000;

/** How long the answer waits for the store to listen under its new identity (callers give the
 * call 5 s); past it the answer says `listening: false` and the caller asks the store itself. */
const LISTEN_WAIT_MS = 3_000;

/** After a role call's answer, the flow deploy waits until the manager's commit made this VM a
 * member (its group record arrived) and no other recovery is under way in its files (their commits
 * arrived too: two failures at once), and SETTLE_MS more (its acknowledgement sent), or JOIN_WAIT_MS
 * at most: the deploy (saving flows.json, restarting the nodes that use the store) is CPU and disk
 * work that would otherwise compete with the commit on this VM. A bench on one machine showed the
 * deploy overlapping the commit's acknowledgements (bench:failover, TIMELINE=1). */
const JOIN_WAIT_MS = 2_000;
const SETTLE_MS = 100;

const plainAddress = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

type Deploy = (id: StoreIdentity, storeNodeId: string) => Promise<void>;

/** The role call being handled, or the flow deploy that follows one (one after the other: a
 * second call waits for the first one's deploy, which would otherwise find the store node
 * between two instances). */
let queue: Promise<unknown> = Promise.resolve();

/** The admin apps the route is installed on (one per runtime; a test helper makes several), with
 * the way each applies an identity. */
const installed = new WeakMap<object, Deploy>();

/**
 * Install the route once per runtime. `deploy` is how the identity is applied (the runtime's flows
 * API; a test may pass its own).
 */
export function installRoleEndpoint(RED: RED, deploy: Deploy = deployOwnIdentity): void {
  if (installed.has(RED.httpAdmin)) return;
  installed.set(RED.httpAdmin, deploy);
  // The runtime's flows module is internal to Node-RED (runtime-flows.ts says why): say at once
  // when this Node-RED does not have it, not only at the first role call.
  const problem = deploy === deployOwnIdentity ? runtimeFlowsProblem(RED.version?.()) : null;
  if (problem) RED.log.warn(`p2p-ha: ${problem}`);
  RED.httpAdmin.post(ROLE_PATH, (req: IncomingMessage, res: ServerResponse) => {
    const answer = (status: number, body: unknown) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    // One role call at a time per runtime: a second one waits until the first is done, its flow
    // deploy (after its answer) included.
    const run = queue.then(() => handle(req, deploy, RED)).then(
      (r) => {
        answer(200, r.answer);
        // The flow deploy only once the answer is on its way (the next turn of the event loop).
        return new Promise<void>((resolve) => setImmediate(resolve)).then(r.deploy);
      },
      (e: unknown) => {
        const status = e instanceof AdminCallRefused ? e.status : e instanceof RoleError ? 400 : 503;
        answer(status, { error: e instanceof Error ? e.message : String(e) });
      },
    );
    queue = run.catch(() => undefined);
  });
}

interface Handled {
  answer: { ok: true; hostname: string; listening: boolean };
  /** The flow deploy that follows the answer (it never rejects). */
  deploy: () => Promise<void>;
}

async function handle(req: IncomingMessage, deploy: Deploy, RED: RED): Promise<Handled> {
  const local = plainAddress(req.socket.localAddress);
  const remote = plainAddress(req.socket.remoteAddress);
  const stores = registry.storeEntries().filter((s) => s.files instanceof ReplicatedStore) as { id: string; files: ReplicatedStore }[];
  // The store this call is for: the one at the address called, else the only one (an OD whose
  // store cannot listen at the address its flow names, e.g. a clone not yet re-identified).
  const entry = stores.find((s) => s.files.identity.address === local) ?? (stores.length === 1 ? stores[0] : undefined);
  if (!entry) {
    req.resume();
    // No store at all: the admin API answers before the flows start (a clone just booted), so this
    // is "not ready yet" (503, the caller retries until its deadline), not a refusal. Seen in CI:
    // a 400 here failed a replication whose clone was a moment from ready.
    if (!stores.length) throw new AdminCallRefused('this runtime has no p2p-store running (yet)', 503);
    throw new RoleError(`no p2p-store of this runtime is at ${local}`);
  }
  const store = entry.files;
  if (!String(req.headers['content-type'] ?? '').startsWith('application/octet-stream')) {
    // A JSON or form body is not a sealed call (and the admin app has already parsed it).
    req.resume();
    throw new AdminCallRefused('refused: an admin call is a sealed body (application/octet-stream)', 415);
  }
  if (req.headers['content-length'] === undefined) {
    req.resume();
    throw new AdminCallRefused('refused: an admin call without Content-Length', 411);
  }
  let body: string;
  try {
    body = (await readBounded(req, { limit: ADMIN_CALL_BYTES, timeoutMs: BODY_TIMEOUT_MS, declared: Number(req.headers['content-length']) })).toString('utf8');
  } catch (e) {
    throw new AdminCallRefused(`refused: ${(e as Error).message}`, 413);
  }
  const call = await store.openAdminCall(ROLE_PATH, req.headers, body, remote, [local]);
  let id: StoreIdentity;
  try {
    id = identityFromCall(call.payload, call.to.address);
  } catch (e) {
    store.log.write('refused', `admin call ${ROLE_PATH} from ${call.from}: ${(e as Error).message}`, { from: remote });
    throw e;
  }
  const { deploy: after } = await takeIdentity(store, entry.id, id, call.from, remote, deploy, RED);
  // Answered once the store listens as the backup (at once when switched in place): the caller's
  // next edits (the recovery's commit) reach it at once, without polling it (role.ts assignRole).
  const listening = await listensAs(entry.id, id.hostname, LISTEN_WAIT_MS);
  return { answer: { ok: true, hostname: id.hostname, listening }, deploy: after };
}

/**
 * The store takes `id`. When only its identity changes: in place (the new name's keys made first,
 * off the event loop; then the running store switches in one step, ReplicatedStore.switchIdentity:
 * no restart, the SEM server never stops listening),
 * then the role file is written durably (a restart now starts as `id` whatever happens to the
 * deploy); a failure of either switches the store back and the call fails, the VM as it was. The
 * returned function is the flow deploy that persists it (flows.json; the nodes that use the store
 * start again under the new identity, the store handed to the store node's next instance,
 * store-handover.ts): it runs after the answer (persistRole). When more than the identity changes
 * (autoJoin, or the address: a fresh clone whose store still runs at the ODS's address), the
 * deploy alone does it before the answer and the store restarts (the fallback, as before).
 */
async function takeIdentity(store: ReplicatedStore, nodeId: string, id: StoreIdentity, from: string, remote: string, deploy: Deploy, RED: RED): Promise<{ deploy: () => Promise<void> }> {
  const t0 = performance.now();
  const before = store.identity;
  // In place only when nothing but the name, services and real server change: a fresh clone whose
  // store still runs at the ODS's address (its copied flow) is re-identified by the deploy alone.
  const inPlace = store.autoJoin === id.autoJoin && store.identity.address === id.address;
  store.log.write('applied', `role call from ${from}: ${before.hostname} becomes ${id.hostname}${inPlace ? '' : ' (redeployed)'}`, { from: remote, realServer: id.realServer, services: id.services });
  const next = validateIdentity(id);
  if (!inPlace) {
    const end = expectHandover(nodeId, next);
    try {
      await deploy(id, nodeId);
    } finally {
      end();
    }
    store.log.write('applied', `role ${id.hostname} taken in ${Math.round(performance.now() - t0)} ms (flow deployed, store restarted)`);
    return { deploy: () => Promise.resolve() };
  }
  let existing: RoleFile | undefined;
  try {
    existing = readRoleFile(store.folder);
  } catch (e) {
    // Unreadable: it says nothing about the flow; the one written now replaces it.
    store.log.write('refused', `role ${id.hostname}: ${(e as Error).message} (replaced)`);
  }
  let switched = false;
  let keysMs = 0;
  try {
    if (!sameIdentity(before, next)) {
      // The new name's keys first, on disk and off the event loop (both fsyncs at once): made
      // inside the switch they were two fsyncs in a row on the OD's event loop, which the
      // installation procedure's call to this VM and the catch-up below waited behind. A failure
      // here changes nothing (the store is not switched yet).
      const tk = performance.now();
      await store.prepareIdentityKeys(next.hostname);
      keysMs = performance.now() - tk;
      store.switchIdentity(next);
      switched = true;
    }
    catchUpWithCaller(store, from);
    catchUpOnceMember(store, id.hostname, from);
    const t1 = performance.now();
    await writeRoleFile(store.folder, nextRoleFile(before, existing, { ...next, ...(id.seeds !== undefined ? { seeds: id.seeds } : {}) }, new Date().toISOString())).catch((e: Error) => {
      throw new Error(`role ${id.hostname}: the role could not be made durable (${roleFilePath(store.folder)}): ${e.message}`);
    });
    store.log.write('applied', `role ${id.hostname} taken in ${Math.round(performance.now() - t0)} ms (switch ${Math.round(t1 - t0)} ms of which keys ${Math.round(keysMs)} ms, durable ${Math.round(performance.now() - t1)} ms; flow deploy after the answer)`);
  } catch (e) {
    if (switched) {
      try {
        store.switchIdentity(before);
      } catch (e2) {
        store.log.write('refused', `role ${id.hostname}: switching back to ${before.hostname} failed: ${(e2 as Error).message}`);
      }
    }
    throw e;
  }
  // Run after the answer, in the role calls' queue (installRoleEndpoint).
  return { deploy: () => persist(RED, nodeId, id, deploy, true) };
}

/**
 * Right after the switch, beside the role file's write: one anti-entropy exchange with the manager
 * that called (at the address its group record gives, never one the call names). The OD was frozen
 * and is no member: the manager's recent edits (its claim, the target marked `fenced`, and what
 * it holds of other recoveries) did not reach it, and the manager's commit, the first diff sent to
 * it as a member, would only show that gap and start a catch-up then (seen in bench:failover: the
 * backup was the last VM to show the recovery, 120-300 ms after its manager). Merging is what any
 * exchange does (each entry's proof and authority checked), so it changes nothing the role
 * decides; a failure is left to the periodic rounds.
 */
function catchUpWithCaller(store: ReplicatedStore, caller: string): void {
  const rec = store.get('group', caller);
  if (!rec) return;
  store.exchange({ address: fromMember(rec).address, port: store.port }, caller).catch(() => undefined);
}

/** How long a backup watches for the commit that makes it a member, to catch up then. */
const MEMBER_WAIT_MS = 5_000;

/**
 * Once the commit has made this VM a member (its group record arrived), one exchange with each
 * manager of the recoveries in hand (lib/recovery/role-catch-up.ts): what they sent before they
 * knew this VM as a member. Not a member within MEMBER_WAIT_MS: the periodic rounds do it.
 */
function catchUpOnceMember(store: ReplicatedStore, hostname: string, caller: string): void {
  void memberWithin(store, hostname, MEMBER_WAIT_MS, 0).then((member) => {
    if (!member || store.identity.hostname !== hostname) return;
    for (const p of catchUpPartners(hostname, caller, store.records('group'), store.records('problem'), Date.now())) {
      store.exchange({ address: p.address, port: store.port }, p.hostname).catch(() => undefined);
    }
  });
}

/**
 * Deploy the flow with the store's identity `id` (already taken and in the role file), the store
 * handed over running. Never rejects: a failure is said loudly (error log, SEM log, the store's
 * status) and the VM serves as `id` with its old flow; its role file makes a restart start as
 * `id` too and deploy again; an operator's deploy of the flow persists it.
 */
async function persist(RED: RED, nodeId: string, id: StoreIdentity, deploy: Deploy, afterJoin = false): Promise<void> {
  const storeOf = () => registry.storeEntries().find((s) => s.id === nodeId)?.files as ReplicatedStore | undefined;
  if (afterJoin) {
    const s = storeOf();
    // A member, and no other recovery under way in its files (two failures at once: the other
    // commit is applied here without the deploy beside it).
    if (s instanceof ReplicatedStore) await whenWithin(s, () => s.get('group', id.hostname) !== undefined && recoveriesUnderWay(s.records('problem'), Date.now()).length === 0, JOIN_WAIT_MS, SETTLE_MS);
  }
  const store = storeOf();
  const want = validateIdentity(id);
  if (!(store instanceof ReplicatedStore) || !sameIdentity(store.identity, want)) {
    // Someone deployed since (the store node is gone, or runs as another identity): that deploy
    // decided; this one would undo it. The store node at its start judged the role file.
    store?.log.write('refused', `role ${id.hostname}: flow deploy not made: the store ${store ? `is ${store.identity.hostname} now` : 'is gone'} (deployed since)`);
    return;
  }
  const folder = store.folder;
  const end = expectHandover(nodeId, want);
  const t0 = performance.now();
  try {
    await deploy(id, nodeId);
    // The runtime starts the store node's next instance after the deploy resolved: the next call
    // in the queue must find it.
    await listensAs(nodeId, id.hostname, LISTEN_WAIT_MS);
    const now = storeOf() ?? store;
    now.log.write('applied', `role ${id.hostname}: flow deployed in ${Math.round(performance.now() - t0)} ms (persisted in flows.json)`);
    const removed = removeRoleFile(folder);
    if (removed !== true) now.log.write('refused', `role ${id.hostname}: the role file could not be removed: ${removed}`);
    setUnsaved(nodeId, undefined);
  } catch (e) {
    const why = `the flow deploy that persists the role ${id.hostname} failed: ${e instanceof Error ? e.message : String(e)}`;
    (storeOf() ?? store).log.write('refused', `role ${id.hostname}: ${why}`);
    RED.log.error(`p2p-ha: ${why}. This VM serves as ${id.hostname} with its old flow; its role is kept in ${roleFilePath(folder)}, so a restart starts as ${id.hostname} too. Deploy its flow (or restart it) once the cause is mended.`);
    setUnsaved(nodeId, why);
  } finally {
    end();
  }
}

/** Resolves true `settleMs` after `hostname` is in `store`'s group file, false after `maxMs` without it. */
function memberWithin(store: ReplicatedStore, hostname: string, maxMs: number, settleMs: number): Promise<boolean> {
  return whenWithin(store, () => store.get('group', hostname) !== undefined, maxMs, settleMs);
}

/** Resolves true `settleMs` after `holds()` is true (asked now and at each change of the group or
 * problem file), false after `maxMs` without it. */
function whenWithin(store: ReplicatedStore, holds: () => boolean, maxMs: number, settleMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let settle: NodeJS.Timeout | undefined;
    const done = (member: boolean) => {
      clearTimeout(max);
      store.off('change', onChange);
      resolve(member);
    };
    const onChange = (ev: ChangeEvent) => {
      if (settle || (ev.file !== 'group' && ev.file !== 'problem') || !holds()) return;
      settle = setTimeout(() => done(true), settleMs);
    };
    const max = setTimeout(() => {
      clearTimeout(settle);
      done(false);
    }, maxMs);
    store.on('change', onChange);
    if (holds()) settle = setTimeout(() => done(true), settleMs);
  });
}

/** Settles once the role calls and flow deploys queued now are done (tests, and a clean close). */
export function roleCallsSettled(): Promise<void> {
  return queue.then(() => undefined);
}

/**
 * A store that started from its role file (the flow still gives the identity it had before the
 * role, p2p-store.ts): deploy the flow with the role, in the role calls' queue.
 */
export function persistRole(RED: RED, nodeId: string, id: StoreIdentity): Promise<void> {
  const deploy = installed.get(RED.httpAdmin) ?? deployOwnIdentity;
  const run = queue.then(() => persist(RED, nodeId, id, deploy));
  queue = run;
  return run;
}

/** Whether this runtime's store `nodeId` listens under `hostname` within `ms` (it is started
 * again by the deploy: the registry gets the new instance, which listens a moment later). */
async function listensAs(nodeId: string, hostname: string, ms: number): Promise<boolean> {
  const current = () => {
    const s = registry.storeEntries().find((e) => e.id === nodeId)?.files;
    return s instanceof ReplicatedStore && s.identity.hostname === hostname ? s : undefined;
  };
  let timer: NodeJS.Timeout | undefined;
  let onStore: (() => void) | undefined;
  const found = new Promise<ReplicatedStore>((resolve) => {
    const now = current();
    if (now) return resolve(now);
    onStore = () => {
      const s = current();
      if (s) resolve(s);
    };
    registry.on('store', onStore);
  });
  try {
    return await Promise.race([found.then((s) => s.listening()), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
  } finally {
    clearTimeout(timer);
    if (onStore) registry.off('store', onStore);
  }
}
