// The VirshDriver over SSH against two targets with ONE set of cases: real OpenSSH sshd + a
// hand-started libvirtd (test driver), and the simulated real server. Plus classified connection
// errors, and injection refused before any SSH exec. A tiny KVM guest through the QEMU driver is
// not run here (see the report: too costly for the shared 2-core machine in this suite).
import * as assert from 'assert';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { startLibvirtd, type Libvirtd } from '../../harness/real/libvirtd';
import { allocLoopbackRange, pickFreePort, type LoopbackRange } from '../../harness/net';
import { startSshd, type Sshd, connectionTo } from '../../harness/real/sshd';
import { MemoryBackend } from '../../harness/sim/memory-backend';
import { SimRealServer } from '../../harness/sim/sim-server';
import { HvError, SshConnection, type SshSettings } from '../../lib/hv/ssh-connection';
import { ValidationError } from '../../lib/hv/validate';
import { VirshDriver } from '../../lib/hv/virsh-driver';
import { driverCases, templateXml, type DriverTarget } from './hv-cases';
import { requireRealPrograms } from './hv-env';
import { sshKeyPair } from '../../harness/ssh-keys';

async function expectKind(p: Promise<unknown>, kind: HvError['kind'], match?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HvError, `expected HvError, got ${e}`);
    assert.strictEqual(e.kind, kind, e.message);
    if (match) assert.match(e.message, match);
    return;
  }
  throw new Error(`expected ${kind}`);
}

function connectionErrorCases(settings: () => SshSettings & { strangerKey: string; fileDir: string }): void {
  const conns: SshConnection[] = [];
  const conn = (over: Partial<SshSettings>) => {
    const c = new SshConnection({ ...settings(), connectTimeoutMs: 3000, ...over });
    conns.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(conns.splice(0).map((c) => c.close()));
  });

  it('refuses a host whose key does not match the pinned fingerprint', async () => {
    await expectKind(conn({ hostFingerprint: 'SHA256:' + 'A'.repeat(43) }).exec('true'), 'host-key-mismatch', /does not match the pinned/);
  });
  it('classifies a refused private key', async () => {
    await expectKind(conn({ privateKey: settings().strangerKey }).exec('true'), 'auth-refused', /refused the private key/);
  });
  it('classifies an unreachable host (a loopback port nothing listens on)', async () => {
    const port = await pickFreePort(settings().host);
    await expectKind(conn({ port }).exec('true'), 'unreachable', /ECONNREFUSED/);
  });
  it('gives a timeout when a command exceeds its deadline', async () => {
    const c = conn({ commandTimeoutMs: 300 });
    const d = new VirshDriver(c, { slowTimeoutMs: 300 });
    const file = `${settings().fileDir}/slow.sh`;
    await d.copyFile(file, 'sleep 2\n');
    await expectKind(d.runFile(file), 'timeout', /within 300 ms/);
  });
}

function injectionCases(target: () => DriverTarget & { execs: () => number }): void {
  const BAD = ['S2; rm -rf /', '$(id)', '`id`', 'a b', '--help', '-rf', 'x'.repeat(300), 'Sérveur', 'S2\nid', "S2'", '', '..'];
  it('refuses bad domain names, MACs, paths and variables before any SSH exec', async () => {
    const { driver, execs } = target();
    const before = execs();
    assert.ok(before > 0, 'the counter counts (commands ran before)');
    const attempts: [string, () => Promise<unknown>][] = [];
    for (const bad of BAD) {
      attempts.push(
        ['suspend', () => driver.suspend(bad)],
        ['resume', () => driver.resume(bad)],
        ['destroy', () => driver.destroy(bad)],
        ['start', () => driver.start(bad)],
        ['shutdown', () => driver.shutdown(bad)],
        ['managedsave', () => driver.managedsave(bad)],
        ['domstate', () => driver.domstate(bad)],
        ['domiflist', () => driver.domiflist(bad)],
        ['undefine', () => driver.undefine(bad)],
        ['clone original', () => driver.clone(bad, 'ok-name')],
        ['clone name', () => driver.clone('ok-name', bad)],
        ['clone mac', () => driver.clone('ok-name', 'ok-2', bad)],
        ['define', () => driver.define(templateXml('test', bad, '52:54:00:00:00:01'))],
        ['copy path', () => driver.copyFile(bad, 'x')],
        ['copy path abs', () => driver.copyFile('/tmp/' + bad, 'x')],
        ['run var name', () => driver.runFile('/tmp/x.sh', { [bad || 'a b']: 'v' })],
        ['run var value', () => driver.runFile('/tmp/x.sh', { V: bad + '\u0000é' })],
      );
    }
    attempts.push(['define mac', () => driver.define(templateXml('test', 'ok', '$(id)'))]);
    attempts.push(['define xml', () => driver.define('rm -rf /')]);
    attempts.push(['uri', async () => new VirshDriver(target().conn, { uri: "qemu:///system' ; id '" })]);
    for (const [what, f] of attempts) {
      await assert.rejects(f(), (e: unknown) => {
        assert.ok(e instanceof ValidationError, `${what}: expected ValidationError, got ${e}`);
        return true;
      });
    }
    assert.strictEqual(execs(), before, 'no command may reach the host');
  });
  it('names the refused value in the error', async () => {
    await assert.rejects(target().driver.suspend('S2; rm -rf /'), /domain name "S2; rm -rf \/" refused/);
    await assert.rejects(target().driver.clone('a', 'b', '$(id)'), /MAC address "\$\(id\)" refused/);
  });
}

