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
  /** Add the burst endpoint (BURST_PATH) bench:sem drives its measured edits through. */
  burst?: boolean;
}

export const EDIT_PATH = '/p2p-test/edit';
/** A burst of edits driven inside the VM's flow (bench:sem): one request, `count` edits in a row. */
export const BURST_PATH = '/p2p-test/edits';

// The burst's loop, a function node: the request starts it (its msg.res kept in the node's
// context), each edit's result from p2p-sem-send comes back here and the next edit goes out after
// `gapMs`, and the last result answers the request with every edit's {start, ms, acked, failed}.
// Why not one HTTP request per edit: Node-RED's HTTP nodes go through Express, which makes V8 keep
// 1.5-3 MB alive through each young-generation collection of the VM serving a stream of requests
// (plain node:http ~10 KB; Express's per-request Object.setPrototypeOf on req and res alone gives
// about half: docs/performance.md, tenth pass), so the sender's own scavenges, not SEM, set the
// tail of a stream of HTTP-driven edits.
const BURST_LOOP = `
const b = context.get('burst');
if (msg.req) {
  if (b) { msg.statusCode = 409; msg.payload = { error: 'a burst is running' }; return [null, msg]; }
  const p = msg.payload || {};
  const count = Math.max(1, Math.min(100000, Number(p.count) || 1));
  const s = { res: msg.res, req: msg.req, count, name: String(p.name || 'RS1'), first: Number(p.first) || 0, prev: p.prev || null, gapMs: Math.max(0, Number(p.gapMs) || 0), out: [] };
  context.set('burst', s);
  return [next(s), null];
}
if (!b) return null;
if (msg.error) {
  context.set('burst', undefined);
  return [null, { req: b.req, res: b.res, statusCode: 400, payload: { error: msg.error.message, done: b.out.length } }];
}
b.out.push({ start: msg.start, ms: msg.payload.ms, acked: msg.payload.acked, failed: msg.payload.failed });
b.prev = msg.edit.record;
if (b.out.length >= b.count) {
  context.set('burst', undefined);
  return [null, { req: b.req, res: b.res, payload: { edits: b.out, prev: b.prev } }];
}
if (b.gapMs) setTimeout(() => node.send([next(b), null]), b.gapMs);
else return [next(b), null];
return null;
function next(s) {
  const i = s.first + s.out.length;
  const record = [s.name, (i / 1000).toFixed(3), String(i % 50), 'up'];
  const payload = s.prev ? { file: 'realserver', op: 'Mod', before: s.prev, record } : { file: 'realserver', op: 'Add', record };
  return { payload, start: Date.now() };
}
`;

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
    ...(o.burst ? burstNodes(z) : []),
    { id: 'recv', z, type: 'p2p-sem-receive', store: 'store', includeLocal: false, files: '', x: 120, y: 200, wires: [['recv-debug'], ['refused-debug']] },
    { id: 'recv-debug', z, type: 'debug', name: 'applied', active: true, complete: 'payload.line', x: 340, y: 180, wires: [] },
    { id: 'refused-debug', z, type: 'debug', name: 'refused', active: true, complete: 'payload', x: 340, y: 220, wires: [] },
  ];
}

function burstNodes(z: string): FlowNode[] {
  return [
    { id: 'burst-in', z, type: 'http in', url: BURST_PATH, method: 'post', x: 120, y: 280, wires: [['burst']] },
    { id: 'burst', z, type: 'function', func: BURST_LOOP, outputs: 2, x: 320, y: 280, wires: [['burst-send'], ['burst-out']] },
    { id: 'burst-send', z, type: 'p2p-sem-send', store: 'store', x: 520, y: 280, wires: [['burst']] },
    { id: 'burst-out', z, type: 'http response', statusCode: '', x: 520, y: 320, wires: [] },
    { id: 'burst-catch', z, type: 'catch', scope: ['burst-send'], x: 120, y: 320, wires: [['burst']] },
  ];
}
