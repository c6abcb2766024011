// POST /p2p-ha/role in a Node-RED runtime (node-red-node-test-helper): an OD's p2p-store (autoJoin
// off, catching up from a member) takes the backup's identity from a call signed by that member,
// through the runtime's own flows; forged, unsigned, replayed, non-member and misaddressed calls
// are refused and change nothing. The callers are real ReplicatedStores on loopback addresses.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import storeNode = require('../../nodes/p2p-store');
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { ROLE_PATH, roleIdentity } from '../../lib/recovery/role';
import { SIG_HEADER } from '../../lib/sem/vm-key';
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';
import type { SealedAdminCall } from '../../lib/records/cluster-api';
import { execFileSync } from 'child_process';
import { runtimeFlowsProblem } from '../../nodes/common/runtime-flows';
import { installRoleEndpoint, roleCallsSettled } from '../../nodes/common/role-endpoint';
import { deployOwnIdentity } from '../../nodes/common/runtime-flows';
import type { StoreNode } from '../../nodes/common/store-user';

helper.init(require.resolve('node-red'));

const SECRET = 'role-endpoint-secret-0123456789';
const range = allocLoopbackRange();
const S1 = range.ip(1);
const S9 = range.ip(9);
const OD = range.ip(21);

describe('role calls to a runtime (POST /p2p-ha/role)', function () {
  this.timeout(30_000);
  let dir: string;
  let port: number;
  const callers: ReplicatedStore[] = [];

  before(async () => {
    port = await pickPortFreeOnAll([S1, S9, OD]);
  });
  after(() => range.release());

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-role-endpoint-'));
    await new Promise<void>((resolve) => helper.startServer(() => resolve()));
  });

  afterEach(async () => {
    // A flow deploy runs after a role call's answer: let it finish in this test's runtime.
    await roleCallsSettled();
    for (const c of callers.splice(0)) await c.stop();
    await helper.unload();
    await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const caller = async (hostname: string, address: string, autoJoin: boolean) => {
    const seeds = address === S1 ? [] : [S1];
    const s = new ReplicatedStore({ identity: { hostname, address, realServer: 'RS1', services: '-' }, folder: path.join(dir, hostname), port, secret: SECRET, autoJoin, seeds, syncIntervalMs: 300 });
    callers.push(s);
    await s.start();
    return s;
  };

  const odStore = () => (helper.getNode('store') as unknown as { files: ReplicatedStore }).files;

  const odFlow = (syncInterval = 300) => [
    { id: 'f1', type: 'tab' },
    { id: 'store', type: 'p2p-store', hostname: 'OD3', address: OD, realServer: 'RS3', services: '-', folder: path.join(dir, 'OD3'), port, seeds: S1, syncInterval, autoJoin: false },
  ];
  const roleFile = () => path.join(dir, 'OD3', '.role.json');

  async function start(modules: unknown[] = [storeNode], syncInterval?: number) {
    const s1 = await caller('S1', S1, true);
    await helper.load(modules as (typeof storeNode)[], odFlow(syncInterval), { store: { secret: SECRET } });
    // The OD catches up from S1: S1's record, with its key, is in the OD's own files.
    await waitFor(() => odStore().get("group", "S1")?.[5] === s1.publicKey, { what: "S1's key in the OD's group file", timeoutMs: 10_000 }).catch((e) => {
      throw new Error(`${e.message}: OD store ${odStore().identity.hostname} ${odStore().status.text}; group ${JSON.stringify(odStore().records("group"))}`);
    });
    return s1;
  }

  const role = { target: 'S2', backup: 'S2b', address: OD, realServer: 'RS3', services: 'tcp:80', od: 'OD3' };
  const send = (call: SealedAdminCall) => helper.request().post(ROLE_PATH).set(call.headers).send(call.body);
  const flowStore = () =>
    (helper as unknown as { _redNodes: { getFlows(): { flows: { type: string; hostname?: string; services?: string; autoJoin?: boolean; seeds?: string }[] } } })._redNodes
      .getFlows()
      .flows.find((n) => n.type === 'p2p-store')!;
  const unchanged = () => {
    assert.equal(odStore().identity.hostname, 'OD3');
    const flows = (helper as unknown as { _redNodes: { getFlows(): { flows: { type: string; hostname?: string }[] } } })._redNodes.getFlows().flows;
    assert.equal(flows.find((n) => n.type === 'p2p-store')!.hostname, 'OD3');
  };

  it('a member\'s signed call makes the OD the backup, in its flows; a replay is refused', async () => {
    const s1 = await start();
    const running = odStore();
    const call = s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) });
    const r = await send(call);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // Answered once the store listens as S2b (the caller need not poll it).
    assert.deepEqual(r.body, { ok: true, hostname: 'S2b', listening: true });
    assert.equal(running.identity.hostname, 'S2b');
    // The flow deploy runs after the answer; then the role file has done its work.
    await roleCallsSettled();
    assert.ok(!fs.existsSync(roleFile()), 'the role file is removed once the flow holds the role');
    // Switched in place: the running store was handed to the store node's next instance, not rebuilt.
    assert.equal(odStore(), running, 'the same store, still running');
    assert.equal(flowStore().hostname, 'S2b', 'persisted in the flows');
    assert.equal(flowStore().services, 'tcp:80');
    assert.equal(odStore().identity.address, OD);
    assert.equal(odStore().identity.services, 'tcp:80');
    // The same call again (the new store instance still knows its nonce).
    const again = await send(call);
    assert.equal(again.status, 409);
    assert.match(again.body.error, /replayed/);
    assert.equal(odStore().identity.hostname, 'S2b');
  });

  it('refuses unsigned, forged, non-member, misaddressed and address-changing calls, changing nothing', async () => {
    const s1 = await start();
    const payload = { identity: roleIdentity(role, S1) };
    const good = s1.sealAdminCall(ROLE_PATH, { address: OD, hostname: 'OD3' }, payload);
    const unsigned = { ...good, headers: { ...good.headers } };
    delete unsigned.headers[SIG_HEADER];
    let r = await send(unsigned);
    assert.equal(r.status, 401);
    assert.match(r.body.error, /without a VM signature/);
    // An insider holding the cluster secret but not S1's key: its own key, S1's name.
    const s9 = await caller('S9', S9, false);
    const own = s9.sealAdminCall(ROLE_PATH, { address: OD }, payload);
    r = await send(own);
    assert.equal(r.status, 403);
    assert.match(r.body.error, /S9 is not in this VM's group file/);
    const forged = s9.sealAdminCall(ROLE_PATH, { address: OD }, payload);
    const claimS1 = { ...forged, headers: { ...forged.headers, [SIG_HEADER]: good.headers[SIG_HEADER] } };
    r = await send(claimS1);
    assert.equal(r.status, 401);
    r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD, hostname: 'OD4' }, payload));
    assert.equal(r.status, 421);
    r = await send(s1.sealAdminCall(ROLE_PATH, { address: range.ip(22) }, payload));
    assert.equal(r.status, 421);
    r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: { ...payload.identity, address: range.ip(22) } }));
    assert.equal(r.status, 400);
    assert.match(r.body.error, /keeps its address/);
    r = await helper.request().post(ROLE_PATH).set('content-type', 'application/json').send({ identity: payload.identity });
    assert.equal(r.status, 415);
    await new Promise((res) => setTimeout(res, 300));
    unchanged();
  });

  it('answers 503 (not ready: the caller retries) while the runtime has no store yet', async () => {
    // The admin API answers before the flows start: a clone a moment from ready has no store yet.
    await helper.load([storeNode], [{ id: 'f1', type: 'tab' }]);
    const s1 = await caller('S1', S1, true);
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.match(r.body.error, /no p2p-store running \(yet\)/);
  });

  it('refuses a call from a member fenced in the OD\'s files', async () => {
    const s1 = await start();
    const s9 = await caller('S9', S9, true);
    await waitFor(() => odStore().get('group', 'S9')?.[5] === s9.publicKey, { what: "S9's key at the OD", timeoutMs: 10_000 });
    // S9 marked fenced (as a recovery of it would): the OD learns it by anti-entropy.
    const have = s1.get('group', 'S9')!;
    const p = { target: 'S9', detectedBy: 'S1', kind: 'service', status: 'confirmed', backup: '-', since: new Date().toISOString() };
    await s1.edit({ file: 'problem', op: 'Add', record: [p.target, p.detectedBy, p.kind, p.status, p.backup, p.since] });
    await s1.edit({ file: 'group', op: 'Mod', before: have, record: [...have.slice(0, 4), 'fenced', have[5]] });
    await waitFor(() => odStore().get('group', 'S9')?.[4] === 'fenced', { what: 'S9 fenced at the OD', timeoutMs: 10_000 });
    const r = await send(s9.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S9) }));
    assert.equal(r.status, 403);
    assert.match(r.body.error, /S9 is fenced/);
    unchanged();
  });

  it('a role that cannot be made durable leaves the OD as it was: the store switched in place is switched back', async () => {
    const s1 = await start();
    const running = odStore();
    const keyOD = running.publicKey;
    // The role file's place taken by a folder that is not empty: the durable write's rename fails.
    fs.mkdirSync(path.join(roleFile(), 'x'), { recursive: true });
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.match(r.body.error, /could not be made durable/);
    unchanged();
    assert.equal(odStore(), running);
    assert.equal(running.publicKey, keyOD, "signs with the OD's key again");
    const ping = await fetch(`http://${OD}:${port}/p2p/ping`).then((x) => x.json() as Promise<{ hostname: string }>);
    assert.equal(ping.hostname, 'OD3');
  });

  it("makes the new name's keys before the switch: keys that cannot be made leave the OD as it was", async () => {
    const s1 = await start();
    const running = odStore();
    const keyOD = running.publicKey;
    const asked: string[] = [];
    running.prepareIdentityKeys = async (hostname: string) => {
      asked.push(`${hostname} asked while ${running.identity.hostname}`);
      throw new Error('no space left on device (test)');
    };
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.match(r.body.error, /no space left on device \(test\)/);
    assert.deepEqual(asked, ['S2b asked while OD3'], 'asked once, before the switch');
    unchanged();
    assert.equal(odStore(), running);
    assert.equal(running.publicKey, keyOD);
    assert.ok(!fs.existsSync(roleFile()), 'no role file');
  });

  it('answers once the role is durable, before its flow deploy; a second call waits for that deploy', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    const gatedDeploy = (RED: Parameters<typeof installRoleEndpoint>[0]) =>
      installRoleEndpoint(RED, async (id, nodeId) => {
        await gate;
        await deployOwnIdentity(id, nodeId);
      });
    const s1 = await start([gatedDeploy, storeNode]);
    const running = odStore();
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { ok: true, hostname: 'S2b', listening: true });
    // Answered with the deploy still to come: the flow says OD3, the store and its role file S2b.
    assert.equal(flowStore().hostname, 'OD3');
    assert.equal(running.identity.hostname, 'S2b');
    const file = JSON.parse(fs.readFileSync(roleFile(), 'utf8')) as { from: { hostname: string }; to: { hostname: string; seeds?: string } };
    assert.equal(file.from.hostname, 'OD3');
    assert.equal(file.to.hostname, 'S2b');
    assert.equal(file.to.seeds, S1);
    // A second call while that deploy waits is not taken before it is done.
    let second: { status: number; body: { hostname?: string } } | undefined;
    const b = send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: { ...roleIdentity(role, S1), hostname: 'S2c' } })).then((x: { status: number; body: { hostname?: string } }) => (second = x));
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(second, undefined, 'the second call waits for the first one\'s deploy');
    assert.equal(running.identity.hostname, 'S2b');
    open();
    await b;
    assert.equal(second!.status, 200, JSON.stringify(second!.body));
    await roleCallsSettled();
    assert.equal(odStore(), running, 'the same store, handed over by both deploys');
    assert.equal(odStore().identity.hostname, 'S2c');
    assert.equal(flowStore().hostname, 'S2c');
    assert.ok(!fs.existsSync(roleFile()));
  });

  it('the backup catches up with the manager that called at once, not at its next round', async () => {
    // Anti-entropy every 60 s: only the role call's own catch-up can bring the manager's edits in time.
    const s1 = await start([storeNode], 60_000);
    // Made while the OD (no member, no peer) gets no diffs: the claim and the target fenced.
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'service', 'recovering', 'S2b', new Date().toISOString()] });
    assert.equal(odStore().get('problem', 'S2'), undefined, 'the OD has not seen the claim yet');
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor(() => odStore().get('problem', 'S2')?.[3] === 'recovering', { what: "the manager's claim in the backup's files", timeoutMs: 5_000 });
  });

  it('once the commit makes it a member, the backup catches up with the managers of the other recoveries in hand', async () => {
    const s1 = await start([storeNode], 60_000);
    const s9 = await caller('S9', S9, true);
    // Another recovery under way, S9's: its commit may be sent before S9 knows the backup as a member.
    await s9.edit({ file: 'problem', op: 'Add', record: ['S5', 'S9', 'network', 'recovering', 'S5b', new Date().toISOString()] });
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'recovering', 'S2b', new Date().toISOString()] });
    await waitFor(() => s1.get('problem', 'S5') !== undefined, { what: "S9's claim at S1", timeoutMs: 5_000 });
    const od = odStore();
    const asked: string[] = [];
    const exchange = od.exchange.bind(od);
    od.exchange = (target, name) => {
      asked.push(name ?? target.address);
      return exchange(target, name);
    };
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The catch-up with the caller brings both claims.
    await waitFor(() => od.get('problem', 'S5') !== undefined && od.get('problem', 'S2') !== undefined, { what: 'both claims in the backup\'s files', timeoutMs: 5_000 });
    assert.deepEqual(asked, ['S1']);
    // The commit: now a member, it asks the managers of both recoveries.
    await s1.edit({ file: 'group', op: 'Add', record: ['S2b', OD, 'RS3', 'tcp:80'] });
    await waitFor(() => asked.includes('S9'), { what: 'an exchange with S9 once a member', timeoutMs: 4_000 });
    assert.deepEqual([...new Set(asked)].sort(), ['S1', 'S9'], 'only the managers of the recoveries in hand');
  });

  it("the flow deploy after the answer waits for the manager's commit that makes the VM a member", async () => {
    let memberAtDeploy: boolean | undefined;
    const recordingDeploy = (RED: Parameters<typeof installRoleEndpoint>[0]) =>
      installRoleEndpoint(RED, async (id, nodeId) => {
        memberAtDeploy = odStore().get('group', 'S2b') !== undefined;
        await deployOwnIdentity(id, nodeId);
      });
    const s1 = await start([recordingDeploy, storeNode]);
    // The manager's claim naming S2b as the backup (rule G3 lets it add S2b's record).
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'service', 'recovering', 'S2b', new Date().toISOString()] });
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The commit, as the backup starter makes it once the role call answered.
    await s1.edit({ file: 'group', op: 'Add', record: ['S2b', OD, 'RS3', 'tcp:80'] });
    await roleCallsSettled();
    assert.equal(memberAtDeploy, true, 'deployed only once S2b was a member');
    assert.equal(flowStore().hostname, 'S2b');
  });

  it('with another recovery under way, the flow deploy also waits for its commit', async () => {
    let otherAtDeploy: string | undefined;
    const recordingDeploy = (RED: Parameters<typeof installRoleEndpoint>[0]) =>
      installRoleEndpoint(RED, async (id, nodeId) => {
        otherAtDeploy = odStore().get('problem', 'S5')?.[3];
        await deployOwnIdentity(id, nodeId);
      });
    const s1 = await start([recordingDeploy, storeNode]);
    const s9 = await caller('S9', S9, true);
    const other = ['S5', 'S9', 'network', 'recovering', 'S5b', new Date().toISOString()];
    await s9.edit({ file: 'problem', op: 'Add', record: other });
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'recovering', 'S2b', new Date().toISOString()] });
    await waitFor(() => odStore().get('problem', 'S5') !== undefined, { what: "S9's recovery in the OD's files", timeoutMs: 5_000 });
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await s1.edit({ file: 'group', op: 'Add', record: ['S2b', OD, 'RS3', 'tcp:80'] });
    await waitFor(() => s9.get('group', 'S2b') !== undefined, { what: 'S2b a member at S9', timeoutMs: 5_000 });
    // S9's commit, well after S1's (a member + SETTLE_MS was the old wait): the deploy waited for it.
    await new Promise((r) => setTimeout(r, 700));
    await s9.edit({ file: 'problem', op: 'Mod', before: other, record: [...other.slice(0, 3), 'recovered', ...other.slice(4)] });
    await roleCallsSettled();
    assert.equal(otherAtDeploy, 'recovered', 'deployed only once the other recovery was committed');
    assert.equal(flowStore().hostname, 'S2b');
  });

  it('a deploy that fails after the answer: the OD serves as the backup with its old flow and says so; a restart starts as the backup and persists it', async () => {
    const failingDeploy = (RED: Parameters<typeof installRoleEndpoint>[0]) => installRoleEndpoint(RED, async () => {
      throw new Error('ENOSPC: no space left on device');
    });
    const s1 = await start([failingDeploy, storeNode]);
    const running = odStore();
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await roleCallsSettled();
    // Nothing half-made: the store serves as S2b (the manager goes on to its group Add), the flow
    // is the OD's, and the store's status says the flow is not saved, with the reason.
    assert.equal(odStore(), running);
    assert.equal(running.identity.hostname, 'S2b');
    assert.equal(flowStore().hostname, 'OD3');
    const ping = await fetch(`http://${OD}:${port}/p2p/ping`).then((x) => x.json() as Promise<{ hostname: string }>);
    assert.equal(ping.hostname, 'S2b');
    const status = (helper.getNode('store') as unknown as StoreNode).storeStatus();
    assert.equal(status.state, 'degraded');
    assert.match(status.text, /flow not saved: the flow deploy that persists the role S2b failed: ENOSPC/);
    // The SEM log is written in the background.
    await waitFor(() => /refused role S2b: the flow deploy that persists the role S2b failed: ENOSPC/.test(fs.readFileSync(path.join(dir, 'OD3', 'sem.log'), 'utf8')), {
      what: 'the SEM log line',
      timeoutMs: 10_000,
    });
    assert.ok(fs.existsSync(roleFile()), 'the role stays in its role file');

    // The runtime restarts with the flow that still says OD3 (as after a crash between the answer
    // and the deploy): the store starts as S2b from its role file and deploys the flow with it.
    await helper.unload();
    await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
    await new Promise<void>((resolve) => helper.startServer(() => resolve()));
    await helper.load([storeNode], odFlow(), { store: { secret: SECRET } });
    assert.equal(odStore().identity.hostname, 'S2b', 'started as S2b from the role file');
    assert.equal(odStore().identity.services, 'tcp:80');
    await waitFor(() => flowStore().hostname === 'S2b', { what: 'the flow deployed with S2b', timeoutMs: 10_000 });
    await roleCallsSettled();
    assert.equal(flowStore().services, 'tcp:80');
    assert.equal(flowStore().seeds, S1);
    assert.ok(!fs.existsSync(roleFile()), 'the role file is removed once the flow holds the role');
    await waitFor(() => (helper.getNode('store') as unknown as StoreNode | null)?.storeStatus().state === 'ok', { what: 'the store ok', timeoutMs: 10_000 });
    const again = await fetch(`http://${OD}:${port}/p2p/ping`).then((x) => x.json() as Promise<{ hostname: string }>);
    assert.equal(again.hostname, 'S2b');
  });

  it('two calls at once are taken one after the other; a change of more than the identity restarts the store (the fallback)', async () => {
    const s1 = await start();
    const running = odStore();
    const a = s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: roleIdentity(role, S1) });
    const b = s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: { ...roleIdentity(role, S1), hostname: 'S2c' } });
    const [ra, rb] = await Promise.all([send(a), send(b)]);
    assert.equal(ra.status, 200, JSON.stringify(ra.body));
    assert.equal(rb.status, 200, JSON.stringify(rb.body));
    await roleCallsSettled();
    assert.equal(odStore(), running, 'both in place');
    assert.equal(odStore().identity.hostname, 'S2c');
    assert.equal(flowStore().hostname, 'S2c');
    // autoJoin on: not an identity change only; the flow is deployed and the store built anew.
    const c = s1.sealAdminCall(ROLE_PATH, { address: OD }, { identity: { ...roleIdentity(role, S1), hostname: 'S2d', autoJoin: true } });
    const rc = await send(c);
    assert.equal(rc.status, 200, JSON.stringify(rc.body));
    assert.deepEqual(rc.body, { ok: true, hostname: 'S2d', listening: true });
    assert.notEqual(odStore(), running, 'a new store');
    assert.equal(odStore().identity.hostname, 'S2d');
    assert.equal(flowStore().autoJoin, true);
  });

  it('a fresh clone whose store runs at another address than the one called is re-identified by the deploy (the store restarts there)', async () => {
    // The clone's flow still names the ODS's address (OD here); the replicator calls the address it
    // reserved for the clone (this runtime's own, 127.0.0.1 for the test client).
    const s1 = await start();
    const running = odStore();
    const here = '127.0.0.1';
    const clone = { hostname: 'OD11', address: here, realServer: 'RS1', services: '-', autoJoin: false };
    const r = await send(s1.sealAdminCall(ROLE_PATH, { address: here }, { identity: clone }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.hostname, 'OD11');
    assert.notEqual(odStore(), running, 'a new store, at the new address');
    assert.equal(odStore().identity.address, here);
    assert.equal(flowStore().hostname, 'OD11');
  });

  it("finds this Node-RED's internal flows module (the guard of runtime-flows.ts); a process without it gets the reason, with the version", async () => {
    await start();
    assert.equal(runtimeFlowsProblem('this'), null);
    const out = execFileSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(require.resolve('../../nodes/common/runtime-flows'))}).runtimeFlowsProblem('9.9.9'))`], { encoding: 'utf8', timeout: 20_000 });
    assert.match(out, /flows module .* was not found in this process \(Node-RED 9\.9\.9; checked on 4\.1 and 5\.0\): role calls cannot change this VM's identity/);
  });
});
