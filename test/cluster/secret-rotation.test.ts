// Cluster-secret rotation without a partition (docs/operations.md, "Rotate the cluster secret"):
// three real Node-RED processes change their secret one at a time (new secret, the old one as
// "previous secret" until a common end time); after each change an edit on every VM reaches every
// other VM; after the window the old secret is refused and edits still flow.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, startCluster, Vm } from '../../harness/cluster/launcher';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { semFlow, EDIT_PATH } from '../../harness/flows/sem-flow';
import { encodeDiff } from '../../lib/sem/sem-protocol';
import { semPost } from '../support/sem-wire';
import { main as cli } from '../../lib/ops/cli';

const OLD = 'old-cluster-secret-0123456789abcdef';
const NEW = 'new-cluster-secret-fedcba9876543210';

const filesOf = (vm: Vm) => path.join(vm.userDir, 'p2p-ha');

async function edit(vm: Vm, line: string) {
  const r = await httpRequest(vm.url + EDIT_PATH, { method: 'POST', body: line, headers: { 'Content-Type': 'text/plain' }, timeoutMs: 15_000 });
  return { status: r.status, body: JSON.parse(r.body) as { acked?: { peer: string }[]; failed?: { peer: string; error: string }[]; error?: string } };
}

describe('cluster-secret rotation between three Node-RED processes', function () {
  this.timeout(240_000);
  let cluster: Cluster;
  let range: LoopbackRange;
  let ips: string[];
  let semPort: number;
  let n = 0;

  before(async () => {
    range = allocLoopbackRange();
    ips = [1, 2, 3].map((i) => range.ip(i));
    semPort = await pickPortFreeOnAll(ips);
    cluster = await startCluster({ count: 3, ips, flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: OLD, seeds: ips }) });
    await waitFor(() => cluster.vms.every((vm) => (fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8').match(/^S\d/gm) ?? []).length === 3), {
      what: 'three members in every group file',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await cluster?.stopAll();
    range?.release();
  });

  /** An edit on every VM lands in the files of both others (acknowledged, or by the digest
   * exchange a second later when a peer was marked down by the redeploy just before). */
  async function everyEditReachesEveryVm(stage: string) {
    for (const vm of cluster.vms) {
      n += 1;
      const od = `OD${n}`;
      const r = await edit(vm, `available-od, Add, ${od}, 127.0.3.${n}, RS1`);
      assert.equal(r.status, 200, `${stage}: ${vm.name}: ${JSON.stringify(r.body)}`);
      const has = (other: Vm) => new RegExp(`^${od}, `, 'm').test(fs.readFileSync(path.join(filesOf(other), 'available-od'), 'utf8'));
      await waitFor(() => cluster.vms.every(has), { what: `${stage}: ${vm.name}'s ${od} on every VM (failed: ${JSON.stringify(r.body.failed)})`, timeoutMs: 15_000, intervalMs: 100 });
    }
  }

  /** The VM's store answers on its SEM port again after a deploy. */
  const listening = (vm: Vm) =>
    waitFor(async () => (await httpRequest(`http://${vm.ip}:${semPort}/p2p/ping`, { timeoutMs: 2000 }).catch(() => ({ status: 0 }))).status === 200, {
      what: `${vm.name}'s store listening again`,
      timeoutMs: 15_000,
      intervalMs: 100,
    });

  it('rotates one VM at a time with every edit reaching every VM; after the window the old secret is refused', async () => {
    await everyEditReachesEveryVm('before');
    // One end time for every VM's window, long enough for the rolling change under load.
    const until = Date.now() + 60_000;
    // S1 as the editor does it (a deploy of its store with the three settings); S2 and S3 with
    // `p2p-ha rotate-secret` (lib/ops/cli.ts) against their admin API, as an operator would.
    fs.writeFileSync(path.join(cluster.vms[0].userDir, 'new-secret'), NEW + '\n', { mode: 0o600 });
    fs.writeFileSync(path.join(cluster.vms[0].userDir, 'old-secret'), OLD + '\n', { mode: 0o600 });
    for (const vm of cluster.vms) {
      if (vm === cluster.vms[0]) {
        const flows = semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: NEW, seeds: ips }).map((node) =>
          node.type === 'p2p-store' ? { ...node, previousUntil: new Date(until).toISOString(), credentials: { secret: NEW, previousSecret: OLD } } : node,
        );
        await cluster.deploy(vm, flows);
      } else {
        let out = '';
        let err = '';
        const code = await cli(
          ['rotate-secret', '--url', vm.url, '--secret-file', path.join(cluster.vms[0].userDir, 'new-secret'), '--previous-secret-file', path.join(cluster.vms[0].userDir, 'old-secret'), '--until', new Date(until).toISOString()],
          { out: (t) => (out += t), err: (t) => (err += t), env: {} },
        );
        assert.equal(code, 0, err);
        assert.match(out, new RegExp(`new cluster secret deployed; the previous one is accepted until ${new Date(until).toISOString()}`));
      }
      await listening(vm);
      await everyEditReachesEveryVm(`after ${vm.name} changed`);
    }
    // Within the window a VM still takes a message under the old secret.
    const s1 = cluster.vms[0];
    const diff = (seq: number) => encodeDiff({ file: 'available-od', op: 'Add', record: [`ODX${seq}`, '127.0.4.1', 'RS1'], origin: 'S9', seq, lamport: 5 });
    const inWindow = await semPost(s1.ip, semPort, '/p2p/sem/diff', diff(1), { secret: OLD });
    // (Refused further on, for its missing VM signature: past the MAC and the sealing.)
    assert.doesNotMatch(inWindow.body, /HMAC/, `the old secret still opens the door in the window: ${inWindow.body}`);
    assert.match(inWindow.body, /without a VM signature/);
    // After the window: the old secret is refused before anything is read of the message.
    await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now() + 500)));
    const after = await semPost(s1.ip, semPort, '/p2p/sem/diff', diff(2), { secret: OLD });
    assert.equal(after.status, 401, after.body);
    assert.match(after.body, /HMAC does not match the cluster secret/);
    const withNew = await semPost(s1.ip, semPort, '/p2p/sem/diff', diff(3), { secret: NEW });
    assert.match(withNew.body, /without a VM signature/, 'the new secret is taken (the unsigned diff is refused later, by its missing VM signature)');
    await everyEditReachesEveryVm('after the window');
  });
});
