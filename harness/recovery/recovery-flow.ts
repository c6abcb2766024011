// The flow every VM of the recovery cluster runs. Its production part, on the tab PRODUCT_TAB: the
// p2p-store, the three real servers and the recovery wiring of examples/04-recovery.json
// (heartbeat -> failures only -> placer -> backup starter, optionally the OD replicator);
// examples/05-whole-vm.json is made from this part. The demo's scaffolding, on its own tab
// SCAFFOLD_TAB marked by a comment: an edit endpoint (for the test to seed files) and the VM's
// stand-in "service": GET /svc answers the name of the server this VM serves (the tab's SERVES
// variable for an original VM, or what the installation procedure set by POST /svc-config on a
// backup), 503 when nothing is installed (an OD). The heartbeat's isolation output switches it
// (serve-switch): it answers only after "serving"/"rejoined", 503 after "self-fence".
import * as fs from 'fs';
import * as path from 'path';
import type { FlowNode } from '../cluster/launcher';

export const EXAMPLE_04 = path.join(__dirname, '..', '..', '..', 'examples', '04-recovery.json');

export const EDIT_PATH = '/p2p-test/edit';
export const SERVICE_PATH = '/svc';
export const PRODUCT_TAB = 'rec-tab';
export const SCAFFOLD_TAB = 'rec-demo';

export interface RealServerRef {
  name: string;
  host: string;
  port: number;
  fingerprint: string;
}

export interface RecoveryFlowOptions {
  hostname: string;
  address: string;
  realServer: string;
  /** true for a member, false for an OD (not a member until it takes a role). */
  member: boolean;
  semPort: number;
  uiPort: number;
  secret: string;
  privateKey: string;
  seeds: string[];
  realServers: RealServerRef[];
  procedureDir: string;
  reexamNetworkMs: number;
  replicator?: { ods: string; intervalS: number };
  /** The backup starter's takeover bound (s); the node's default when undefined. */
  takeoverS?: number;
}

const LAYOUT: Record<string, [number, number]> = {
  collector: [520, 400],
  'demo-comment': [330, 40],
  'edit-in': [150, 100],
  send: [360, 100],
  'edit-out': [580, 100],
  'edit-catch': [150, 160],
  'edit-error': [360, 160],
  'svc-in': [140, 240],
  svc: [360, 240],
  'svc-out': [580, 240],
  'svc-config-in': [160, 300],
  'svc-config': [360, 300],
  'svc-stop-in': [150, 360],
  'svc-stop': [360, 360],
  'serve-switch': [760, 20],
};

/** Example 04's node ids (ex4-*) as this flow names them. */
const EX4_IDS: Record<string, string> = {
  'ex4-store': 'store',
  'ex4-hb': 'hb',
  'ex4-failures': 'only-failures',
  'ex4-placer': 'placer',
  'ex4-starter': 'starter',
  'ex4-placement': 'log-placement',
  'ex4-nofit': 'log-nofit',
  'ex4-steps': 'log-steps',
  'ex4-failed': 'log-failed',
  'ex4-catch': 'starter-catch',
  'ex4-errors': 'log-errors',
  'ex4-replicator': 'replicator',
  'ex4-replication': 'log-replication',
};

/**
 * The recovery nodes of examples/04-recovery.json with this VM's settings: faster heartbeat and
 * re-examination than the example's defaults (the loopback cluster), the procedure folder, the
 * admin port, debug output to the console (the tests read the runtime's log). The example's
 * comment, its config node and its manual "OD pool now?" inject are left out; the replicator only
 * when asked.
 */
