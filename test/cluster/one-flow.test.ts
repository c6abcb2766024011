// One flow for every VM (issue 15): six real Node-RED processes get the very same flow, byte for
// byte, as an operator would export it once and deploy everywhere; the VMs differ only in their
// environment (P2P_HOSTNAME, P2P_ADDRESS, P2P_REAL_SERVER, P2P_SERVICES). The cluster must form:
// every group file lists all six with the identity each VM took from its environment (a flow that
// carried one VM's identity would give six VMs claiming the same record).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, FlowNode, startCluster, Vm } from '../../harness/cluster/launcher';
import { allocLoopbackRange, pickPortFreeOnAll, LoopbackRange } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { parseFile } from '../../lib/records/files';
import { fromMember } from '../../lib/records/records';

const SECRET = 'one-flow-for-every-vm-cluster-secret';
const N = 6;

/** The flow as exported from any one VM: no identity in it, seeds are the first two VMs. */
function sharedFlow(semPort: number, seeds: string[]): FlowNode[] {
  return [
    { id: 'one-tab', type: 'tab', label: 'p2p-ha (same on every VM)' },
    {
      id: 'one-store',
      type: 'p2p-store',
      name: '',
      hostname: '',
      address: '',
      realServer: '',
      services: '',
      folder: '',
      port: semPort,
      seeds: seeds.join(' '),
      syncInterval: 1000,
      requestTimeout: 1000,
      autoJoin: true,
      credentials: { secret: SECRET },
    },
    { id: 'one-hb', z: 'one-tab', type: 'p2p-heartbeat', store: 'one-store', interval: 1000, timeout: 500, reexamNetwork: 2000, reexamService: 3000, takeoverGrace: 1500, settle: 500, wires: [[], []] },
  ];
}

describe('one flow for every VM: six VMs that differ only in their environment', function () {
  this.timeout(240_000);
  let cluster: Cluster;
  let range: LoopbackRange;
  let flow: FlowNode[];
  const rsOf = (i: number) => `RS${(i % 3) + 1}`;

  before(async () => {
    range = allocLoopbackRange();
    const ips = range.ips(N);
    const semPort = await pickPortFreeOnAll(ips);
    flow = sharedFlow(semPort, ips.slice(0, 2));
    const frozen = JSON.stringify(flow);
    cluster = await startCluster({
      count: N,
      ips,
      startTimeoutMs: 120_000,
      // The same array for every VM: nothing in it depends on which VM it goes to.
      flows: () => JSON.parse(frozen) as FlowNode[],
      vmEnv: (vm: Vm) => {
        const i = ips.indexOf(vm.ip);
        return { P2P_HOSTNAME: `S${i + 1}`, P2P_ADDRESS: vm.ip, P2P_REAL_SERVER: rsOf(i), P2P_SERVICES: '-' };
      },
    });
  });

  after(async () => {
    await cluster?.stopAll();
    range?.release();
  });

  const groupOf = (vm: Vm) => {
    const p = path.join(vm.userDir, 'p2p-ha', 'group');
    return fs.existsSync(p) ? parseFile('group', fs.readFileSync(p, 'utf8')).map(fromMember) : [];
  };

  it('the cluster forms: every group file lists all six with the identity from each environment', async () => {
    await waitFor(() => cluster.vms.every((vm) => groupOf(vm).length === N), { what: 'six members in every group file', timeoutMs: 60_000, intervalMs: 250 });
    const want = cluster.vms.map((vm, i) => `S${i + 1} ${vm.ip} ${rsOf(i)}`).sort();
    for (const vm of cluster.vms) {
      const got = groupOf(vm).map((m) => `${m.hostname} ${m.address} ${m.realServer}`).sort();
      assert.deepEqual(got, want, `group file of ${vm.name}`);
    }
  });

  it('every VM runs the identical flow, and each one is itself in it (not a copy of another)', async () => {
    for (const vm of cluster.vms) {
      const r = await httpRequest(`${vm.url}/flows`, { headers: { 'Node-RED-API-Version': 'v1' }, timeoutMs: 10_000 });
      assert.equal(r.status, 200);
      const store = (JSON.parse(r.body) as FlowNode[]).find((n) => n.type === 'p2p-store')!;
      assert.deepEqual([store.hostname, store.address, store.realServer, store.seeds], ['', '', '', flow[1].seeds], `${vm.name} runs the shared flow`);
    }
    // Each VM's store listens on the address from its own environment.
    for (const vm of cluster.vms) {
      assert.match(cluster.logs(vm).nodeRed, new RegExp(`SEM listening on ${vm.ip.replace(/\./g, '\\.')}:`), `${vm.name}'s store on its own address`);
    }
  });
});
