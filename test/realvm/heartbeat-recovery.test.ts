// Issue 13, check (a) with real Node-RED processes: three managers (Node-RED with this package's
// nodes, each on its own 127.x address) watch each other; the server rv-s1's service runs in a real
// guest under libvirt's QEMU driver, its HTTP forward listening on rv-s1's own address, port 80
// (the `http:80/` check of its group record). The guest hangs (`virsh suspend`); p2p-heartbeat
// detects the service fault and re-examines it; the backup starter fences rv-s1 with `virsh
// destroy` over the real sshd, resumes the suspended real OD, waits for its SSH banner, runs the
// installation procedure on the real server (which gives the OD rv-s1's function); the service
// then answers from the OD's address. rv-s1's manager process stands for the Node-RED inside the
// VM (the busybox guest cannot run Node-RED); the backup has none (role: none), so the test ends
// when the OD serves.
import * as assert from 'assert';
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

describe('real guests + real Node-RED: p2p-heartbeat detects a hung guest, the backup starter recovers it from a suspended real OD', function () {
  this.timeout(600000);
  let bed: GuestBed | undefined;
  let range: LoopbackRange | undefined;
  let cluster: Cluster | undefined;
  let server: GuestVm;
  let od: GuestVm;
  const NAMES = ['m1', 'm2', 'rv-s1'];

  before(async function () {
    this.timeout(900000);
    requireGuestBed(this);
    range = allocLoopbackRange();
    const ip = (i: number) => range!.ip(i);
    bed = await startGuestBed();
    const scratch = new MemoryFiles({ hostname: 'm1', address: ip(1), realServer: RS, services: '-' });
    server = await makeVm(bed, 'rv-s1', ip(3), scratch, ip(3));
    od = await makeVm(bed, 'rv-od9', ip(9), scratch, ip(9));
    await resetServer(bed, server);
    await waitFor(() => serviceAt(ip(3)), { what: 'rv-s1 serving on its address', timeoutMs: 30000, intervalMs: 250 });
    await installProcedureOnHost(bed, [server.name]);
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
          if (n.id === 'store' && vm.name === 'rv-s1') return { ...n, services: 'http:80/' };
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
        const g = cluster!.vms.map((v) => require('fs').existsSync(`${v.userDir}/p2p-ha/group`) ? require('fs').readFileSync(`${v.userDir}/p2p-ha/group`, 'utf8') : '');
        return g.every((t: string) => NAMES.every((n) => t.includes(`${n}, `)));
      },
      { what: 'three members in every group file', timeoutMs: 60000, intervalMs: 250 },
    );
    await edit(`realserver, Add, ${RS}, 0.10, 1, up`);
    await edit(`available-od, Add, ${od.name}, ${od.address}, ${RS}, ${od.hostKey}`);
  });

  after(async function () {
    this.timeout(180000);
    await cluster?.stopAll();
    await bed?.stop();
    range?.release();
  });

  it('detects the hang, fences the guest, and the service answers from the resumed OD', async () => {
    const b = bed!;
    const fileOf = (vm: string, f: string) => {
      const p = `${cluster!.vms.find((v) => v.name === vm)!.userDir}/p2p-ha/${f}`;
      return require('fs').existsSync(p) ? (require('fs').readFileSync(p, 'utf8') as string) : '';
    };
    await waitFor(() => fileOf('m2', 'available-od').includes(od.name), { what: 'available-od replicated', timeoutMs: 20000 });
    const t0 = performance.now();
    await b.driver.suspend(server.name);
    const body = await waitFor(async () => {
      const s = await serviceAt(od.address);
      return s && s.includes('serving rv-s1') ? s : undefined;
    }, { what: 'rv-s1 served from the OD', timeoutMs: 120000, intervalMs: 100 });
    const ms = performance.now() - t0;
    assert.strictEqual(body, 'rv-s1b serving rv-s1');
    assert.strictEqual(await b.driver.domstate(server.name), 'shut off', 'fenced by virsh destroy');
    assert.strictEqual(await b.driver.domstate(od.name), 'running');
    await waitFor(() => /^rv-s1b, /m.test(fileOf('m1', 'group')) && !fileOf('m1', 'available-od').includes(od.name), {
      what: 'group Add rv-s1b and available-od Del in m1 files',
      timeoutMs: 20000,
    });
    assert.match(fileOf('m1', 'problem'), /^rv-s1, .*recovered/m);
    console.log(`      hang to service from the OD (detection, re-examination, fence, resume, readiness, install): ${Math.round(ms)} ms`);
  });
});
