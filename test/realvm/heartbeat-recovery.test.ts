// Issue 13, checks (a) and (c) with real Node-RED processes: four managers (Node-RED with this
// package's nodes, each on its own 127.x address) watch each other; the servers rv-s1 and rv-s2
// run their service in real guests under libvirt's QEMU driver, each HTTP forward listening on the
// server's own address, port 80 (the `http:80/` check of its group record). Both guests hang at
// once (`virsh suspend`, two failures together as in Fig. 3; four guests is what 2 cores allow
// booting two at a time); for each, p2p-heartbeat
// detects the service fault and re-examines it; the backup starter fences rv-s1 with `virsh
// destroy` over the real sshd, resumes the suspended real OD, waits for its SSH banner, runs the
// installation procedure on the real server (which gives the OD rv-s1's function); the service
// then answers from the OD's address, both recoveries in parallel. The rv-sN manager processes
// stand for the Node-RED inside the VMs (the busybox guests cannot run Node-RED); the backups have
// none (role: none), so the test ends when the ODs serve.
import * as assert from 'assert';
import * as fs from 'fs';
import { startCluster, type Cluster, type FlowNode } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../../harness/net';
import { startGuestBed, type GuestBed } from '../../harness/real/guest-env';
import { installProcedureOnHost, makeVm, PROCEDURE_DIR, RS, resetServer, type GuestVm } from '../../harness/real/guest-recovery';
import { EDIT_PATH, recoveryFlow } from '../../harness/recovery/recovery-flow';
import { waitFor } from '../../harness/wait';
import { MemoryFiles } from '../support/memory-files';
import { requireGuestBed } from './realvm-env';

async function serviceAt(address: string): Promise<string | undefined> {
  try {
    const r = await httpRequest(`http://${address}:80/`, { timeoutMs: 1000 });
    return r.status === 200 ? r.body.trim() : undefined;
  } catch {
    return undefined;
  }
}