export function recoveryWiring(o: RecoveryFlowOptions, z: string): FlowNode[] {
  const example = JSON.parse(fs.readFileSync(EXAMPLE_04, 'utf8')) as FlowNode[];
  const wanted = new Set(Object.keys(EX4_IDS).filter((id) => id !== 'ex4-store' && (o.replicator || !['ex4-replicator', 'ex4-replication'].includes(id))));
  const rename = (id: string) => EX4_IDS[id];
  const out: FlowNode[] = [];
  for (const ex of example) {
    if (!wanted.has(ex.id as string)) continue;
    const n: FlowNode = { ...ex, id: rename(ex.id as string), z };
    if (n.store !== undefined) n.store = 'store';
    n.wires = ((ex.wires as string[][] | undefined) ?? []).map((port) => port.filter((t) => wanted.has(t)).map(rename));
    if (Array.isArray(ex.scope)) n.scope = (ex.scope as string[]).filter((t) => wanted.has(t)).map(rename);
    switch (n.type) {
      case 'p2p-heartbeat':
        Object.assign(n, { interval: 500, timeout: 300, reexamNetwork: o.reexamNetworkMs, reexamService: o.reexamNetworkMs + 1000, takeoverGrace: 1500, settle: 500, cpuPressure: 95 });
        break;
      case 'p2p-backup-starter':
        // Confirm wait 30 s: on this shared 2-core machine the two P1 managers of a dead host's VMs
        // were seen to confirm up to ~30 s apart (a starved monitor defers its verdict); 8 s made
        // Fig. 3 fail about one run in three (S6 refused as "confirmed only by S5").
        Object.assign(n, { procedureDir: o.procedureDir, confirmWait: 30, maxOdAttempts: 3, roleMode: 'admin-api', adminPort: o.uiPort });
        if (o.takeoverS !== undefined) n.takeover = o.takeoverS;
        break;
      case 'p2p-od-replicator':
        Object.assign(n, { ods: o.replicator!.ods, reidentify: 'admin-api', adminPort: o.uiPort, procedureDir: o.procedureDir, interval: o.replicator!.intervalS, debounce: 0.5 });
        break;
      case 'debug':
        Object.assign(n, { console: true });
        break;
    }
    out.push(n);
  }
  return out;
}

/**
 * The heartbeat's second output (serving / self-fence / rejoined) drives whether this VM serves:
 * serve-switch keeps the answer in the global p2pServe flag that the stand-in service reads.
 */
function withServeSwitch(wiring: FlowNode[], z: string): FlowNode[] {
  const hb = wiring.find((n) => n.type === 'p2p-heartbeat');
  if (hb) {
    const wires = ((hb.wires as string[][] | undefined) ?? []).slice();
    wires[0] = wires[0] ?? [];
    wires[1] = [...(wires[1] ?? []).filter((w) => w !== 'serve-switch'), 'serve-switch'];
    hb.wires = wires;
  }
  return [
    ...wiring,
    {
      id: 'serve-switch',
      z,
      type: 'function',
      name: 'serve switch',
      func: "global.set('p2pServe', msg.payload.serve === true); node.status({ fill: msg.payload.serve ? 'green' : 'red', shape: 'dot', text: msg.topic }); return null;",
      outputs: 1,
      wires: [[]],
    },
  ];
}

