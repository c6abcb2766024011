// How a node finds and follows its p2p-store config node: the store's state shows on every node
// that uses it (as the MQTT broker node does for its clients) until the node has something of its
// own to say, and the node is forgotten by the store when it closes.
import type { ClusterFiles } from '../../lib/records/cluster-api';
import type { StoreStatus } from '../../lib/sem/replicated-store';
import type { Node, NodeStatus, RED } from './node-red';

export interface StoreNode extends Node {
  files?: ClusterFiles;
  /** Why the store could not be created or started, if so. */
  failure?: string;
  storeStatus(): StoreStatus;
  register(user: Node): void;
  deregister(user: Node): void;
}

export function storeStatusToNode(s: StoreStatus): NodeStatus {
  switch (s.state) {
    case 'ok':
      return { fill: 'green', shape: 'dot', text: s.text };
    case 'degraded':
      return { fill: 'yellow', shape: 'ring', text: s.text };
    case 'starting':
      return { fill: 'blue', shape: 'ring', text: s.text };
    case 'stopped':
      return { fill: 'grey', shape: 'ring', text: s.text };
    default:
      return { fill: 'red', shape: 'ring', text: s.text };
  }
}

/**
 * The ClusterFiles of the node's configured store, or undefined with a red status saying why.
 * Registers the node for status fan-out and deregisters it on close.
 */
export function useStore(RED: RED, node: Node, storeId: string | undefined): { store?: StoreNode; files?: ClusterFiles } {
  const store = storeId ? (RED.nodes.getNode(storeId) as StoreNode | null) : null;
  if (!store) {
    node.status({ fill: 'red', shape: 'ring', text: 'no p2p-store configured' });
    return {};
  }
  store.register(node);
  node.on('close', (_removed, done) => {
    store.deregister(node);
    done();
  });
  if (!store.files) {
    node.status({ fill: 'red', shape: 'ring', text: `store failed: ${store.failure ?? 'unknown'}` });
    return { store };
  }
  return { store, files: store.files };
}

/** A short text for a status line (Node-RED shows about 40 characters well). */
export function short(text: string, n = 60): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}
