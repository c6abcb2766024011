// ONE set of driver cases, run against three targets (real sshd + libvirtd's test driver, the
// simulated real server, and real sshd + libvirtd's QEMU driver in test/realvm), so the
// simulation cannot drift from the real command lines and output. Where libvirt's drivers differ
// (flavor), each target is held to its own driver's real behaviour.
import * as assert from 'assert';
import * as fs from 'fs';
import { HvError, type SshConnection } from '../../lib/hv/ssh-connection';
import type { VirshDriver } from '../../lib/hv/virsh-driver';
import * as os from 'os';
import * as path from 'path';
import { readProcedureFolder, syncProcedures } from '../../lib/hv/procedure-sync';

export interface DriverTarget {
  driver: VirshDriver;
  conn: SshConnection;
  /** A folder on the target host where files may be copied. */
  fileDir: string;
  /** The domain XML type the target accepts ('test' for libvirt's test driver). */
  domainType: string;
  /** Where a host path (under fileDir) is on this machine, to change its mode. */
  localPath?(hostPath: string): string;
  /** A driver for the same host as seen by an SSH session whose PATH has no `virsh`. */
  withoutVirsh?(): VirshDriver;
  /** Which libvirt driver's behaviour the target has where drivers differ (the sim: 'qemu'). */
  flavor: 'qemu' | 'test';
  /** The template's XML, when templateXml() does not fit (real QEMU: a user-mode NIC, no network). */
  template?(name: string, mac: string): string;
  /** What domiflist shows for the template's NIC (default network/default/-). */
  iface?: { type: string; source: string; model: string };
  /** False when the guest ignores ACPI (a real guest without an OS): shutdown is then not checked. */
  acpiShutdown?: boolean;
}

export function templateXml(type: string, name: string, mac: string): string {
  // No disk: virt-clone --auto-clone then has no storage to copy (the test driver has none).
  return (
    `<domain type='${type}'>\n  <name>${name}</name>\n  <memory unit='KiB'>65536</memory>\n  <vcpu>1</vcpu>\n` +
    `  <os>\n    <type arch='i686'>hvm</type>\n  </os>\n  <devices>\n` +
    `    <interface type='network'>\n      <mac address='${mac}'/>\n      <source network='default'/>\n` +
    `      <target dev='vnet-${name}'/>\n    </interface>\n  </devices>\n</domain>\n`
  );
}

async function rejectsKind(p: Promise<unknown>, kind: HvError['kind'], match?: RegExp): Promise<HvError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HvError, `expected HvError, got ${e}`);
    assert.strictEqual(e.kind, kind, e.message);
    if (match) assert.match(e.message + '\n' + (e.stderr ?? ''), match);
    return e;
  }
  throw new Error(`expected a ${kind} error`);
}