export function recoveryFlow(o: RecoveryFlowOptions): FlowNode[] {
  const z = PRODUCT_TAB;
  const demo = SCAFFOLD_TAB;
  const rsNodes: FlowNode[] = o.realServers.map((r, i) => ({
    id: `rs${i + 1}`,
    type: 'p2p-real-server',
    name: r.name,
    host: r.host,
    port: r.port,
    user: 'root',
    fingerprint: r.fingerprint,
    connectTimeout: 1500,
    commandTimeout: 5000,
    credentials: { privateKey: o.privateKey },
  }));
  const flow: FlowNode[] = [
    { id: z, type: 'tab', label: `recovery ${o.hostname}` },
    // Demo scaffolding, not part of the product: the test's edit endpoint and the stand-in service.
    { id: demo, type: 'tab', label: `demo scaffolding ${o.hostname}`, env: o.member ? [{ name: 'SERVES', value: o.hostname, type: 'str' }] : [] },
    {
      id: 'demo-comment',
      z: demo,
      type: 'comment',
      name: 'Demo scaffolding (not for production): the test edit endpoint and the stand-in service',
      info: 'POST /p2p-test/edit feeds p2p-sem-send so the demo and the tests can seed the replicated files with curl: it bypasses every check the SEM protocol makes, never expose it. GET /svc is the stand-in service the heartbeat checks; a backup\'s installation procedure sets it with POST /svc-config; POST /svc-stop makes it fail. A real VM runs its real services instead (see examples/05-whole-vm.json).',
      wires: [],
    },
    {
      id: 'store',
      type: 'p2p-store',
      name: o.hostname,
      hostname: o.hostname,
      address: o.address,
      realServer: o.realServer,
      services: `http:${o.uiPort}${SERVICE_PATH}`,
      folder: '',
      port: o.semPort,
      seeds: o.seeds.filter((s) => s !== o.address).join(' '),
      syncInterval: 1000,
      requestTimeout: 1000,
      autoJoin: o.member,
      credentials: { secret: o.secret },
    },
    ...rsNodes,
    // The recovery wiring is example 04's (heartbeat -> failures only -> placer -> starter, the
    // replicator), with this VM's settings: the flow the docs show is the flow the tests run.
    ...withServeSwitch(recoveryWiring(o, z), z),
    // Edit endpoint for the test (seeding realserver, available-od, reservation).
    { id: 'edit-in', z: demo, type: 'http in', url: EDIT_PATH, method: 'post', wires: [['send']] },
    { id: 'send', z: demo, type: 'p2p-sem-send', store: 'store', wires: [['edit-out']] },
    { id: 'edit-out', z: demo, type: 'http response', statusCode: '', wires: [] },
    { id: 'edit-catch', z: demo, type: 'catch', scope: ['send'], wires: [['edit-error']] },
    { id: 'edit-error', z: demo, type: 'function', func: 'msg.statusCode = 400; msg.payload = { error: msg.error.message }; return msg;', outputs: 1, wires: [['edit-out']] },
    // The service.
    { id: 'svc-in', z: demo, type: 'http in', url: SERVICE_PATH, method: 'get', wires: [['svc']] },
    {
      id: 'svc',
      z: demo,
      type: 'function',
      func: "const s = global.get('serves') || env.get('SERVES'); if (global.get('p2pServe') !== true) { msg.statusCode = 503; msg.payload = 'self-fenced'; } else if (global.get('stopped')) { msg.statusCode = 503; msg.payload = 'service stopped'; } else if (!s) { msg.statusCode = 503; msg.payload = 'nothing installed'; } else { msg.payload = s; } return msg;",
      outputs: 1,
      wires: [['svc-out']],
    },
    { id: 'svc-out', z: demo, type: 'http response', statusCode: '', wires: [] },
    // The demo's "stop a service": the service answers 503 from now on (a service fault).
    { id: 'svc-stop-in', z: demo, type: 'http in', url: `${SERVICE_PATH}-stop`, method: 'post', wires: [['svc-stop']] },
    { id: 'svc-stop', z: demo, type: 'function', func: "global.set('stopped', true); msg.payload = 'stopped'; return msg;", outputs: 1, wires: [['svc-out']] },
    { id: 'svc-config-in', z: demo, type: 'http in', url: `${SERVICE_PATH}-config`, method: 'post', wires: [['svc-config']] },
    {
      id: 'svc-config',
      z: demo,
      type: 'function',
      func: "const s = String(msg.payload || '').trim(); if (!/^[A-Za-z0-9._-]{1,63}$/.test(s)) { msg.statusCode = 400; msg.payload = 'bad name'; return msg; } global.set('serves', s); msg.payload = 'ok'; return msg;",
      outputs: 1,
      wires: [['svc-out']],
    },
  ];
  // Where each node sits on the canvas: the flow is read in the editor (demo, screenshots).
  for (const n of flow) {
    const xy = LAYOUT[n.id];
    if (xy && n.z) [n.x, n.y] = xy;
  }
  return flow;
}

/** The installation procedure of the test: configure the backup's service over its network. */
export function testProcedure(uiPort: number): string {
  return `#!/bin/sh
# Installs the configuration of $TARGET on the OD $OD (now $BACKUP at $BACKUP_ADDRESS).
set -e
curl -fsS -m 10 --retry 2 --retry-all-errors --retry-delay 1 -X POST -H 'Content-Type: text/plain' --data "$TARGET" "http://$BACKUP_ADDRESS:${uiPort}/svc-config" >/dev/null
`;
}
