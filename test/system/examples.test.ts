// Every example as users get it (examples/ of the installed tarball, packed-install.ts) imports
// and deploys on a fresh Node-RED (4.1 in the system suite, 5.x in the nr5 suite): no unknown node
// type, no error in the runtime's log, the flow running afterwards, and no config node without a
// user, counted the way the editor counts them (a node's property typed with the config node's
// type holds its id), so the editor's deploy shows no "unused config nodes" warning. Each node
// type of the package (config nodes aside) is in at least one example.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cluster, startCluster } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange } from '../../harness/net';
import { sleep } from '../../harness/wait';
import { configUse, copyUserDir, nodeDefs, packedInstall, type NodeDefs } from './packed-install';

describe('example flows (from the installed tarball)', function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let tmp: string;
  let examplesDir: string;
  let examples: string[] = [];
  let defs: NodeDefs;
  let ourTypes: string[];

  before(async function () {
    this.timeout(600_000);
    const packed = await packedInstall();
    examplesDir = path.join(packed.installed, 'examples');
    examples = fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json')).sort();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-examples-'));
    const baseDir = path.join(tmp, 'vms');
    copyUserDir(packed, path.join(baseDir, 'ex'));
    const range = allocLoopbackRange();
    cluster = await startCluster({ names: ['ex'], ips: [range.ip(1)], baseDir, installPackage: false, startTimeoutMs: 60_000 });
    const url = cluster.vms[0].url;
    defs = nodeDefs((await httpRequest(`${url}/nodes?lng=en-US`, { headers: { Accept: 'text/html' } })).body);
    const sets = JSON.parse((await httpRequest(`${url}/nodes`, { headers: { Accept: 'application/json' } })).body) as Array<{ module: string; types: string[] }>;
    ourTypes = sets.filter((s) => s.module === packed.name).flatMap((s) => s.types);
  });
  after(async function () {
    this.timeout(30_000);
    await cluster?.stopAll();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('there is at least one example, and one for every node of the package', () => {
    assert.ok(examples.length > 0, 'examples/ holds no flow');
    assert.ok(ourTypes.length > 0, 'the package registered no node type');
    const used = new Set(examples.flatMap((f) => (JSON.parse(fs.readFileSync(path.join(examplesDir, f), 'utf8')) as Array<{ type: string }>).map((n) => n.type)));
    const missing = ourTypes.filter((t) => !defs.configTypes.has(t) && !used.has(t));
    assert.deepEqual(missing, [], 'node types with no example');
  });

  // Mocha needs the tests at load time, before the tarball exists: they are listed from the
  // checkout's examples/ and the tarball's are checked to be the same files.
  const checkoutExamples = fs.readdirSync(path.join(__dirname, '..', '..', '..', 'examples')).filter((f) => f.endsWith('.json')).sort();

  it('the tarball ships the checkout\'s examples', () => {
    assert.deepEqual(examples, checkoutExamples);
  });

  for (const file of checkoutExamples) {
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

    it(`${file}: every config node has a user (no "unused config nodes" warning)`, function () {
      const flow = JSON.parse(fs.readFileSync(path.join(examplesDir, file), 'utf8')) as Array<Record<string, unknown>>;
      const use = configUse(flow, defs);
      assert.deepEqual(use.unused, [], `${file}: config nodes no node uses`);
      if (use.unreferenceable.length > 0) {
        // No registered node type has a property of that config type, so the flow cannot give it
        // a user: the node definitions must change (the editor half of issue 11), not the example.
        console.log(`      (pending: no node type can reference ${use.unreferenceable.join(', ')})`);
        this.skip();
      }
    });
  }
});
