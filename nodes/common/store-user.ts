// How a node finds and follows its p2p-store config node, and who owns the node's status line.
//
// The status rule (the same for every node of the package, as Node-RED's MQTT nodes follow their
// broker without losing their own line):
//   1. A node's own status (what it did last: a round, a step, an edit) is the node's: the store
//      never writes over it.
//   2. While the node has said nothing of its own yet, it shows the store's status.
//   3. While the store cannot serve (starting, stopped, failed), the store's status shows instead,
//      since nothing the node did is current without it; the node's own line comes back after.
//   4. While the store is degraded (peers unreachable), the node's own line shows with a short
//      suffix saying so.
// The store calls the node's listener on every change of its status; the node says its own
// through `status()` returned by useStore. The node is forgotten by the store when it closes.
import type { ClusterFiles } from '../../lib/records/cluster-api';
import type { StoreStatus } from '../../lib/sem/replicated-store';
import type { DoneFn, Node, NodeMessage, NodeStatus, RED, SendFn } from './node-red';
import { common, translator, type Translate } from './i18n';

/** What a store calls on every change of its status. */
export interface StoreListener {
  storeChanged(s: StoreStatus): void;
}

export interface StoreNode extends Node {
  files?: ClusterFiles;
  /** Why the store could not be created or started, if so. */
  failure?: string;
  storeStatus(): StoreStatus;
  register(user: StoreListener): void;
  deregister(user: StoreListener): void;
}

const FILL: Record<StoreStatus['state'], NodeStatus> = {
  ok: { fill: 'green', shape: 'dot' },
  degraded: { fill: 'yellow', shape: 'ring' },
  starting: { fill: 'blue', shape: 'ring' },
  stopped: { fill: 'grey', shape: 'ring' },
  error: { fill: 'red', shape: 'ring' },
};

/** The store's status as a node status line, translated when the store gave a message id. */
export function storeStatusToNode(s: StoreStatus, t?: Translate): NodeStatus {
  const text = t && s.message ? common(t, `store.${s.message.id}`, s.message.values) : s.text;
  return { ...FILL[s.state], text: short(text) };
}

/** Rule 1-4 of the header: what a node shows, from its own status and the store's. */
export function combineStatus(own: NodeStatus | undefined, store: StoreStatus, t?: Translate): NodeStatus {
  if (!own || store.state === 'starting' || store.state === 'stopped' || store.state === 'error') return storeStatusToNode(store, t);
  if (store.state === 'degraded' && own.text) {
    const suffix = t ? common(t, 'storeDegradedSuffix') : 'store degraded';
    return { ...own, text: `${short(own.text, 44)} · ${suffix}` };
  }
  return own;
}

export interface StoreUse {
  store?: StoreNode;
  files?: ClusterFiles;
  /** Set this node's own status (shown by the rule of the header). */
  status(s: NodeStatus): void;
}

/**
 * The ClusterFiles of the node's configured store, or undefined with a red status saying why.
 * Registers the node for the store's status and deregisters it on close.
 */
export function useStore(RED: RED, node: Node, storeId: string | undefined): StoreUse {
  const t = translator(RED);
  const store = storeId ? (RED.nodes.getNode(storeId) as StoreNode | null) : null;
  if (!store) {
    const text = common(t, 'noStore');
    node.status({ fill: 'red', shape: 'ring', text });
    return { status: (s) => node.status(s) };
  }
  if (!store.files) {
    const say = () => node.status({ fill: 'red', shape: 'ring', text: short(common(t, 'storeFailed', { reason: store.failure ?? '?' })) });
    say();
    return { store, status: say };
  }
  let own: NodeStatus | undefined;
  let last = '';
  const render = () => {
    const s = combineStatus(own, store.storeStatus(), t);
    const key = JSON.stringify(s);
    if (key === last) return;
    last = key;
    node.status(s);
  };
  const listener: StoreListener = { storeChanged: render };
  store.register(listener);
  node.on('close', (_removed, done) => {
    store.deregister(listener);
    done();
  });
  render();
  return {
    store,
    files: store.files,
    status: (s) => {
      own = s;
      render();
    },
  };
}

/** A short text for a status line (Node-RED shows about 40 characters well). */
export function short(text: string, n = 60): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

/**
 * For a node whose store is missing or failed: its status already says why (useStore), and every
 * msg still gets an answer, an error that a Catch node sees, instead of being dropped.
 */
export function answerWithoutStore(node: Node): void {
  node.on('input', (_msg: NodeMessage, _send: SendFn, done: DoneFn) => done(new Error('no p2p-store configured (or it failed to start)')));
}
