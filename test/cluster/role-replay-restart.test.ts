// A captured role call replayed after the OD's Node-RED restarted (issue 14, docs/security.md
// rule 9): the nonce of every admitted call is kept on disk (lib/sem/nonce-journal.ts), so the
// replay is refused by the restarted runtime as it is by the running one, within the call's
// 2-minute window. Real Node-RED processes: S1 (a member) and OD3 (an OD: its store does not join,
// it catches up from S1). The call is made as S1 (its key, the cluster secret) and addressed to
// the OD's address only (no name binding), so that only the nonce can refuse the replay.
// Also: the OD killed (SIGKILL) with a role durable in its role file but not in flows.json (the
// deploy after the answer could not save it) comes back as that role and saves its flow.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, startCluster, Vm } from '../../harness/cluster/launcher';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { semFlow } from '../../harness/flows/sem-flow';
import { sealAdminCall } from '../../lib/sem/admin-call';
import { loadOrCreateVmKey } from '../../lib/sem/vm-key';
import { ROLE_PATH, roleIdentity } from '../../lib/recovery/role';
import { ADMIN_NONCES_FILE } from '../../lib/sem/nonce-journal';
import { ROLE_FILE } from '../../lib/recovery/role-file';
import type { SealedAdminCall } from '../../lib/records/cluster-api';

const SECRET = 'role-replay-restart-secret-0123456789';
const filesOf = (vm: Vm) => path.join(vm.userDir, 'p2p-ha');
const storeOf = (vm: Vm) => (JSON.parse(fs.readFileSync(path.join(vm.userDir, 'flows.json'), 'utf8')) as { type: string; hostname?: string }[]).find((n) => n.type === 'p2p-store');

