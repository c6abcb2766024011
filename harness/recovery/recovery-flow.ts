// The flow every VM of the recovery cluster runs: its p2p-store, the three real servers, the
// heartbeat feeding the backup starter (failures only), optionally the OD replicator, an edit
// endpoint (for the test to seed files), and the VM's "service": GET /svc answers the name of the
// server this VM serves (the tab's SERVES variable for an original VM, or what the installation
// procedure set by POST /svc-config on a backup), 503 when nothing is installed (an OD). The
// heartbeat's isolation output switches it: it answers only after "serving"/"rejoined", 503 after
// "self-fence" (isolated, or fenced: docs/recovery.md).
import type { FlowNode } from '../cluster/launcher';

export const EDIT_PATH = '/p2p-test/edit';
export const SERVICE_PATH = '/svc';

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
}

const LAYOUT: Record<string, [number, number]> = {
  hb: [130, 80],
  'only-failures': [320, 80],
  starter: [520, 80],
  'log-steps': [760, 80],
  'starter-catch': [520, 140],
  'log-errors': [760, 140],
  replicator: [520, 200],
  collector: [520, 260],
  'edit-in': [150, 340],
  send: [360, 340],
  'edit-out': [580, 340],
  'edit-catch': [150, 400],
  'edit-error': [360, 400],
  'svc-in': [140, 480],
  svc: [360, 480],
  'svc-out': [580, 480],
  'svc-config-in': [160, 540],
  'svc-config': [360, 540],
  'svc-stop-in': [150, 600],
  'svc-stop': [360, 600],
  'serve-switch': [320, 20],
};

export function recoveryFlow(o: RecoveryFlowOptions): FlowNode[] {
  const z = 'rec-tab';
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
    { id: z, type: 'tab', label: `recovery ${o.hostname}`, env: o.member ? [{ name: 'SERVES', value: o.hostname, type: 'str' }] : [] },
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
    {
      id: 'hb',
      z,
      type: 'p2p-heartbeat',
      store: 'store',
      interval: 500,
      timeout: 300,
      reexamNetwork: o.reexamNetworkMs,
      reexamService: o.reexamNetworkMs + 1000,
      takeoverGrace: 1500,
      settle: 500,
      cpuPressure: 95,
      wires: [['only-failures'], ['serve-switch']],
    },
    {
      id: 'serve-switch',
      z,
      type: 'function',
      func: "global.set('p2pServe', msg.payload.serve === true); node.status({ fill: msg.payload.serve ? 'green' : 'red', shape: 'dot', text: msg.topic }); return null;",
      outputs: 1,
      wires: [[]],
    },
    {
      id: 'only-failures',
      z,
      type: 'switch',
      property: 'topic',
      propertyType: 'msg',
      rules: [{ t: 'eq', v: 'failure', vt: 'str' }],
      checkall: 'true',
      outputs: 1,
      wires: [['starter']],
    },
    {
      id: 'starter',
      z,
      type: 'p2p-backup-starter',
      store: 'store',
      procedureDir: o.procedureDir,
      confirmWait: 8,
      maxOdAttempts: 3,
      roleMode: 'admin-api',
      adminPort: o.uiPort,
      wires: [['log-steps']],
    },
    { id: 'log-steps', z, type: 'debug', name: 'recovery', active: true, console: true, complete: 'payload', wires: [] },
    { id: 'starter-catch', z, type: 'catch', scope: ['starter'], wires: [['log-errors']] },
    { id: 'log-errors', z, type: 'debug', name: 'recovery error', active: true, console: true, complete: 'error', wires: [] },
    // Edit endpoint for the test (seeding realserver, available-od, reservation).
    { id: 'edit-in', z, type: 'http in', url: EDIT_PATH, method: 'post', wires: [['send']] },
    { id: 'send', z, type: 'p2p-sem-send', store: 'store', wires: [['edit-out']] },
    { id: 'edit-out', z, type: 'http response', statusCode: '', wires: [] },
    { id: 'edit-catch', z, type: 'catch', scope: ['send'], wires: [['edit-error']] },
    { id: 'edit-error', z, type: 'function', func: 'msg.statusCode = 400; msg.payload = { error: msg.error.message }; return msg;', outputs: 1, wires: [['edit-out']] },
    // The service.
    { id: 'svc-in', z, type: 'http in', url: SERVICE_PATH, method: 'get', wires: [['svc']] },
    {
      id: 'svc',
      z,
      type: 'function',
      func: "const s = global.get('serves') || env.get('SERVES'); if (global.get('p2pServe') !== true) { msg.statusCode = 503; msg.payload = 'self-fenced'; } else if (global.get('stopped')) { msg.statusCode = 503; msg.payload = 'service stopped'; } else if (!s) { msg.statusCode = 503; msg.payload = 'nothing installed'; } else { msg.payload = s; } return msg;",
      outputs: 1,
      wires: [['svc-out']],
    },
    { id: 'svc-out', z, type: 'http response', statusCode: '', wires: [] },
    // The demo's "stop a service": the service answers 503 from now on (a service fault).
    { id: 'svc-stop-in', z, type: 'http in', url: `${SERVICE_PATH}-stop`, method: 'post', wires: [['svc-stop']] },
    { id: 'svc-stop', z, type: 'function', func: "global.set('stopped', true); msg.payload = 'stopped'; return msg;", outputs: 1, wires: [['svc-out']] },
    { id: 'svc-config-in', z, type: 'http in', url: `${SERVICE_PATH}-config`, method: 'post', wires: [['svc-config']] },
    {
      id: 'svc-config',
      z,
      type: 'function',
      func: "const s = String(msg.payload || '').trim(); if (!/^[A-Za-z0-9._-]{1,63}$/.test(s)) { msg.statusCode = 400; msg.payload = 'bad name'; return msg; } global.set('serves', s); msg.payload = 'ok'; return msg;",
      outputs: 1,
      wires: [['svc-out']],
    },
  ];
  if (o.replicator) {
    flow.push({
      id: 'replicator',
      z,
      type: 'p2p-od-replicator',
      store: 'store',
      ods: o.replicator.ods,
      reidentify: 'admin-api',
      adminPort: o.uiPort,
      procedureDir: o.procedureDir,
      interval: o.replicator.intervalS,
      debounce: 0.5,
      wires: [['log-steps']],
    });
  }
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
curl -fsS -m 5 -X POST -H 'Content-Type: text/plain' --data "$TARGET" "http://$BACKUP_ADDRESS:${uiPort}/svc-config" >/dev/null
`;
}
