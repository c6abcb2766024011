// The running Node-RED's own flows (the runtime's flows module: `getFlows()` and `setFlows(flows,
// credentials, type)`, what the editor's POST /flows ends in), reached from inside the runtime so
// that a VM can change its own flow (role-endpoint.ts) without its admin HTTP API and therefore
// without a bearer token. Node-RED hands nodes no handle on it, so it is found among the modules
// the process has loaded, whichever copy the running Node-RED loaded (a global install, the user
// directory's, an embedded one such as node-red-node-test-helper's). It is an internal module of
// @node-red/runtime (4.x; the suite nr5 runs the role step on 5.x): when it is not found the role
// call is answered 503 with that reason and nothing changes.
import * as path from 'path';
import { flowsWithIdentity, hasIdentity, type FlowNodeLike, type StoreIdentity } from '../../lib/recovery/role';

interface FlowsModule {
  get(id: string): unknown;
  getFlows(): { rev?: string; flows: FlowNodeLike[] } | undefined;
  setFlows(flows: FlowNodeLike[], credentials: null, type: string, muteLog?: boolean, forceStart?: boolean, user?: unknown): Promise<unknown>;
}

export class RuntimeFlowsError extends Error {}

const FLOWS_MODULE = `${path.sep}@node-red${path.sep}runtime${path.sep}lib${path.sep}flows${path.sep}index.js`;

/** The flows module that runs the node `nodeId` (a process may hold more than one copy). */
function runtimeFlows(nodeId: string): FlowsModule {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (!file.endsWith(FLOWS_MODULE) || !mod?.loaded) continue;
    const m = mod.exports as Partial<FlowsModule>;
    if (typeof m?.get !== 'function' || typeof m.getFlows !== 'function' || typeof m.setFlows !== 'function') continue;
    try {
      if (m.get(nodeId)) return m as FlowsModule;
    } catch {
      // a copy that was never initialised
    }
  }
  throw new RuntimeFlowsError('the Node-RED runtime flows module was not found in this process');
}

/**
 * Deploy the flow that runs the p2p-store node `storeNodeId` with that store given `id` (deployment type `nodes`: only the
 * store and the nodes that use it restart). Persisted like any deploy (flows.json).
 */
export async function deployOwnIdentity(id: StoreIdentity, storeNodeId: string): Promise<void> {
  const m = runtimeFlows(storeNodeId);
  const current = m.getFlows();
  if (!current) throw new RuntimeFlowsError('the runtime has no flows loaded');
  // getFlows hands out the runtime's own active configuration: change a copy.
  const copy = JSON.parse(JSON.stringify(current.flows ?? [])) as FlowNodeLike[];
  // A VM that already has this identity (a recovery taken over after its role step) is left as it
  // is: deploying again would restart its store for nothing.
  if (hasIdentity(copy, id)) return;
  await m.setFlows(flowsWithIdentity(copy, id), null, 'nodes', false, false, { username: 'p2p-ha role call' });
}
