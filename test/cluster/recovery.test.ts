// Recovery on the loopback cluster (issue 5): six Node-RED VMs on three simulated real servers,
// one suspended OD per real server. Each scenario gets a fresh cluster.
import { strict as assert } from 'assert';
import { RecoveryCluster } from '../../harness/recovery/recovery-cluster';
import { waitFor } from '../../harness/wait';

describe('recovery on the loopback cluster', function () {
  this.timeout(240_000);
  let rc: RecoveryCluster | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && rc) {
      for (const n of ['S1', 'S4', 'OD1', 'OD2', 'OD3']) {
        try {
          console.log(`--- ${n} ---\n` + rc.logs(n).split('\n').slice(-40).join('\n'));
        } catch {
          /* not there */
        }
      }
    }
    await rc?.stop();
    rc = undefined;
  });

  it('Fig. 1: S2 killed: fenced, S2b on the least loaded real server answers S2\'s service, files identical everywhere', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    const t0 = Date.now();
    await c.cluster.kill('S2');
    // S1 (P1 of S2) fences, places on RS3 (least loaded), resumes OD3, installs, gives the role.
    await waitFor(() => c.members('S1').includes('S2b'), { what: 'S2b in S1\'s group file', timeoutMs: 30_000, intervalMs: 100 });
    const live = ['S1', 'S3', 'S4', 'S5', 'S6', 'OD3'];
    await waitFor(() => live.every((n) => c.members(n).includes('S2b') && !c.members(n).includes('S2')), { what: 'S2b and not S2 everywhere', timeoutMs: 20_000, intervalMs: 100 });
    const recoveredMs = Date.now() - t0;
    assert.equal(c.sim('RS2').domains.get('S2')!.state, 'shut off', 'S2 fenced (destroyed) on RS2');
    assert.equal(c.sim('RS3').domains.get('OD3')!.state, 'running');
    const g = c.recordsOf('S1', 'group').find((r) => r[0] === 'S2b')!;
    assert.deepEqual(g.slice(1, 3), [c.vm('OD3').ip, 'RS3']);
    // One probe has a 1 s timeout; on a loaded machine retry it (a deadline, not a speed claim).
    await waitFor(async () => (await c.service(c.vm('OD3').ip)) === 'S2', { what: "S2b answers S2's service", timeoutMs: 15_000, intervalMs: 200 });
    // The OD's own Node-RED now is S2b (role deployed and persisted in its flows).
    assert.equal(c.recordsOf('OD3', 'group').find((r) => r[0] === 'S2b')?.[1], c.vm('OD3').ip);
    await waitFor(() => c.identical(live), { what: 'identical files on every live VM', timeoutMs: 20_000, intervalMs: 200 });
    assert.ok(!c.recordsOf('S4', 'available-od').some((r) => r[0] === 'OD3'), 'OD3 gone from available-od');
    assert.equal(c.recordsOf('S5', 'problem').find((r) => r[0] === 'S2')?.[3], 'recovered');
    const ops = c.fileOf('S6', 'operation');
    assert.match(ops, /S2b/);
    assert.doesNotMatch(ops, /\bS2,|\bS2$/m);
    console.log(`      Fig. 1: S2 killed -> S2b in every group file in ${recoveredMs} ms`);
  });

  it('two at once: S2 and S5 killed together recover in parallel on two different ODs', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    await Promise.all([c.cluster.kill('S2'), c.cluster.kill('S5')]);
    const live = () => c.liveVms().filter((n) => !['S2', 'S5'].includes(n));
    await waitFor(() => ['S1', 'S3', 'S4', 'S6'].every((n) => c.members(n).includes('S2b') && c.members(n).includes('S5b') && !c.members(n).includes('S2') && !c.members(n).includes('S5')), {
      what: 'S2b and S5b, not S2 and S5, in every group file',
      timeoutMs: 40_000,
      intervalMs: 100,
    });
    const g = c.recordsOf('S1', 'group');
    const b2 = g.find((r) => r[0] === 'S2b')!;
    const b5 = g.find((r) => r[0] === 'S5b')!;
    assert.notEqual(b2[1], b5[1], 'two different ODs');
    for (const [b, t] of [[b2, 'S2'], [b5, 'S5']] as const) {
      await waitFor(async () => (await c.service(b[1])) === t, { what: `${t}'s service on ${b[0]}`, timeoutMs: 15_000, intervalMs: 200 });
    }
    // Overlap: each recovery started (fencing) before the other finished (recovered), on the
    // clocks of the managers that ran them (S1 for S2, S4 for S5: one machine, one clock).
    // The problem record's last step may be written (and its SEM log line flushed) a moment after
    // the group edits: wait for both managers' logs to hold both steps.
    const times = () => ({
      s2: [c.statusTime('S1', 'S2', 'fencing'), c.statusTime('S1', 'S2', 'recovered')],
      s5: [c.statusTime('S4', 'S5', 'fencing'), c.statusTime('S4', 'S5', 'recovered')],
    });
    const { s2, s5 } = await waitFor(
      () => {
        const t = times();
        return t.s2.every(Number.isFinite) && t.s5.every(Number.isFinite) ? t : undefined;
      },
      { what: `fencing and recovered in S1's and S4's SEM logs (${JSON.stringify(times())})`, timeoutMs: 30_000, intervalMs: 100 },
    );
    assert.ok(s2[0]! < s5[1]! && s5[0]! < s2[1]!, `recoveries overlap: S2 ${s2.join('-')}, S5 ${s5.join('-')}`);
    await waitFor(() => c.identical(live()), { what: 'identical files on every live VM', timeoutMs: 20_000, intervalMs: 200 });
    console.log(`      two at once: S2 ${s2[1]! - s2[0]!} ms, S5 ${s5[1]! - s5[0]!} ms from fencing to recovered, overlapping`);
  });

  it('a real server unreachable while its VMs live: no second copy is started', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    // The managers lose RS2 (its SSH endpoint), and S2 stops answering (frozen: alive, its state
    // kept, like a VM behind a partition). Only S1 (P1 of S2) sees S2 fail; fencing is impossible.
    await c.partitionRealServer('RS2');
    await c.cluster.freeze('S2');
    // Refused after the starter's Confirm wait (30 s in this flow) without a second confirmer.
    await waitFor(() => c.recordsOf('S1', 'problem').find((r) => r[0] === 'S2')?.[3] === 'failed', { what: 'S2 recovery refused (failed)', timeoutMs: 60_000, intervalMs: 200 });
    const p = c.recordsOf('S1', 'problem').find((r) => r[0] === 'S2')!;
    assert.match(p.slice(6).join(','), /confirmed only by S1/);
    for (const od of ['OD1', 'OD2', 'OD3']) assert.equal(c.vm(od).state, 'frozen', `${od} still suspended`);
    assert.ok(!c.members('S1').includes('S2b'));
    // S2 comes back from the partition: it is the only copy. Frozen longer than T_iso + margin, it
    // first stops and serves again once it has caught up with the majority (docs/recovery.md).
    await c.cluster.thaw('S2');
    await waitFor(async () => (await c.service(c.vm('S2').ip)) === 'S2', { what: 'S2 serves again', timeoutMs: 15_000, intervalMs: 200 });
  });

  it('(c) a real server without virsh: the fence fails with program-missing, no backup starts, the problem says why', async () => {
    rc = await RecoveryCluster.start({ loads: [0.8, 0.6, 0.2] });
    const c = rc;
    // RS2's SSH sessions find no virsh (as dash reports it: exit 127, `command -v virsh` fails).
    c.sim('RS2').missingPrograms.add('virsh');
    await c.cluster.kill('S2');
    await waitFor(() => c.recordsOf('S1', 'problem').find((r) => r[0] === 'S2')?.[3] === 'failed', { what: 'S2 recovery failed', timeoutMs: 30_000, intervalMs: 200 });
    const p = c.recordsOf('S1', 'problem').find((r) => r[0] === 'S2')!;
    assert.match(p.slice(6).join(','), /fence: .*program-missing/);
    // Nothing was started: every OD is still suspended (the one resumed beside the fence was put
    // back to sleep), no S2b anywhere, S2 not marked fenced (it was not).
    await waitFor(() => ['OD1', 'OD2', 'OD3'].every((od) => c.vm(od).state === 'frozen'), { what: 'every OD suspended', timeoutMs: 30_000, intervalMs: 100 });
    for (const [rs, od] of [['RS1', 'OD1'], ['RS2', 'OD2'], ['RS3', 'OD3']]) assert.equal(c.sim(rs).domains.get(od)!.state, 'paused', `${od} paused on ${rs}`);
    for (const n of ['S1', 'S3', 'S4', 'S5', 'S6']) assert.ok(!c.members(n).includes('S2b'), `no S2b in ${n}'s group`);
    assert.notEqual(c.recordsOf('S1', 'group').find((r) => r[0] === 'S2')?.[4], 'fenced', 'S2 not recorded fenced');
    assert.equal(c.sim('RS2').domains.get('S2')!.state, 'running', 'nothing was destroyed');
  });

  it('Fig. 3: a whole real server fails: its VMs come back spread over the other two, then the pool refills to the new average', async function () {
    // No retry: a failure prints the managers' files and recovery log lines.
    this.timeout(480_000);
    rc = await RecoveryCluster.start({ loads: [0.4, 0.4, 0.4], replicator: true });
    const c = rc;
    await c.killRealServer('RS3'); // S3, S6 and OD3 die with RS3's SSH endpoint
    const live = ['S1', 'S2', 'S4', 'S5'];
    // A failed wait prints the managers' files and log lines (no retry: CI shows only this text).
    const explained = async (wait: Promise<unknown>, fileNames: string[], lines: RegExp) => {
      try {
        await wait;
      } catch (e) {
        const files = ['S1', 'S2', 'S5'].map((n) => fileNames.map((f) => `--- ${n} ${f}:\n${c.fileOf(n, f)}`).join('')).join('');
        const logs = live.map((n) => `--- ${n} log:\n${c.logs(n).split('\n').filter((l) => lines.test(l)).slice(-25).join('\n')}`).join('\n');
        throw new Error(`${(e as Error).message}\n${files}${logs}`);
      }
    };
    await explained(
      waitFor(() => live.every((n) => ['S3b', 'S6b'].every((b) => c.members(n).includes(b)) && !c.members(n).includes('S3') && !c.members(n).includes('S6')), {
        what: 'S3b and S6b, not S3 and S6, in every group file',
        timeoutMs: 60_000,
        intervalMs: 200,
      }),
      ['problem', 'group'],
      /backup|recover|fence|place|resume|confirm/i,
    );
    const g = c.recordsOf('S1', 'group');
    // Equal loads and VM counts: placed together, the two backups take OD1 (RS1) and OD2 (RS2),
    // one each. Which target gets which depends on which manager resumed which OD beside its
    // fence (an early OD the joint placement uses is kept: no swapping, docs/recovery.md).
    const b3 = g.find((r) => r[0] === 'S3b')!;
    const b6 = g.find((r) => r[0] === 'S6b')!;
    assert.deepEqual([b3, b6].map((b) => `${b[1]} ${b[2]}`).sort(), [`${c.vm('OD1').ip} RS1`, `${c.vm('OD2').ip} RS2`].sort());
    // A backup's service may answer a moment after it joined (its flow starts serving when its
    // heartbeat says so): wait for it, with a deadline.
    for (const [b, t] of [[b3, 'S3'], [b6, 'S6']] as const) {
      await waitFor(async () => (await c.service(b[1])) === t, { what: `${t}'s service on ${b[0]}`, timeoutMs: 15_000, intervalMs: 200 });
    }
    // The fenced originals stay in the group as fenced; RS3 is down.
    for (const t of ['S3', 'S6']) assert.equal(g.find((r) => r[0] === t)?.[4], 'fenced', `${t} fenced`);
    assert.equal(c.recordsOf('S1', 'realserver').find((r) => r[0] === 'RS3')?.[3], 'down');
    // Replenish: six VMs on two live real servers: three ODs each. The operator reserves identities.
    const ids: [string, string][] = [];
    for (const [rs, base] of [['RS1', 0], ['RS2', 3]] as const) {
      for (let k = 0; k < 3; k++) {
        const od = `OD${rs.slice(2)}${k + 1}`;
        const ip = c.spareIp(base + k);
        c.reservedIps.set(od, ip);
        ids.push([od, rs]);
        const r = await c.edit('S4', `reservation, Add, ${od}, ${ip}, ${rs}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
    }
    const t0 = Date.now();
    await explained(
      waitFor(
        () => {
          const ods = c.recordsOf('S1', 'available-od');
          return ['RS1', 'RS2'].every((rs) => ods.filter((r) => r[2] === rs).length === 3);
        },
        // Six clones, each a Node-RED runtime started, re-identified and suspended, three at a time
        // per real server: under the shared machine's load (load average 30-110 seen) 120 s was missed once.
        { what: 'three ODs on RS1 and on RS2', timeoutMs: 240_000, intervalMs: 500 },
      ),
      ['available-od', 'reservation', 'realserver', 'group'],
      /replicat|clone|OD\d|reserv/i,
    );
    for (const [od, rs] of ids) {
      assert.equal(c.sim(rs).domains.get(od)?.state, 'paused', `${od} suspended on ${rs}`);
      assert.equal(c.vm(od).state, 'frozen');
    }
    assert.equal(c.recordsOf('S1', 'reservation').length, 0);
    const members = ['S1', 'S2', 'S4', 'S5', 'OD1', 'OD2'];
    await waitFor(() => c.identical(members), { what: 'identical files on every live VM', timeoutMs: 20_000, intervalMs: 200 });
    // Clone runs that failed and were redone (their clone removed, lib/recovery/od-replication.ts):
    // printed, so a run shows what the retries covered.
    const redone = live.flatMap((n) => c.logs(n).match(/text: 'OD\d+: [^']*'/g) ?? []);
    console.log(`      Fig. 3: six ODs cloned on two real servers in ${Date.now() - t0} ms${redone.length ? `; failed runs redone: ${redone.join('; ')}` : ''}`);
  });
});

