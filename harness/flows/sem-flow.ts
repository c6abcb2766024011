// The flow the SEM tests and benchmark deploy on each VM of a loopback cluster: the VM's p2p-store,
// an HTTP endpoint that feeds p2p-sem-send (so a test edits a VM's files the way a flow would),
// and a p2p-sem-receive with a debug node so the replication shows in the editor.
import type { FlowNode, Vm } from '../cluster/launcher';

export interface SemFlowOptions {
  semPort: number;
  secret: string;
  /** Real server of each VM (default RS1..RS3 round robin). */
  realServer?: (vm: Vm, index: number) => string;
  services?: (vm: Vm) => string;
  /** Seed addresses; default: every other VM of the cluster. */
  seeds: string[];
  syncIntervalMs?: number;
  /** Turn the store's signing and encryption off (bench:sem measures their cost). */
  insecureWire?: boolean;
  /** The wire version the store speaks (1: as the release before version 2). */
  protocolVersion?: 1 | 2;
}

export const EDIT_PATH = '/p2p-test/edit';

export function semFlow(vm: Vm, index: number, o: SemFlowOptions): FlowNode[] {
  const z = 'sem-tab';
  return [
    { id: z, type: 'tab', label: `SEM ${vm.name}` },
    {
      id: 'store',
      type: 'p2p-store',
      name: vm.name,
      hostname: vm.name,
      address: vm.ip,
      realServer: o.realServer ? o.realServer(vm, index) : `RS${(index % 3) + 1}`,
      services: o.services ? o.services(vm) : '-',
      folder: '',
      port: o.semPort,
      seeds: o.seeds.filter((s) => s !== vm.ip).join(' '),
      syncInterval: o.syncIntervalMs ?? 1000,
      requestTimeout: 2000,
      autoJoin: true,
      ...(o.insecureWire ? { insecureWire: true } : {}),
      ...(o.protocolVersion ? { protocolVersion: o.protocolVersion } : {}),
      credentials: { secret: o.secret },
    },
    { id: 'edit-in', z, type: 'http in', url: EDIT_PATH, method: 'post', x: 120, y: 60, wires: [['send']] },
    { id: 'send', z, type: 'p2p-sem-send', store: 'store', x: 320, y: 60, wires: [['edit-out']] },
    { id: 'edit-out', z, type: 'http response', statusCode: '', x: 520, y: 60, wires: [] },
    { id: 'edit-catch', z, type: 'catch', scope: ['send'], x: 120, y: 120, wires: [['edit-error']] },
    {
      id: 'edit-error',
      z,
      type: 'function',
      func: 'msg.statusCode = 400; msg.payload = { error: msg.error.message }; return msg;',
      outputs: 1,
      x: 320,
      y: 120,
      wires: [['edit-out']],
    },
    { id: 'recv', z, type: 'p2p-sem-receive', store: 'store', includeLocal: false, files: '', x: 120, y: 200, wires: [['recv-debug'], ['refused-debug']] },
    { id: 'recv-debug', z, type: 'debug', name: 'applied', active: true, complete: 'payload.line', x: 340, y: 180, wires: [] },
    { id: 'refused-debug', z, type: 'debug', name: 'refused', active: true, complete: 'payload', x: 340, y: 220, wires: [] },
  ];
}
