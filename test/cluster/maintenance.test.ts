// Maintenance mode on the loopback cluster (issue 15): six Node-RED VMs on three simulated real
// servers. A VM put into maintenance through the admin endpoint (POST /p2p-ha/maintenance) and
// then stopped is not fenced and no backup starts; it restarts still in maintenance; once out of
// maintenance it is watched again (stopping it now is a failure, recovered as Fig. 1).
import { strict as assert } from 'assert';
import { RecoveryCluster } from '../../harness/recovery/recovery-cluster';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { main } from '../../lib/ops/cli';
import { parsePrometheusText, sampleValue } from '../support/prom-text';

describe('maintenance mode on the loopback cluster', function () {
  this.timeout(240_000);
  let rc: RecoveryCluster | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && rc) {
      for (const n of ['S1', 'S3']) console.log(`--- ${n} ---\n` + rc.logs(n).split('\n').slice(-40).join('\n'));
    }
    await rc?.stop();
    rc = undefined;
  });

  const maintenance = async (c: RecoveryCluster, on: string, body: object) => {
    const r = await httpRequest(c.vm(on).url + '/p2p-ha/maintenance', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' },
      timeoutMs: 10_000,
    });
    return { status: r.status, body: JSON.parse(r.body) };
  };
  const stateOf = (c: RecoveryCluster, vm: string, target: string) => c.recordsOf(vm, 'group').find((r) => r[0] === target)?.[4] ?? 'member';

  it('S2 in maintenance and stopped: not fenced, no backup; restarted still in maintenance; out of it, a stop is a failure again', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    const others = ['S1', 'S3', 'S4', 'S5', 'S6'];
    // A bad request changes nothing.
    const bad = await maintenance(c, 'S4', { vm: 'S2; reboot', on: true });
    assert.equal(bad.status, 400);
    const on = await maintenance(c, 'S4', { vm: 'S2', on: true });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    assert.equal(on.body.changed, true);
    await waitFor(() => others.every((n) => stateOf(c, n, 'S2') === 'maintenance'), { what: 'S2 in maintenance everywhere', timeoutMs: 30_000, intervalMs: 100 });
    const listed = await httpRequest(c.vm('S5').url + '/p2p-ha/maintenance', { timeoutMs: 5000 });
    assert.deepEqual(JSON.parse(listed.body), { vms: ['S2'], realServers: [] });

    // The planned reboot: S2's process is gone for longer than re-examination + claim + fence.
    await c.cluster.kill('S2');
    await new Promise((r) => setTimeout(r, 10_000));
    for (const n of ['S1', 'S3']) assert.equal(c.recordsOf(n, 'problem').find((r) => r[0] === 'S2'), undefined, `no problem record for S2 on ${n}`);
    assert.equal(c.sim('RS2').domains.get('S2')!.state, 'running', 'S2 not destroyed on RS2');
    for (const od of ['OD1', 'OD2', 'OD3']) assert.equal(c.vm(od).state, 'frozen', `${od} still suspended`);
    assert.ok(!c.members('S1').some((m) => m.startsWith('S2b')), 'no backup of S2');

    // S2 boots again: still in maintenance (its store keeps the state when it rejoins).
    await c.cluster.start('S2');
    await waitFor(() => c.identical(['S1', 'S2', 'S3', 'S4', 'S5', 'S6']), { what: 'S2 caught up', timeoutMs: 30_000, intervalMs: 200 });
    assert.equal(stateOf(c, 'S1', 'S2'), 'maintenance');

    // Out of maintenance: watched again. Stopped now, it is a failure: fenced, S2b takes over.
    const off = await maintenance(c, 'S1', { vm: 'S2', on: false });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    await waitFor(() => others.every((n) => stateOf(c, n, 'S2') === 'member'), { what: 'S2 a member again everywhere', timeoutMs: 30_000, intervalMs: 100 });
    // One heartbeat interval for the managers to watch it again before the stop.
    await new Promise((r) => setTimeout(r, 2000));
    await c.cluster.kill('S2');
    await waitFor(() => c.members('S1').includes('S2b') && !c.members('S1').includes('S2'), { what: "S2b in S1's group file", timeoutMs: 40_000, intervalMs: 200 });
    assert.equal(c.sim('RS2').domains.get('S2')!.state, 'shut off', 'S2 fenced this time');
  });

  it('evacuating RS2 from S1: S2 and S5 shut down cleanly, their roles on ODs of other hosts, nothing left on RS2', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    // A p2p-maintenance node on S1 (its admin port gives the backups their role).
    const flows = JSON.parse((await httpRequest(c.vm('S1').url + '/flows', { timeoutMs: 5000 })).body);
    flows.push({ id: 'maint', z: 'rec-tab', type: 'p2p-maintenance', store: 'store', adminPort: c.uiPort, procedureDir: '/var/lib/p2p-ha/install', x: 700, y: 400, wires: [[]] });
    const dep = await httpRequest(c.vm('S1').url + '/flows', {
      method: 'POST',
      body: JSON.stringify(flows),
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'nodes' },
      timeoutMs: 10_000,
    });
    assert.ok(dep.status === 200 || dep.status === 204, `deploy: ${dep.status} ${dep.body}`);
    const t0 = Date.now();
    // The deploy answers before the new node runs: ask until it is there.
    const r = await waitFor(
      async () => {
        const x = await httpRequest(c.vm('S1').url + '/p2p-ha/evacuate', {
          method: 'POST',
          body: JSON.stringify({ realServer: 'RS2' }),
          headers: { 'Content-Type': 'application/json' },
          timeoutMs: 120_000,
        });
        return x.status === 409 && /deploy a p2p-maintenance node/.test(x.body) ? undefined : x;
      },
      { what: 'the p2p-maintenance node running on S1', timeoutMs: 30_000, intervalMs: 500 },
    );
    const body = JSON.parse(r.body);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(body.moved.map((m: { vm: string; backup: string; stop: string }) => `${m.vm}->${m.backup} ${m.stop}`), ['S2->S2b shut down', 'S5->S5b shut down']);
    assert.deepEqual(body.moved.map((m: { realServer: string }) => m.realServer).sort(), ['RS1', 'RS3']);
    for (const vm of ['S2', 'S5']) assert.equal(c.sim('RS2').domains.get(vm)!.state, 'shut off', `${vm} shut down on RS2`);
    const live = ['S1', 'S3', 'S4', 'S6'];
    await waitFor(() => live.every((n) => ['S2b', 'S5b'].every((b) => c.members(n).includes(b)) && !c.members(n).includes('S2') && !c.members(n).includes('S5')), {
      what: 'S2b and S5b, not S2 and S5, everywhere',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    // The moved VMs stay in the group as fenced (stopped, replaced): nothing serves on RS2.
    assert.ok(!c.recordsOf('S1', 'group').some((g) => g[2] === 'RS2' && g[4] !== 'fenced'), 'nothing on RS2');
    assert.equal(c.recordsOf('S3', 'realserver').find((x) => x[0] === 'RS2')?.[3], 'maintenance');
    const s2b = c.recordsOf('S1', 'group').find((g) => g[0] === 'S2b')![1];
    await waitFor(async () => (await c.service(s2b)) === 'S2', { what: "S2b answers S2's service", timeoutMs: 15_000, intervalMs: 200 });
    console.log(`      evacuation of RS2 (2 VMs) in ${Date.now() - t0} ms`);
  });

  it('a real server in maintenance takes no backup, even the least loaded', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    const r = await maintenance(c, 'S1', { realServer: 'RS3', on: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const live = ['S1', 'S3', 'S4', 'S5', 'S6'];
    await waitFor(() => live.every((n) => c.recordsOf(n, 'realserver').find((x) => x[0] === 'RS3')?.[3] === 'maintenance'), {
      what: 'RS3 in maintenance everywhere',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    // The load collector (S1, every second) keeps the state.
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal(c.recordsOf('S1', 'realserver').find((x) => x[0] === 'RS3')?.[3], 'maintenance');
    const scrape = async (vm: string) => {
      const r = await httpRequest(c.vm(vm).url + '/p2p-ha/metrics', { timeoutMs: 5000 });
      assert.equal(r.status, 200);
      return parsePrometheusText(r.body);
    };
    const before = { s1: await scrape('S1'), s5: await scrape('S5') };
    assert.equal(sampleValue(before.s5, 'p2p_ha_failovers_total', { outcome: 'recovered' }), undefined);
    await c.cluster.kill('S2');
    await waitFor(() => c.members('S1').includes('S2b'), { what: "S2b in S1's group file", timeoutMs: 40_000, intervalMs: 200 });
    // The counters moved: a failover on a VM that took no part (S5), the re-examination and the
    // step durations on the one that ran it (S1), SEM acknowledgements from S5 to S1.
    const after = await waitFor(
      async () => {
        const s5 = await scrape('S5');
        return sampleValue(s5, 'p2p_ha_failovers_total', { outcome: 'recovered' }) === 1 ? { s5, s1: await scrape('S1') } : undefined;
      },
      { what: 'the failover counted on S5', timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.ok((sampleValue(after.s1, 'p2p_ha_heartbeat_transitions_total', { to: 'reexamining' }) ?? 0) > (sampleValue(before.s1, 'p2p_ha_heartbeat_transitions_total', { to: 'reexamining' }) ?? 0));
    assert.ok((sampleValue(after.s1, 'p2p_ha_recovery_step_seconds_count', { step: 'fencing' }) ?? 0) >= 1);
    assert.ok((sampleValue(after.s5, 'p2p_ha_recovery_seconds_count') ?? 0) >= 1);
    assert.ok((sampleValue(after.s1, 'p2p_ha_sem_ack_seconds_count', { peer: 'S5' }) ?? 0) > (sampleValue(before.s1, 'p2p_ha_sem_ack_seconds_count', { peer: 'S5' }) ?? 0));
    assert.equal(sampleValue(after.s5, 'p2p_ha_real_server_up', { real_server: 'RS3', state: 'maintenance' }), 0);
    const b = c.recordsOf('S1', 'group').find((x) => x[0] === 'S2b')!;
    assert.notEqual(b[2], 'RS3', 'the backup is not on the host in maintenance');
    assert.equal(c.vm('OD3').state, 'frozen', 'OD3 (on RS3) still suspended');

    // A planned reboot of S1 (the acting manager): maintenance on, stop, start. Its history (the
    // failover it ran, the maintenance) is still there and back in its sidebar timeline.
    const on = await maintenance(c, 'S3', { vm: 'S1', on: true });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    await waitFor(() => ['S3', 'S4', 'S5', 'S6'].every((n) => stateOf(c, n, 'S1') === 'maintenance'), { what: 'S1 in maintenance everywhere', timeoutMs: 30_000, intervalMs: 100 });
    await c.cluster.stop('S1');
    await c.cluster.start('S1');
    // The admin API answers before the flows have started: the view is null until the store runs.
    const timeline = async () => (JSON.parse((await httpRequest(c.vm('S1').url + '/p2p-ha/cluster', { timeoutMs: 5000 })).body) as { timeline?: { target: string; step: string }[] } | null)?.timeline;
    const tl = await waitFor(timeline, { what: "S1's cluster view after its restart", timeoutMs: 20_000, intervalMs: 200 });
    for (const [target, step] of [['S2', 'recovered'], ['S2', 'placed'], ['RS3', 'maintenance-on']]) {
      assert.ok(tl.some((e) => e.target === target && e.step === step), `${target} ${step} in S1's timeline after its restart: ${JSON.stringify(tl.slice(-12))}`);
    }
    let out = '';
    const code = await main(['history', '--since', '10m', '--user-dir', c.vm('S1').userDir], { out: (x) => (out += x), err: (x) => (out += x), env: {} });
    assert.equal(code, 0, out);
    assert.match(out, /S2 +recovered +by S1/);
    const viaApi = JSON.parse((await httpRequest(c.vm('S1').url + '/p2p-ha/history?target=RS3', { timeoutMs: 5000 })).body);
    assert.deepEqual([...new Set(viaApi.map((e: { step: string }) => e.step))], ['maintenance-on']);
    // S1 came back still in maintenance, and nobody fenced it while it was down.
    assert.equal(stateOf(c, 'S3', 'S1'), 'maintenance');
    assert.equal(c.sim('RS1').domains.get('S1')!.state, 'running');
  });
});
