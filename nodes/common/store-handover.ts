// A running ReplicatedStore handed from one p2p-store node instance to the next across a deploy
// that changes only the store's identity (a role call, role-endpoint.ts). The role endpoint has
// already switched the running store's identity in place (ReplicatedStore.switchIdentity); the
// deploy that follows persists it in flows.json and restarts the nodes that use the store (they
// read the identity when they start). Without a handover that deploy would also stop the store
// and build a new one (load the files, open the journal, listen again, write a checkpoint): the
// biggest part of the role step. With it, the closing instance leaves the store running and the
// next instance of the same node takes it over: the SEM server never stops listening.
//
// Only a deploy the role endpoint announced (expect) hands a store over, and only when the store
// already has the identity the new flow gives it; any other close (a removal, a stop of the
// runtime, an operator's deploy) stops the store as before. The next instance takes the store
// only when its settings other than the identity (folder, port, secrets, intervals, autoJoin,
// wire options) are the ones the store was made with; otherwise (an operator's deploy that raced
// the role call) it stops the handed store and starts its own once that stop is done.
import type { Identity } from '../../lib/records/cluster-api';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';

/** How long a handed-over store waits for the next instance before it is stopped. */
const PARK_MS = 30_000;

interface Parked {
  store: ReplicatedStore;
  settings: string;
  timer: NodeJS.Timeout;
}

/** Node id -> the identity an announced deploy gives that store. */
const expected = new Map<string, Identity>();
const parked = new Map<string, Parked>();

/** Whether two identities are the same in every field (hostname, address, real server, services). */
export const sameIdentity = (a: Identity, b: Identity) => a.hostname === b.hostname && a.address === b.address && a.realServer === b.realServer && a.services === b.services;

/** The role endpoint announces its deploy; the returned function ends the announcement. */
export function expectHandover(nodeId: string, identity: Identity): () => void {
  expected.set(nodeId, identity);
  return () => {
    if (expected.get(nodeId) === identity) expected.delete(nodeId);
  };
}

/**
 * From the closing instance (not removed): keep `store` running for the next instance, if an
 * announced deploy gives it the identity it already has. True: the caller must not stop it.
 */
export function parkStore(nodeId: string, store: ReplicatedStore, settings: string): boolean {
  const want = expected.get(nodeId);
  if (!want || !sameIdentity(want, store.identity)) return false;
  const timer = setTimeout(() => {
    if (parked.get(nodeId)?.store !== store) return;
    parked.delete(nodeId);
    store.stop().catch(() => undefined);
  }, PARK_MS);
  timer.unref?.();
  parked.set(nodeId, { store, settings, timer });
  return true;
}

/**
 * From a starting instance: the running store handed over to it, if its settings and identity
 * are this instance's (`adopted`); else undefined, with `stopping` set when a handed store had to
 * be stopped first (start the new store only after it: it listens on the same address and port).
 */
export function takeParkedStore(nodeId: string, settings: string, identity: Identity): { adopted?: ReplicatedStore; stopping?: Promise<void> } {
  const p = parked.get(nodeId);
  if (!p) return {};
  parked.delete(nodeId);
  clearTimeout(p.timer);
  if (p.settings === settings && sameIdentity(p.store.identity, identity)) return { adopted: p.store };
  return { stopping: p.store.stop().catch(() => undefined) };
}
