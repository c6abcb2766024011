// The running Node-RED's own flows (the runtime's flows module: `getFlows()` and `setFlows(flows,
// credentials, type)`, what the editor's POST /flows ends in), reached from inside the runtime so
// that a VM can change its own flow (role-endpoint.ts) without its admin HTTP API and therefore
// without a bearer token.
//
// Why an internal module (checked for Node-RED 4.1 and 5.0, issue 14): the API Node-RED hands a
// node (`RED`, @node-red/registry lib/util.js createNodeApi) has nodes, log, settings, events,
// hooks, util, comms, plugins, library, httpAdmin/httpNode, auth and, from 5.0, linkcallTargets:
// nothing that reads or deploys flows. RED.runtime is not given to nodes. The admin HTTP API
// (POST /flows on RED.httpAdmin, also when called in-process) needs the `flows.write` permission,
// that is a bearer token whenever adminAuth is set: exactly the secret this path exists to avoid.
// So the flows module of @node-red/runtime is found among the modules the process has loaded,
// whichever copy the running Node-RED loaded (a global install, the user directory's, an embedded
// one such as node-red-node-test-helper's), and used only through getFlows/setFlows/get, whose
// signatures are the same in 4.1 and 5.0 (lib/flows/index.js). Guard: at install the route checks
// that such a module is loaded (a warning naming the Node-RED version otherwise), and a role call
// that cannot reach it is answered 503 with that reason and changes nothing. Tested on Node-RED 4
// (nodes suite) and 5 (nr5 suite, test/nodes/role-endpoint.test.ts).
import * as path from 'path';
import { flowsWithIdentity, hasIdentity, type FlowNodeLike, type StoreIdentity } from '../../lib/recovery/role';

interface FlowsModule {
  get(id: string): unknown;
  getFlows(): { rev?: string; flows: FlowNodeLike[] } | undefined;
  setFlows(flows: FlowNodeLike[], credentials: null, type: string, muteLog?: boolean, forceStart?: boolean, user?: unknown): Promise<unknown>;
}

export class RuntimeFlowsError extends Error {}

const FLOWS_MODULE = `${path.sep}@node-red${path.sep}runtime${path.sep}lib${path.sep}flows${path.sep}index.js`;

/** The loaded copies of the runtime's flows module that have the functions used here. */
function loadedFlowsModules(): FlowsModule[] {
  const out: FlowsModule[] = [];
  for (const [file, mod] of Object.entries(require.cache)) {
    if (!file.endsWith(FLOWS_MODULE) || !mod?.loaded) continue;
    const m = mod.exports as Partial<FlowsModule>;
    if (typeof m?.get === 'function' && typeof m.getFlows === 'function' && typeof m.setFlows === 'function') out.push(m as FlowsModule);
  }
  return out;
}

const missing = (version?: string) =>
  `the Node-RED runtime flows module (@node-red/runtime/lib/flows, with get, getFlows and setFlows) was not found in this process` +
  `${version ? ` (Node-RED ${version}; checked on 4.1 and 5.0)` : ''}: role calls cannot change this VM's identity (docs/security.md, rule 9)`;

/** Null when role calls can reach the runtime's flows, else why not (checked when the route is installed). */
export function runtimeFlowsProblem(version?: string): string | null {
  return loadedFlowsModules().length ? null : missing(version);
}

/** The flows module that runs the node `nodeId` (a process may hold more than one copy). */
function runtimeFlows(nodeId: string): FlowsModule {
  for (const m of loadedFlowsModules()) {
    try {
      if (m.get(nodeId)) return m;
    } catch {
      // a copy that was never initialised
    }
  }
  throw new RuntimeFlowsError(missing());
}

/**
 * Deploy the flow that runs the p2p-store node `storeNodeId` with that store given `id` (deployment
 * type `nodes`: only the store node and the nodes that use it start again; a store already switched
 * in place by the role endpoint is handed over running, store-handover.ts). Persisted like any
 * deploy (flows.json).
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