describe('hv: missing real programs', () => {
  const missing = [{ path: '/usr/sbin/libvirtd', pkg: 'libvirt-daemon' }];
  let ci: string | undefined;
  beforeEach(() => {
    ci = process.env.CI;
  });
  afterEach(() => {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
  });
  it('fails under CI=true, naming the package to install', () => {
    process.env.CI = 'true';
    assert.throws(() => requireRealPrograms({ skip: () => assert.fail('must not skip') }, missing, false), /apt-get install -y --no-install-recommends libvirt-daemon/);
  });
  it('skips loudly outside CI', () => {
    delete process.env.CI;
    let skipped = false;
    requireRealPrograms({ skip: () => (skipped = true) }, missing, false);
    assert.ok(skipped);
  });
});

describe('hv: driver over SSH against real sshd + libvirtd (test driver)', function () {
  this.timeout(60000);
  let libvirtd: Libvirtd | undefined;
  let sshd: Sshd | undefined;
  let conn: SshConnection | undefined;
  let target: DriverTarget;
  // A second sshd for the same user whose sessions get a PATH without virsh (an empty folder):
  // the host where virsh is "not installed", as the real shell and the real sshd report it.
  let bareSshd: Sshd | undefined;
  let bareConn: SshConnection | undefined;
  let bareDir: string | undefined;

  before(async function () {
    requireRealPrograms(this);
    libvirtd = await startLibvirtd();
    sshd = await startSshd({ env: { LIBVIRT_DEFAULT_URI: libvirtd.uri } });
    conn = connectionTo(sshd);
    bareDir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-nopath-'));
    fs.chmodSync(bareDir, 0o755);
    bareSshd = await startSshd({ env: { PATH: bareDir } });
    bareConn = connectionTo(bareSshd);
    // The explicit URI goes through the real shell quoted (it holds ? and =).
    target = {
      driver: new VirshDriver(conn, { uri: libvirtd.uri, label: 'RS-real' }),
      conn,
      fileDir: sshd.userDir,
      domainType: 'test',
      flavor: 'test',
      localPath: (p) => p,
      withoutVirsh: () => new VirshDriver(bareConn!, { uri: libvirtd!.uri, label: 'RS-bare' }),
    };
  });
  after(async () => {
    await conn?.close();
    await bareConn?.close();
    await sshd?.stop();
    await bareSshd?.stop();
    if (bareDir) fs.rmSync(bareDir, { recursive: true, force: true });
    await libvirtd?.stop();
  });

  it('uses the host default URI when none is set (SetEnv LIBVIRT_DEFAULT_URI) and sees the test domain', async () => {
    const doms = await new VirshDriver(conn!).listDomains();
    assert.ok(doms.some((d) => d.name === 'test' && d.state === 'running' && d.id === 1), JSON.stringify(doms));
  });
  it('pins the fingerprint OpenSSH prints (ssh-keygen -lf)', () => {
    assert.match(sshd!.hostFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
  describe('shared driver cases', () => driverCases(() => target));
  describe('connection errors', () =>
    connectionErrorCases(() => ({
      host: sshd!.address,
      port: sshd!.port,
      username: sshd!.user,
      privateKey: sshd!.clientKey,
      hostFingerprint: sshd!.hostFingerprint,
      strangerKey: sshd!.strangerKey,
      fileDir: sshd!.userDir,
    })));
  // Counted on both sides: the client's exec requests and the commands sshd logged.
  describe('injection', () => injectionCases(() => ({ ...target, execs: () => conn!.execCount + sshd!.commandCount() })));
});

describe('hv: driver over SSH against the simulated real server', function () {
  this.timeout(30000);
  let sim: SimRealServer;
  let conn: SshConnection;
  let target: DriverTarget;
  const pair = sshKeyPair();
  const stranger = sshKeyPair();
  const backend = new MemoryBackend();
  // Own loopback addresses, claimed so that parallel suites never collide.
  let range: LoopbackRange;

  // A second simulated host without virsh on its PATH.
  let bare: SimRealServer;
  let bareConn: SshConnection;

  before(async () => {
    range = allocLoopbackRange();
    sim = new SimRealServer({ address: range.ip(1), authorizedKeys: [pair.public], backend });
    await sim.start();
    bare = new SimRealServer({ address: range.ip(3), authorizedKeys: [pair.public] });
    bare.missingPrograms.add('virsh');
    await bare.start();
    conn = new SshConnection({ host: sim.address, port: sim.port, username: 'root', privateKey: pair.private, hostFingerprint: sim.fingerprint });
    bareConn = new SshConnection({ host: bare.address, port: bare.port, username: 'root', privateKey: pair.private, hostFingerprint: bare.fingerprint });
    target = {
      driver: new VirshDriver(conn, { label: 'RS-sim' }),
      conn,
      fileDir: '/var/lib/p2p',
      domainType: 'test',
      flavor: sim.flavor,
      localPath: (p) => path.join(sim.sandboxDir, p),
      withoutVirsh: () => new VirshDriver(bareConn, { label: 'RS-bare' }),
    };
  });
  after(async () => {
    await conn?.close();
    await bareConn?.close();
    await sim?.stop();
    await bare?.stop();
    range?.release();
  });

  describe('shared driver cases', () => driverCases(() => target));
  describe('connection errors', () =>
    connectionErrorCases(() => ({
      host: sim.address,
      port: sim.port,
      username: 'root',
      privateKey: pair.private,
      hostFingerprint: sim.fingerprint,
      strangerKey: stranger.private,
      fileDir: '/var/lib/p2p',
    })));
  describe('injection', () => injectionCases(() => ({ ...target, execs: () => sim.execCount })));

  // Mocha runs a suite's own tests before its nested suites: these come after the shared cases.
  describe('after the shared cases', () => {
  it('made the effects through the VmBackend', () => {
    const ops = backend.calls.map((c) => c.split(' ')[0]);
    for (const op of ['clone', 'start', 'suspend', 'resume', 'shutdown', 'destroy', 'remove']) assert.ok(ops.includes(op), `${op} in ${ops}`);
    assert.ok(backend.calls.includes('clone hv-ods hv-od1 52:54:00:aa:00:02'), backend.calls.join('\n'));
  });
  it("like a real guest: `virsh start` returns before the VM is usable (boot delay), and a destroy during the boot cancels it", async () => {
    sim.addDomain('hv-boot', 'shut off');
    sim.delays.boot = 400;
    try {
      const started = (n: string) => backend.calls.filter((c) => c === `start ${n}`).length;
      await target.driver.start('hv-boot');
      assert.strictEqual(await target.driver.domstate('hv-boot'), 'running');
      assert.strictEqual(started('hv-boot'), 0, 'the VM itself is not up yet');
      await new Promise((r) => setTimeout(r, 700));
      assert.strictEqual(started('hv-boot'), 1, 'up after the boot delay');
      await target.driver.destroy('hv-boot');
      await target.driver.start('hv-boot');
      await target.driver.destroy('hv-boot');
      await new Promise((r) => setTimeout(r, 700));
      assert.strictEqual(started('hv-boot'), 1, 'a boot cut short by destroy never comes up');
    } finally {
      sim.delays.boot = 0;
      await target.driver.undefine('hv-boot').catch(() => undefined);
    }
  });
  it('refuses shell syntax it does not know instead of guessing', async () => {
    const r = await conn.exec('virsh list --all; id');
    assert.strictEqual(r.code, 2);
    assert.match(r.stderr, /unsupported shell syntax/);
  });
  it('times out a slow command and a silent SSH handshake', async () => {
    sim.addDomain('hv-slow', 'running');
    sim.delays.suspend = 2000;
    const d = new VirshDriver(new SshConnection({ host: sim.address, port: sim.port, username: 'root', privateKey: pair.private, hostFingerprint: sim.fingerprint, commandTimeoutMs: 200 }));
    try {
      await expectKind(d.suspend('hv-slow'), 'timeout', /within 200 ms/);
    } finally {
      sim.delays.suspend = 0;
      await (d.runner as SshConnection).close();
    }
    // A TCP server that accepts and never speaks SSH: the connect deadline fires.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, range.ip(2), () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    const c = new SshConnection({ host: range.ip(2), port, username: 'root', privateKey: pair.private, hostFingerprint: sim.fingerprint, connectTimeoutMs: 300 });
    try {
      await expectKind(c.exec('true'), 'timeout', /no SSH handshake within 300 ms/);
    } finally {
      await c.close();
      sockets.forEach((sock) => sock.destroy());
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
  });
});