describe('real guests + real Node-RED: p2p-heartbeat detects hung guests, the backup starter recovers them from suspended real ODs', function () {
  this.timeout(600000);
  let bed: GuestBed | undefined;
  let range: LoopbackRange | undefined;
  let cluster: Cluster | undefined;
  const servers: GuestVm[] = [];
  const ods: GuestVm[] = [];
  const NAMES = ['m1', 'm2', 'rv-s1', 'rv-s2'];

  before(async function () {
    this.timeout(900000);
    requireGuestBed(this);
    range = allocLoopbackRange();
    const ip = (i: number) => range!.ip(i);
    bed = await startGuestBed();
    const scratch = new MemoryFiles({ hostname: 'm1', address: ip(1), realServer: RS, services: '-' });
    for (const i of [3, 4]) servers.push(await makeVm(bed, `rv-s${i - 2}`, ip(i), scratch, ip(i)));
    for (const i of [9, 8]) ods.push(await makeVm(bed, `rv-od${i}`, ip(i), scratch, ip(i)));
    for (const s of servers) {
      await resetServer(bed, s);
      await waitFor(() => serviceAt(s.address), { what: `${s.name} serving on its address`, timeoutMs: 30000, intervalMs: 250 });
    }
    await installProcedureOnHost(bed, servers.map((s) => s.name));
    const ips = NAMES.map((_n, i) => ip(i + 1));
    const semPort = await pickPortFreeOnAll(ips);
    const uiPort = await pickPortFreeOnAll(ips);
    const b = bed;
    cluster = await startCluster({
      names: NAMES,
      ips,
      uiPorts: ips.map(() => uiPort),
      flows: (vm) =>
        recoveryFlow({
          hostname: vm.name,
          address: vm.ip,
          realServer: RS,
          member: true,
          semPort,
          uiPort,
          secret: 'realvm-secret',
          privateKey: b.sshd.clientKey,
          seeds: ips,
          realServers: [{ name: RS, host: b.sshd.address, port: b.sshd.port, fingerprint: b.sshd.hostFingerprint }],
          procedureDir: PROCEDURE_DIR,
          reexamNetworkMs: 2000,
        }).map((n): FlowNode => {
          // rv-s1's service is the guest's (http:80/ on its address); the OD has no Node-RED to give a role to.
          if (n.id === 'store' && vm.name.startsWith('rv-s')) return { ...n, services: 'http:80/' };
          if (n.id === 'starter') return { ...n, roleMode: 'none', readiness: 'ssh', confirmWait: 2 };
          if (n.id === 'rs1') return { ...n, connectTimeout: 5000, commandTimeout: 60000 };
          return n;
        }),
    });
    const edit = async (line: string) => {
      const r = await httpRequest(cluster!.vms[0].url + EDIT_PATH, { method: 'POST', body: line, headers: { 'Content-Type': 'text/plain' }, timeoutMs: 10000 });
      if (r.status !== 200) throw new Error(`${line}: ${r.status} ${r.body}`);
    };
    await waitFor(
      () => {
        const g = cluster!.vms.map((v) => (fs.existsSync(`${v.userDir}/p2p-ha/group`) ? fs.readFileSync(`${v.userDir}/p2p-ha/group`, 'utf8') : ''));
        return g.every((t) => NAMES.every((n) => t.includes(`${n}, `)));
      },
      { what: 'three members in every group file', timeoutMs: 60000, intervalMs: 250 },
    );
    await edit(`realserver, Add, ${RS}, 0.10, 2, up`);
    for (const od of ods) await edit(`available-od, Add, ${od.name}, ${od.address}, ${RS}, ${od.hostKey}`);
  });

  after(async function () {
    this.timeout(180000);
    await cluster?.stopAll();
    await bed?.stop();
    range?.release();
  });

  it('two guests hang at once: each is detected, fenced, and its service answers from its own resumed OD', async () => {
    const b = bed!;
    const fileOf = (vm: string, f: string) => {
      const p = `${cluster!.vms.find((v) => v.name === vm)!.userDir}/p2p-ha/${f}`;
      return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
    };
    await waitFor(() => ods.every((o) => fileOf('m2', 'available-od').includes(o.name)), { what: 'available-od replicated', timeoutMs: 20000 });
    const t0 = performance.now();
    await Promise.all(servers.map((s) => b.driver.suspend(s.name)));
    // Each failed server's function answers from one of the ODs, the two from different ODs.
    const served = await waitFor(
      async () => {
        const bodies = await Promise.all(ods.map((o) => serviceAt(o.address)));
        const ok = servers.every((s) => bodies.some((x) => x === `${s.name}b serving ${s.name}`));
        return ok ? bodies : undefined;
      },
      { what: 'rv-s1 and rv-s2 served from the ODs', timeoutMs: 180000, intervalMs: 100 },
    ).catch(async (e: Error) => {
      // Say why: the managers' problem records (step, kind, reason) and the domains' states.
      const states = await Promise.all([...servers, ...ods].map(async (v) => `${v.name} ${await b.driver.domstate(v.name).catch(() => '?')}`));
      throw new Error(`${e.message}\nproblem (m1):\n${fileOf('m1', 'problem')}\nproblem (m2):\n${fileOf('m2', 'problem')}\ndomains: ${states.join(', ')}`);
    });
    const ms = performance.now() - t0;
    assert.deepStrictEqual([...served].sort(), ['rv-s1b serving rv-s1', 'rv-s2b serving rv-s2']);
    for (const s of servers) assert.strictEqual(await b.driver.domstate(s.name), 'shut off', `${s.name} fenced by virsh destroy`);
    for (const o of ods) assert.strictEqual(await b.driver.domstate(o.name), 'running');
    await waitFor(
      () => {
        const g = fileOf('m1', 'group');
        return /^rv-s1b, /m.test(g) && /^rv-s2b, /m.test(g) && ods.every((o) => !fileOf('m1', 'available-od').includes(o.name));
      },
      { what: 'group Add rv-s1b, rv-s2b and available-od Del in m1 files', timeoutMs: 30000 },
    );
    for (const s of servers) assert.match(fileOf('m1', 'problem'), new RegExp(`^${s.name}, .*recovered`, 'm'));
    console.log(`      two hangs to both services from the ODs (detection, re-examination, fence, resume, readiness, install): ${Math.round(ms)} ms`);
  });
});
