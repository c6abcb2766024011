// Every file of examples/ imports and deploys on a fresh Node-RED with this package: no unknown
// node type, no error in the runtime's log, and the flow is running afterwards.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, startCluster, packageRoot } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange } from '../../harness/net';
import { sleep } from '../../harness/wait';

const examplesDir = path.join(packageRoot(), 'examples');
const examples = fs.existsSync(examplesDir) ? fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json')).sort() : [];

describe('example flows', function () {
  this.timeout(120_000);
  let cluster: Cluster;

  before(async () => {
    const range = allocLoopbackRange();
    cluster = await startCluster({ count: 1, ips: [range.ip(1)] });
  });
  after(async () => {
    await cluster?.stopAll();
  });

  it('there is at least one example', () => {
    assert.ok(examples.length > 0, 'examples/ holds no flow');
  });

  for (const file of examples) {
    it(`${file} deploys with no unknown node and no error`, async () => {
      const vm = cluster.vms[0];
      const flow = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8'));
      assert.ok(Array.isArray(flow) && flow.length > 0, 'an example is a non-empty array of nodes');
      const logBefore = cluster.logs(vm).nodeRed.length;
      await cluster.deploy(vm, flow);
      await sleep(1500);
      const log = cluster.logs(vm).nodeRed.slice(logBefore);
      assert.doesNotMatch(log, /missing types|Unknown type|\[error\]/i, `${file}:\n${log}`);
      const state = await httpRequest(vm.url + '/flows/state', { timeoutMs: 5000 });
      assert.equal(JSON.parse(state.body).state, 'start', `flows not running after ${file}`);
      // What was deployed is what the runtime holds (nothing dropped).
      const flows = JSON.parse((await httpRequest(vm.url + '/flows', { timeoutMs: 5000 })).body);
      assert.equal(flows.length, flow.length);
    });
  }
});