describe('a role call replayed after the OD\'s runtime restarted is refused (real Node-RED processes)', function () {
  this.timeout(180_000);
  let range: LoopbackRange;
  let cluster: Cluster;
  let semPort = 0;

  before(async () => {
    range = allocLoopbackRange();
    const ips = range.ips(2);
    semPort = await pickPortFreeOnAll(ips);
    cluster = await startCluster({
      names: ['S1', 'OD3'],
      ips,
      flows: (vm) =>
        semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: SECRET, seeds: [ips[0]], syncIntervalMs: 500 }).map((n) =>
          n.type === 'p2p-store' && vm.name === 'OD3' ? { ...n, autoJoin: false } : n,
        ),
    });
    await waitFor(() => /^S1, .*, [A-Za-z0-9+/]{43}=$/m.test(fs.existsSync(path.join(filesOf(cluster.vm('OD3')), 'group')) ? fs.readFileSync(path.join(filesOf(cluster.vm('OD3')), 'group'), 'utf8') : ''), {
      what: "S1's record with its key in the OD's group file",
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await cluster?.stopAll();
    range?.release();
  });

  const send = (od: Vm, call: SealedAdminCall) => httpRequest(od.url + ROLE_PATH, { method: 'POST', headers: call.headers, body: call.body, timeoutMs: 15_000 });
  /** Send once the OD's store runs (while it is being redeployed or started, the route answers 503: not ready yet). */
  const sendToStore = async (od: Vm, call: SealedAdminCall) => {
    let r = { status: 0, body: '' };
    await waitFor(
      async () => {
        r = await send(od, call);
        return r.status !== 503;
      },
      { what: "the OD's store answering role calls", timeoutMs: 60_000, intervalMs: 300 },
    );
    return r;
  };

  it('accepted once; refused as a replay by the running runtime and again after a restart of its process', async () => {
    const [s1, od] = [cluster.vm('S1'), cluster.vm('OD3')];
    const key = loadOrCreateVmKey(filesOf(s1), 'S1');
    const identity = roleIdentity({ target: 'S2', backup: 'S2b', address: od.ip, realServer: 'RS3', services: 'tcp:80', od: 'OD3' }, s1.ip);
    const call = sealAdminCall(SECRET, key, ROLE_PATH, { address: od.ip }, { identity });
    const first = await send(od, call);
    assert.equal(first.status, 200, first.body);
    await waitFor(() => storeOf(od)?.hostname === 'S2b', { what: 'the OD deployed as S2b', timeoutMs: 20_000 });
    const again = await sendToStore(od, call);
    assert.equal(again.status, 409, again.body);
    assert.match(again.body, /replayed/);
    assert.match(fs.readFileSync(path.join(filesOf(od), ADMIN_NONCES_FILE), 'utf8'), /^\d+ [0-9a-f]{32}$/m, 'the nonce on disk');

    // A real restart of the OD's Node-RED: a new process, the in-memory nonces gone.
    const pid = od.pid;
    await cluster.stop(od);
    await cluster.start(od);
    assert.notEqual(od.pid, pid);
    const after = await sendToStore(od, call);
    assert.equal(after.status, 409, after.body);
    assert.match(after.body, /replayed/);
    assert.equal(storeOf(od)?.hostname, 'S2b');

    // A new call from S1 is still taken after the restart (the endpoint works; only the replay is refused).
    const fresh = await sendToStore(od, sealAdminCall(SECRET, key, ROLE_PATH, { address: od.ip }, { identity: { ...identity, services: 'tcp:81' } }));
    assert.equal(fresh.status, 200, fresh.body);
  });

  it('killed with its role durable but not in flows.json, the OD comes back as that role and saves its flow', async () => {
    const [s1, od] = [cluster.vm('S1'), cluster.vm('OD3')];
    const key = loadOrCreateVmKey(filesOf(s1), 'S1');
    const flowsFile = path.join(od.userDir, 'flows.json');
    const was = storeOf(od)!.hostname!;
    const ping = async () => {
      const r = await httpRequest(`http://${od.ip}:${semPort}/p2p/ping`, { timeoutMs: 2000 }).catch(() => ({ status: 0, body: '' }));
      return r.status === 200 ? (JSON.parse(r.body) as { hostname?: string }).hostname : undefined;
    };
    // Node-RED cannot save its flows: flows.json's place is taken by a folder that is not empty.
    fs.renameSync(flowsFile, `${flowsFile}.kept`);
    fs.mkdirSync(path.join(flowsFile, 'x'), { recursive: true });
    try {
      const identity = roleIdentity({ target: 'S7', backup: 'S7b', address: od.ip, realServer: 'RS3', services: 'tcp:82', od: was }, s1.ip);
      const r = await sendToStore(od, sealAdminCall(SECRET, key, ROLE_PATH, { address: od.ip }, { identity }));
      assert.equal(r.status, 200, r.body);
      assert.equal(await ping(), 'S7b', 'answers as S7b at once');
      await waitFor(() => /refused role S7b: the flow deploy that persists the role S7b failed/.test(fs.readFileSync(path.join(filesOf(od), 'sem.log'), 'utf8')), {
        what: "the OD's SEM log saying its flow deploy failed",
        timeoutMs: 20_000,
      });
      assert.equal(await ping(), 'S7b', 'still serves as S7b with its old flow');
      await cluster.kill(od);
    } finally {
      fs.rmSync(flowsFile, { recursive: true, force: true });
      fs.renameSync(`${flowsFile}.kept`, flowsFile);
    }
    assert.equal(storeOf(od)?.hostname, was, 'flows.json still holds the identity before the role');
    assert.ok(fs.existsSync(path.join(filesOf(od), ROLE_FILE)), 'the role is in the role file');
    await cluster.start(od);
    await waitFor(async () => (await ping()) === 'S7b', { what: 'the restarted OD answering as S7b', timeoutMs: 60_000, intervalMs: 200 });
    await waitFor(() => storeOf(od)?.hostname === 'S7b', { what: 'flows.json saved with S7b', timeoutMs: 30_000, intervalMs: 200 });
    assert.equal((storeOf(od) as { services?: string }).services, 'tcp:82');
    await waitFor(() => !fs.existsSync(path.join(filesOf(od), ROLE_FILE)), { what: 'the role file removed', timeoutMs: 10_000 });
    const logs = cluster.logs(od);
    assert.match(`${logs.nodeRed}\n${logs.stdout}`, /flow still says .*starting as S7b/);
  });
});