export function driverCases(target: () => DriverTarget): void {
  const ODS = 'hv-ods';
  const OD1 = 'hv-od1';
  const OD2 = 'hv-od2';
  const MAC0 = '52:54:00:aa:00:01';
  const MAC1 = '52:54:00:aa:00:02';
  const OD3 = 'hv-od3';

  after(async () => {
    // Leave the host as found, also after a failure.
    const { driver } = target();
    for (const n of [OD3, OD2, OD1, ODS]) {
      await driver.destroy(n).catch(() => undefined);
      await driver.undefine(n).catch(() => undefined);
    }
  });

  it('defines a domain from XML on stdin and lists it shut off', async () => {
    const { driver, domainType, template } = target();
    assert.strictEqual(await driver.define(template ? template(ODS, MAC0) : templateXml(domainType, ODS, MAC0)), ODS);
    const d = (await driver.listDomains()).find((x) => x.name === ODS);
    assert.deepStrictEqual(d, { id: null, name: ODS, state: 'shut off' });
    assert.strictEqual(await driver.domstate(ODS), 'shut off');
  });

  it('lists the interfaces with their MAC (domiflist)', async () => {
    const ifs = await target().driver.domiflist(ODS);
    assert.strictEqual(ifs.length, 1);
    // The interface name is the host's choice (the test driver says testnet0, QEMU vnetN or -).
    assert.ok(ifs[0].interface.length > 0);
    const want = target().iface ?? { type: 'network', source: 'default', model: '-' };
    assert.deepStrictEqual({ ...ifs[0], interface: '' }, { interface: '', ...want, mac: MAC0 });
  });

  it('clones a shut-off original with a chosen MAC, and with a generated one (virt-clone)', async () => {
    const { driver } = target();
    await driver.clone(ODS, OD1, MAC1);
    assert.strictEqual((await driver.domiflist(OD1))[0].mac, MAC1);
    await driver.clone(ODS, OD2);
    const mac2 = (await driver.domiflist(OD2))[0].mac;
    assert.match(mac2, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.notStrictEqual(mac2, MAC0);
    const names = (await driver.listDomains()).map((d) => d.name);
    for (const n of [ODS, OD1, OD2]) assert.ok(names.includes(n), `${n} in ${names}`);
  });

  it('walks a domain through start, suspend, resume, managedsave, start, shutdown, start, destroy', async () => {
    const { driver } = target();
    const state = async () => (await driver.listDomains()).find((d) => d.name === OD1)!;
    await driver.start(OD1);
    const running = await state();
    assert.strictEqual(running.state, 'running');
    assert.ok(typeof running.id === 'number' && running.id > 0, `id ${running.id}`);
    const active = await driver.activeCount();
    await driver.suspend(OD1);
    assert.strictEqual(await driver.domstate(OD1), 'paused');
    assert.strictEqual((await state()).state, 'paused');
    assert.strictEqual(await driver.activeCount(), active - 1, 'a suspended domain is not counted as active');
    await driver.resume(OD1);
    assert.strictEqual(await driver.domstate(OD1), 'running');
    await driver.managedsave(OD1);
    assert.deepStrictEqual(await state(), { id: null, name: OD1, state: 'shut off' });
    await driver.start(OD1);
    assert.strictEqual(await driver.domstate(OD1), 'running');
    if (target().acpiShutdown !== false) {
      await driver.shutdown(OD1);
      assert.strictEqual(await driver.domstate(OD1), 'shut off');
      await driver.start(OD1);
    }
    await driver.destroy(OD1);
    assert.strictEqual(await driver.domstate(OD1), 'shut off');
  });

  it("reads domains' sizes (virsh dominfo: CPU(s), Max memory) as their XML gives them, for the active ones too", async () => {
    const { driver, domainType, template } = target();
    // OD1 is a clone of ODS: the size of the template it was defined from.
    const xml = template ? template(ODS, MAC0) : templateXml(domainType, ODS, MAC0);
    const m = /<memory unit='KiB'>(\d+)<\/memory>/.exec(xml);
    const c = /<vcpu[^>]*>(\d+)<\/vcpu>/.exec(xml);
    assert.ok(m && c, `memory and vcpu in ${xml.slice(0, 200)}`);
    const want = { memMiB: Math.floor(Number(m[1]) / 1024), vcpus: Number(c[1]) };
    assert.deepStrictEqual(await driver.domainSizes([OD1, ODS]), { [OD1]: want, [ODS]: want });
    assert.strictEqual((await driver.activeDomainSizes())[OD1], undefined, 'a shut-off domain is not active');
    await driver.start(OD1);
    try {
      assert.deepStrictEqual((await driver.activeDomainSizes())[OD1], want);
    } finally {
      await driver.destroy(OD1);
    }
  });

  it('failed: a virsh command refused for a domain that exists, with exit code and last stderr line', async () => {
    const { driver } = target();
    const e = await rejectsKind(driver.suspend(OD1), 'failed', /Failed to suspend domain 'hv-od1'/);
    assert.strictEqual(e.exitCode, 1);
    assert.ok(e.lastLine && e.lastLine.startsWith('error:'), e.lastLine);
    await rejectsKind(driver.destroy(OD1), 'failed', /domain is not running/);
    await driver.start(OD2);
    await rejectsKind(driver.start(OD2), 'failed', /already active/);
    await rejectsKind(driver.clone(OD2, 'hv-od3'), 'failed', /must be shutoff/);
    await driver.destroy(OD2);
  });

  it('domain-absent: only when virsh lists no such domain', async () => {
    const { driver } = target();
    for (const op of [() => driver.domstate('hv-nosuch'), () => driver.destroy('hv-nosuch'), () => driver.autostartOff('hv-nosuch'), () => driver.resume('hv-nosuch')]) {
      const e = await rejectsKind(op(), 'domain-absent', /hv-nosuch does not exist/);
      assert.strictEqual(e.exitCode, 1);
    }
    assert.ok(!(await driver.domainNames()).includes('hv-nosuch'));
    assert.ok((await driver.domainNames()).includes(ODS));
  });

  it('name-in-use: virt-clone to a name a domain already has', async () => {
    await rejectsKind(target().driver.clone(ODS, OD1), 'name-in-use', /hv-od1 is in use/);
  });

  it('turns a domain\'s autostart off (virsh autostart --disable)', async () => {
    const { driver } = target();
    await driver.autostartOff(OD1);
    await driver.autostartOff(OD1);
  });

  it('program-missing: a session whose PATH has no virsh (exit 127 and `command -v` fails)', async function () {
    const { withoutVirsh } = target();
    if (!withoutVirsh) return this.skip(); // a target without a second, virsh-less SSH session (real QEMU bed)
    const d = withoutVirsh();
    assert.strictEqual(await d.hasProgram('virsh'), false);
    const e = await rejectsKind(d.destroy(OD1), 'program-missing', /virsh is not installed/);
    assert.strictEqual(e.exitCode, 127);
    await rejectsKind(d.listDomains(), 'program-missing');
    assert.strictEqual(await target().driver.hasProgram('virsh'), true);
  });

  it("suspend of a paused and resume of a running domain answer as the target's libvirt driver does", async () => {
    const { driver, flavor } = target();
    await driver.start(OD1);
    await driver.suspend(OD1);
    if (flavor === 'qemu') {
      await driver.suspend(OD1); // the QEMU driver: exit 0, still paused
      assert.strictEqual(await driver.domstate(OD1), 'paused');
    } else {
      await rejectsKind(driver.suspend(OD1), 'failed', /domain 'hv-od1' not running/);
    }
    await driver.resume(OD1);
    const e = await rejectsKind(driver.resume(OD1), 'failed', flavor === 'qemu' ? /Requested operation is not valid: domain is already running/ : /domain 'hv-od1' not paused/);
    assert.strictEqual(e.exitCode, 1);
    await driver.destroy(OD1);
  });

  it("refuses to undefine a running domain (libvirt itself would leave it running as a transient domain)", async () => {
    const { driver, conn } = target();
    await driver.clone(ODS, OD3);
    await driver.start(OD3);
    await rejectsKind(driver.undefine(OD3), 'failed', /refused to undefine hv-od3: it is running/);
    assert.strictEqual(await driver.domstate(OD3), 'running');
    // What the guard prevents, on this target's libvirt: undefine succeeds, the domain runs on
    // transient and vanishes at its next destroy.
    const raw = await conn.exec(driver.domainCommand('undefine', OD3));
    assert.strictEqual(raw.code, 0, raw.stderr);
    assert.strictEqual(await driver.domstate(OD3), 'running');
    await driver.destroy(OD3);
    assert.ok(!(await driver.listDomains()).some((d) => d.name === OD3), 'a transient domain is gone after destroy');
  });

  it('undefines domains', async () => {
    const { driver } = target();
    await driver.undefine(OD2);
    await driver.undefine(OD1, { removeAllStorage: true });
    const names = (await driver.listDomains()).map((d) => d.name);
    assert.ok(!names.includes(OD1) && !names.includes(OD2), String(names));
  });

  it('runs many commands at once over the one shared connection', async () => {
    const { driver } = target();
    const states = await Promise.all(Array.from({ length: 12 }, () => driver.domstate(ODS)));
    assert.deepStrictEqual(new Set(states), new Set(['shut off']));
  });

  it('reads the host load (loadavg, CPU count) and memory', async () => {
    const { driver } = target();
    const load = await driver.hostLoad();
    assert.ok(load.cpus >= 1 && Number.isInteger(load.cpus));
    for (const x of [load.load1, load.load5, load.load15]) assert.ok(Number.isFinite(x) && x >= 0);
    assert.strictEqual(load.perCpu, load.load1 / load.cpus);
    const mem = await driver.hostMemory();
    assert.ok(mem.totalKiB > 0 && mem.availableKiB > 0 && mem.availableKiB <= mem.totalKiB);
  });

  it('copies a file (stdin) and runs it with /bin/sh and quoted variables', async () => {
    const { driver, fileDir } = target();
    const file = `${fileDir}/install-S2.sh`;
    await driver.copyFile(file, 'echo "host=$HOSTNAME_NEW note=$NOTE"\necho warn >&2\n');
    const r = await driver.runFile(file, { HOSTNAME_NEW: 'S2b', NOTE: `it's $(id) ; "a b" \`x\`` });
    assert.strictEqual(r.stdout, `host=S2b note=it's $(id) ; "a b" \`x\`\n`);
    assert.strictEqual(r.stderr.trim().split('\n').slice(-1)[0], 'warn');
    await driver.copyFile(file, 'echo partial\necho "cannot write /etc/x" >&2\nexit 3\n');
    const e = await rejectsKind(driver.runFile(file), 'procedure-failed', /exited 3/);
    assert.strictEqual(e.exitCode, 3);
    assert.strictEqual(e.lastLine, 'cannot write /etc/x');
  });

  it('procedure-absent: an explicit test -f, whatever the shell says', async () => {
    const { driver, fileDir } = target();
    const e = await rejectsKind(driver.runFile(`${fileDir}/no-such-procedure.sh`), 'procedure-absent', /no such file \(test -f\)/);
    assert.strictEqual(e.exitCode, 2);
  });

  it('procedure-failed with exit 127 when the procedure calls a missing program (not program-missing)', async () => {
    const { driver, fileDir } = target();
    const file = `${fileDir}/calls-missing.sh`;
    await driver.copyFile(file, 'no-such-program-here\n');
    const e = await rejectsKind(driver.runFile(file), 'procedure-failed');
    assert.strictEqual(e.exitCode, 127);
  });

  it('permission-denied: a procedure the SSH user cannot read (test -r)', async function () {
    const { driver, fileDir, localPath } = target();
    if (!localPath) return this.skip(); // the target's files are not on this machine's file system
    const file = `${fileDir}/unreadable.sh`;
    await driver.copyFile(file, 'echo hi\n');
    fs.chmodSync(localPath(file), 0o000);
    try {
      await rejectsKind(driver.runFile(file), 'permission-denied', /not readable/);
    } finally {
      fs.chmodSync(localPath(file), 0o644);
    }
  });

  it('copies validated procedures to the host and keeps them in step by hash', async () => {
    const { driver, fileDir } = target();
    const local = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-procs-'));
    try {
      fs.writeFileSync(path.join(local, 'S7.sh'), 'echo "installing $TARGET"\n');
      fs.writeFileSync(path.join(local, 'Broken.sh'), 'if then fi (\n');
      fs.writeFileSync(path.join(local, 'notes.txt'), 'not a procedure');
      let folder = readProcedureFolder(local);
      assert.deepStrictEqual(folder.files.map((f) => f.name), ['S7.sh']);
      assert.deepStrictEqual(folder.problems.map((p) => p.name), ['Broken.sh']);
      assert.match(folder.problems[0].why, /sh -n/);
      const dir = `${fileDir}/procs`;
      assert.deepStrictEqual(await syncProcedures(driver, dir, folder.files), { copied: ['S7.sh'], unchanged: [] });
      assert.deepStrictEqual(await syncProcedures(driver, dir, folder.files), { copied: [], unchanged: ['S7.sh'] });
      fs.writeFileSync(path.join(local, 'S7.sh'), 'echo "installing $TARGET, v2"\n');
      folder = readProcedureFolder(local);
      assert.deepStrictEqual(await syncProcedures(driver, dir, folder.files), { copied: ['S7.sh'], unchanged: [] });
      const r = await driver.runFile(`${dir}/S7.sh`, { TARGET: 'S7' });
      assert.strictEqual(r.stdout, 'installing S7, v2\n');
    } finally {
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
}
