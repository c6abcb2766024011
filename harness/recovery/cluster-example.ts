// examples/05-whole-vm.json, the production flow of one VM, is made here from the production
// part of the flow the demo deploys on every VM (recoveryFlow's PRODUCT_TAB and its config nodes,
// never the demo's scaffolding tab): the same nodes with the same settings and wires, ids prefixed
// `ex5-`, a VM's values replaced by placeholders (SITE_FIELDS, the only fields that differ), no
// credentials; then comment nodes, the load collector and a notification branch are added. A unit
// test checks the file is what this makes and that its production part is the demo's. Running it
// rewrites the file:
//   node dist/harness/recovery/cluster-example.js
import * as fs from 'fs';
import * as path from 'path';
import type { FlowNode } from '../cluster/launcher';
import { PRODUCT_TAB, recoveryFlow, SCAFFOLD_TAB, type RecoveryFlowOptions } from './recovery-flow';

export const EXAMPLE_FILE = path.join(__dirname, '..', '..', '..', 'examples', '05-whole-vm.json');

const PREFIX = 'ex5-';
const TAB = PREFIX + PRODUCT_TAB;

/** The demo's options with a VM's values as placeholders the comments tell the operator to set. */
const PLACEHOLDERS: RecoveryFlowOptions = {
  hostname: 'S1',
  address: '192.0.2.11',
  realServer: 'RS1',
  member: true,
  semPort: 18801,
  uiPort: 1880,
  secret: '',
  privateKey: '',
  seeds: ['192.0.2.12', '192.0.2.13'],
  realServers: [1, 2, 3].map((i) => ({ name: `RS${i}`, host: `192.0.2.${i}`, port: 22, fingerprint: 'SHA256:set-the-host-key-fingerprint-of-this-real-server' })),
  procedureDir: '/var/lib/p2p-ha/install',
  reexamNetworkMs: 2000,
  replicator: { ods: 'ODS-{rs}', intervalS: 30 },
};

/** Per node type, the fields that are a site's own values and so differ from the demo. */
export const SITE_FIELDS: Record<string, string[]> = {
  tab: ['label', 'info'],
  'p2p-store': ['services', 'name'],
  'p2p-real-server': ['user'],
};

/** What the example sets those fields to. */
const SITE_VALUES: Record<string, Record<string, unknown>> = {
  tab: {
    label: 'Whole VM: store, real servers, heartbeat, backup start, OD pool, load, notifications',
    info: [
      'The flow every VM of the cluster runs (originals and ODs alike; an OD is not a member until it takes a role).',
      'Import it on each VM, set the p2p-store and the p2p-real-server config nodes, put the installation procedures on the real servers, deploy.',
      'See README.md (Examples) and docs/recovery.md.',
    ].join('\n'),
  },
  'p2p-store': { services: 'tcp:22', name: '' },
  'p2p-real-server': { user: 'p2p-ha' },
};

/** The demo's production part: its product tab, the nodes on it and the config nodes (no z). */
export function demoProductionPart(o: RecoveryFlowOptions = PLACEHOLDERS): FlowNode[] {
  return recoveryFlow(o).filter((n) => n.id !== SCAFFOLD_TAB && n.z !== SCAFFOLD_TAB);
}

function prefixed(n: FlowNode): FlowNode {
  const out: FlowNode = { ...n, id: PREFIX + n.id };
  if (typeof n.z === 'string') out.z = PREFIX + n.z;
  if (typeof n.store === 'string' && n.store) out.store = PREFIX + n.store;
  if (Array.isArray(n.scope)) out.scope = (n.scope as string[]).map((s) => PREFIX + s);
  if (Array.isArray(n.wires)) out.wires = (n.wires as string[][]).map((port) => port.map((w) => PREFIX + w));
  return out;
}

function comment(id: string, x: number, y: number, name: string, info: string[]): FlowNode {
  return { id: PREFIX + id, type: 'comment', z: TAB, name, info: info.join('\n'), x, y, wires: [] };
}

const COMMENTS: FlowNode[] = [
  comment('c-vm', 170, 30, 'This VM: set the p2p-store and each p2p-real-server', [
    'p2p-store (config node): this VM\'s hostname, its address, the real server (KVM host) it runs on, its services',
    '(what the heartbeat checks, e.g. tcp:22 http:8080/health), the cluster secret (the same on every VM) and the',
    'addresses of one or two peers as seeds. Tick "join" on an original server, untick it on an OD.',
    '',
    'p2p-real-server (config nodes RS1..RS3): one per KVM host: its address and SSH port, a user that may run virsh,',
    'the host key fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host) and the private key.',
    'The backup starter and the OD replicator use every configured real server by name.',
  ]),
  comment('c-failover', 150, 120, 'Failure -> fence and start a backup', [
    'The heartbeat watches the peers this VM manages (P1 or P2 in the operation file). A confirmed failure goes to the',
    'backup starter: it fences the failed server, resumes a suspended OD on the least loaded real server, runs the',
    'target\'s installation procedure (<Procedures in>/<TARGET>.sh on that real server, see',
    'examples/install-procedures/S2.sh) and gives the OD the failed server\'s role. Every step shows on the debug node.',
    'The heartbeat\'s second output (serving / self-fence / rejoined) says whether this VM may serve: it is not cut off',
    'from the majority of the group and not fenced. Wire it to whatever stops and starts your services.',
  ]),
  comment('c-pool', 130, 280, 'OD pool and load', [
    'The OD replicator keeps every live real server\'s pool of suspended ODs at the average number of VMs per real',
    'server (identities from the reservation file, e.g. ODS-RS1). The load collector reads each real server\'s load',
    'and writes the realserver file the placement uses. One collector in the cluster is enough; more do no harm.',
  ]),
  comment('c-notify', 170, 420, 'Notifications: wire to mail, MQTT or a webhook', [
    'Failures, recoveries (by a backup or by itself) and failed backup starts become one message:',
    'msg.topic = p2p-ha/<event>/<target>, msg.payload = {event, target, text, at, detail}.',
    'The http request node is disabled: set its URL to your webhook and enable it, or replace it by an',
    'e-mail node (node-red-node-email: msg.topic is the subject, msg.payload.text the body) or an mqtt out',
    'node (broker of your choice; the topic is already set).',
  ]),
];

