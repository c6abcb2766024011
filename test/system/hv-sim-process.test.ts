// End to end as in the loopback cluster: the VirshDriver over SSH to the simulated real server,
// whose domains are real Node-RED processes (ProcessBackend): each virsh command's effect is
// checked on the process itself (SIGSTOP/SIGCONT/SIGKILL/spawn/copy).
import * as assert from 'assert';
import { Cluster, FlowNode, startCluster } from '../../harness/cluster/launcher';
import { ProcessBackend } from '../../harness/cluster/process-backend';
import { httpRequest } from '../../harness/http';
import { allocLoopbackRange, LoopbackRange } from '../../harness/net';
import { pidAlive, pidState } from '../../harness/procs';
import { SimRealServer } from '../../harness/sim/sim-server';
import { waitFor } from '../../harness/wait';
import { SshConnection } from '../../lib/hv/ssh-connection';
import { VirshDriver } from '../../lib/hv/virsh-driver';
import { sshKeyPair } from '../../harness/ssh-keys';

const FLOW: FlowNode[] = [{ id: 'tab1', type: 'tab', label: 'ods' }];

async function answers(url: string): Promise<boolean> {
  try {
    return (await httpRequest(`${url}/settings`, { timeoutMs: 500 })).status === 200;
  } catch {
    return false;
  }
}

describe('hv: driver -> simulated real server -> Node-RED processes', function () {
  this.timeout(90_000);
  let range: LoopbackRange;
  let cluster: Cluster | undefined;
  let sim: SimRealServer | undefined;
  let conn: SshConnection | undefined;
  let driver: VirshDriver;
  const key = sshKeyPair();

  before(async () => {
    range = allocLoopbackRange();
    cluster = await startCluster({ ips: [range.ip(2)], names: ['ods'], flows: FLOW });
    sim = new SimRealServer({ address: range.ip(1), authorizedKeys: [key.public], backend: new ProcessBackend(cluster, { ipFor: () => range.ip(3) }) });
    sim.addDomain('ods', 'running', '52:54:00:cc:00:01');
    await sim.start();
    conn = new SshConnection({ host: sim.address, port: sim.port, username: 'root', privateKey: key.private, hostFingerprint: sim.fingerprint });
    driver = new VirshDriver(conn, { label: 'RS-sim' });
  });
  after(async () => {
    await conn?.close();
    await sim?.stop();
    await cluster?.stopAll();
    range?.release();
  });

  it('suspend stops the process, resume continues it', async () => {
    const vm = cluster!.vm('ods');
    await driver.suspend('ods');
    assert.strictEqual(pidState(vm.pid!), 'T');
    assert.strictEqual(await driver.domstate('ods'), 'paused');
    await driver.resume('ods');
    await waitFor(() => answers(vm.url), { timeoutMs: 15_000, what: 'ods answering after resume' });
  });

  it('destroy kills it; virt-clone copies the shut-off original; start spawns the clone', async () => {
    const pid = cluster!.vm('ods').pid!;
    await driver.destroy('ods');
    assert.ok(!pidAlive(pid));
    await driver.clone('ods', 'od1', '52:54:00:cc:00:02');
    assert.deepStrictEqual((await driver.domiflist('od1')).map((i) => i.mac), ['52:54:00:cc:00:02']);
    await driver.start('od1');
    const od = cluster!.vm('od1');
    assert.strictEqual(od.ip, range.ip(3));
    await waitFor(() => answers(od.url), { timeoutMs: 30_000, what: `od1 at ${od.url}` });
  });

  it('managedsave keeps the process stopped as shut off; start continues it; undefine removes it', async () => {
    const od = cluster!.vm('od1');
    const pid = od.pid!;
    await driver.managedsave('od1');
    assert.strictEqual(await driver.domstate('od1'), 'shut off');
    assert.strictEqual(pidState(pid), 'T');
    await driver.start('od1');
    assert.strictEqual(od.pid, pid, 'the same process goes on');
    await waitFor(() => answers(od.url), { timeoutMs: 15_000, what: 'od1 answering after start from managed save' });
    await driver.destroy('od1');
    await driver.undefine('od1');
    assert.ok(!(await driver.listDomains()).some((d) => d.name === 'od1'));
  });
});
