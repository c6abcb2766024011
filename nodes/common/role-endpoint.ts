// POST /p2p-ha/role on this runtime's admin HTTP server: how another VM (a manager recovering a
// failed server, a replicator naming a fresh clone) tells this VM to take an identity, without a
// bearer token. The route has no editor permission: it authenticates by the call itself (lib/sem/
// admin-call.ts: cluster-secret MAC, sealed body, the caller's VM signature checked against the
// caller's group record in this VM's own files, caller not fenced, fresh time, unseen nonce, this
// VM's address and name inside the signed bytes). Only the store's identity fields can change
// (lib/recovery/role.ts identityFromCall: the address stays the one called): the running store
// takes them in place (takeIdentity below), then the flow is deployed with them through the
// runtime's flows API (runtime-flows.ts) to persist them. Every refusal goes to the store's rate-
// limited refusal log; nothing is changed by a refused call.
import type { IncomingMessage, ServerResponse } from 'http';
import { readBounded } from '../../lib/net/bounded-body';
import { ADMIN_CALL_BYTES, AdminCallRefused } from '../../lib/sem/admin-call';
import { ReplicatedStore, validateIdentity } from '../../lib/sem/replicated-store';
import { performance } from 'perf_hooks';
import { expectHandover, sameIdentity } from './store-handover';
import { identityFromCall, ROLE_PATH, RoleError, type StoreIdentity } from '../../lib/recovery/role';
import { registry } from './cluster-registry';
import type { RED } from './node-red';
import { deployOwnIdentity, runtimeFlowsProblem } from './runtime-flows';

/** How long a caller may take to send its (small) body. */
const BODY_TIMEOUT_MS = 5_000;

/** How long the answer waits for the store to listen under its new identity (callers give the
 * call 5 s); past it the answer says `listening: false` and the caller asks the store itself. */
const LISTEN_WAIT_MS = 3_000;

const plainAddress = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

/** The role call being handled (calls are taken one after the other). */
let queue: Promise<unknown> = Promise.resolve();

/** The admin apps the route is installed on (one per runtime; a test helper makes several). */
const installed = new WeakSet<object>();

/**
 * Install the route once per runtime. `deploy` is how the identity is applied (the runtime's flows
 * API; a test may pass its own).
 */
export function installRoleEndpoint(RED: RED, deploy: (id: StoreIdentity, storeNodeId: string) => Promise<void> = deployOwnIdentity): void {
  if (installed.has(RED.httpAdmin)) return;
  installed.add(RED.httpAdmin);
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
    // One role call at a time per runtime: a second one waits until the first is done (its
    // deploy would otherwise find the store node between two instances).
    const run = queue.then(() => handle(req, deploy));
    queue = run.catch(() => undefined);
    run.then(
      (r) => answer(200, r),
      (e: unknown) => {
        const status = e instanceof AdminCallRefused ? e.status : e instanceof RoleError ? 400 : 503;
        answer(status, { error: e instanceof Error ? e.message : String(e) });
      },
    );
  });
}

async function handle(req: IncomingMessage, deploy: (id: StoreIdentity, storeNodeId: string) => Promise<void>): Promise<{ ok: true; hostname: string; listening: boolean }> {
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
  await takeIdentity(store, entry.id, id, call.from, remote, deploy);
  // Answered once the store listens as the backup (at once when switched in place): the caller's
  // next edits (the recovery's commit) reach it at once, without polling it (role.ts assignRole).
  const listening = await listensAs(entry.id, id.hostname, LISTEN_WAIT_MS);
  return { ok: true, hostname: id.hostname, listening };
}

/**
 * The store takes `id`: in place first when only its identity changes (the running store switches
 * in one step, ReplicatedStore.switchIdentity: no restart, the SEM server never stops listening),
 * then the flow is deployed with it (persisted in flows.json; the nodes that use the store start
 * again under the new identity, and the store is handed to the store node's next instance running,
 * store-handover.ts). A deploy that fails switches the store back: the VM is as it was. When more
 * than the identity changes (autoJoin, or the address: a fresh clone whose store still runs at the
 * ODS's address), the deploy alone does it and the store restarts (the fallback, as before).
 */
async function takeIdentity(store: ReplicatedStore, nodeId: string, id: StoreIdentity, from: string, remote: string, deploy: (id: StoreIdentity, storeNodeId: string) => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const before = store.identity;
  // In place only when nothing but the name, services and real server change: a fresh clone whose
  // store still runs at the ODS's address (its copied flow) is re-identified by the deploy alone.
  const inPlace = store.autoJoin === id.autoJoin && store.identity.address === id.address;
  store.log.write('applied', `role call from ${from}: ${before.hostname} becomes ${id.hostname}${inPlace ? '' : ' (redeployed)'}`, { from: remote, realServer: id.realServer, services: id.services });
  const next = validateIdentity(id);
  const end = expectHandover(nodeId, next);
  let switched = false;
  try {
    if (inPlace && !sameIdentity(before, next)) {
      store.switchIdentity(next);
      switched = true;
    }
    const t1 = performance.now();
    await deploy(id, nodeId);
    store.log.write('applied', `role ${id.hostname} taken in ${Math.round(performance.now() - t0)} ms (switch ${Math.round(t1 - t0)} ms, flow deployed ${Math.round(performance.now() - t1)} ms)`);
  } catch (e) {
    if (switched) {
      try {
        store.switchIdentity(before);
      } catch (e2) {
        store.log.write('refused', `role ${id.hostname}: switching back to ${before.hostname} failed: ${(e2 as Error).message}`);
      }
    }
    throw e;
  } finally {
    end();
  }
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
