// examples/05-whole-cluster.json is the flow the demo deploys on every VM (recoveryFlow), with a
// VM's values replaced by placeholders and no credentials: this module makes it, a test checks
// the file is what it makes, and running it rewrites the file:
//   node dist/harness/recovery/cluster-example.js
import * as fs from 'fs';
import * as path from 'path';
import type { FlowNode } from '../cluster/launcher';
import { recoveryFlow } from './recovery-flow';

const COMMENT: FlowNode = {
  id: 'ex5-comment',
  z: 'rec-tab',
  type: 'comment',
  name: 'One VM of the cluster (the demo deploys this flow on S1..S6). Set the p2p-store (hostname, address, real server, cluster secret, seeds) and each p2p-real-server (host, key, fingerprint).',
  info: [
    'heartbeat -> switch (failures only) -> backup starter: when a peer this VM watches as P1 dies, it is fenced and a',
    'suspended OD on the least loaded real server takes its role. The OD replicator keeps every real server\'s pool of ODs',
    'at the average number of VMs per real server. The load collector writes the realserver file.',
    '',
    '/p2p-test/edit feeds p2p-sem-send (to seed the available-od and reservation files with curl).',
    '/svc is the demo\'s stand-in service: it answers the name of the server this VM serves; the installation',
    'procedure of a backup sets it with POST /svc-config. Replace it with your real services.',
    'The heartbeat\'s second output (serving / self-fence / rejoined) feeds serve-switch: /svc answers only while this VM',
    'may serve (it is not cut off from the majority of the group, and not fenced). Wire it to whatever stops your services.',
  ].join('\n'),
  x: 470,
  y: 30,
  wires: [],
};

export function clusterExample(): FlowNode[] {
  const flow = recoveryFlow({
    hostname: 'S1',
    address: '127.0.0.1',
    realServer: 'RS1',
    member: true,
    semPort: 18801,
    uiPort: 1880,
    secret: '',
    privateKey: '',
    seeds: ['127.0.0.2', '127.0.0.3'],
    realServers: [1, 2, 3].map((i) => ({ name: `RS${i}`, host: `127.0.0.${10 + i}`, port: 22, fingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })),
    procedureDir: '/var/lib/p2p-ha/install',
    reexamNetworkMs: 2000,
    replicator: { ods: 'ODS-{rs}', intervalS: 30 },
  });
  // Credentials are never part of an exported flow.
  for (const n of flow) delete n.credentials;
  const tab = flow.findIndex((n) => n.type === 'tab');
  flow.splice(tab + 1, 0, COMMENT);
  flow.push({ id: 'collector', z: 'rec-tab', type: 'p2p-load-collector', store: 'store', interval: 10, threshold: 0.1, x: 520, y: 260, wires: [] });
  return flow;
}

export const EXAMPLE_FILE = path.join(__dirname, '..', '..', '..', 'examples', '05-whole-cluster.json');

if (require.main === module) {
  fs.writeFileSync(EXAMPLE_FILE, JSON.stringify(clusterExample(), null, 2) + '\n');
  console.log(`wrote ${EXAMPLE_FILE}`);
}