const FORMAT = [
  "// One message per event an operator must hear about.",
  "let event, target, text;",
  "const p = msg.payload || {};",
  "if (msg.error) {",
  "    event = 'recovery-failed'; target = (p && p.target) || '?';",
  "    text = 'Backup start for ' + target + ' failed: ' + msg.error.message;",
  "} else if (msg.topic === 'failure') {",
  "    event = 'failure'; target = p.target;",
  "    text = target + ' failed (' + p.kind + '), detected by ' + p.detectedBy + ': ' + p.reason;",
  "} else if (msg.topic === 'recovered') {",
  "    event = 'recovered'; target = p.target;",
  "    text = target + ' runs again as ' + p.backup + ' on ' + p.realServer + ' (' + p.address + ')';",
  "} else if (msg.topic === 'recovered-by-itself') {",
  "    event = 'recovered-by-itself'; target = p.target;",
  "    text = target + ' answered again before its failure was confirmed (' + p.kind + ')';",
  "} else {",
  "    return null; // the starter's step messages (recovery/...) are for the debug node",
  "}",
  "return {",
  "    topic: 'p2p-ha/' + event + '/' + target,",
  "    payload: { event, target, text, at: new Date().toISOString(), detail: p },",
  "    headers: { 'content-type': 'application/json' },",
  "};",
].join('\n');

const NOTIFY: FlowNode[] = [
  { id: PREFIX + 'notify-format', type: 'function', z: TAB, name: 'notification', func: FORMAT, outputs: 1, wires: [[PREFIX + 'notify-debug', PREFIX + 'notify-webhook']] },
  { id: PREFIX + 'notify-debug', type: 'debug', z: TAB, name: 'notification', active: true, console: false, complete: 'payload.text', wires: [] },
  {
    id: PREFIX + 'notify-webhook',
    type: 'http request',
    z: TAB,
    d: true,
    name: 'webhook (set the URL, then enable)',
    method: 'POST',
    ret: 'txt',
    paytoqs: 'ignore',
    url: 'https://hooks.example.invalid/p2p-ha',
    tls: '',
    persist: false,
    proxy: '',
    insecureHTTPParser: false,
    authType: '',
    senderr: false,
    headers: [],
    wires: [[]],
  },
];

/** Where the added or moved nodes sit on the canvas. */
const LAYOUT: Record<string, [number, number]> = {
  hb: [140, 170],
  'only-failures': [330, 170],
  starter: [540, 170],
  'log-steps': [790, 170],
  'starter-catch': [540, 220],
  'log-errors': [790, 220],
  replicator: [540, 320],
  collector: [540, 360],
  'notify-format': [560, 460],
  'notify-debug': [800, 440],
  'notify-webhook': [850, 490],
};

export function clusterExample(): FlowNode[] {
  const out: FlowNode[] = [];
  for (const n of demoProductionPart()) {
    const e = prefixed(n);
    // Credentials are never part of an exported flow.
    delete e.credentials;
    Object.assign(e, SITE_VALUES[n.type] ?? {});
    out.push(e);
    if (n.type === 'tab') out.push(...COMMENTS);
  }
  // Failures and recoveries (heartbeat, starter) and failed starts (the catch) are notified too.
  for (const id of ['hb', 'starter', 'starter-catch']) {
    const n = out.find((x) => x.id === PREFIX + id)!;
    (n.wires as string[][])[0].push(PREFIX + 'notify-format');
  }
  out.push(...loadCollectors(out, { interval: 10, threshold: 0.1 }).map((c, i) => ({ ...c, id: PREFIX + c.id, z: TAB, store: PREFIX + 'store', x: 540, y: 360 + 50 * i })));
  out.push(...NOTIFY);
  for (const n of out) {
    const xy = LAYOUT[n.id.slice(PREFIX.length)];
    if (xy && n.z) [n.x, n.y] = xy;
  }
  return out;
}

export const EXAMPLE_PREFIX = PREFIX;

/** One load collector per real server of the flow: each names its p2p-real-server, so Node-RED counts it as used. */
export function loadCollectors(flow: FlowNode[], o: { interval: number; threshold: number }): FlowNode[] {
  return flow
    .filter((n) => n.type === 'p2p-real-server')
    .map((rs, i) => ({
      id: i === 0 ? 'collector' : `collector-${rs.id}`,
      z: 'rec-tab',
      type: 'p2p-load-collector',
      store: 'store',
      realServer: rs.id,
      interval: o.interval,
      threshold: o.threshold,
      x: 900,
      y: 260 + 50 * i,
      wires: [],
    }));
}

if (require.main === module) {
  fs.writeFileSync(EXAMPLE_FILE, JSON.stringify(clusterExample(), null, 2) + '\n');
  console.log(`wrote ${EXAMPLE_FILE}`);
}
