// OD replication from a real ODS template (issue 13, check (b)): real libvirt with the QEMU
// driver, real Debian-kernel guests under software emulation, reached through a real OpenSSH sshd
// as the real server. Two ODs are cloned with the package's default post-clone XML hook; rv-od1
// gets its identity before its first boot (the default mode, seed: a cidata volume carrying the
// shipped od-setup.sh, the identity and a host key made by the replicator), rv-od2 after it (mode
// guest: od-setup.sh over SSH, then a restart). Inside each guest the hostname, address, SSH host
// key and machine-id must differ from the template's and from each other, each OD must be
// suspended only after it answered under its new identity, and its available-od record carries
// the new host key (the whole public key). Then each is resumed and its SSH readiness timed
// (printed, never asserted), and an installation procedure that pins the recorded key through
// OD_KNOWN_HOSTS is refused by a wrong key and accepted with the right one.
import * as assert from 'assert';
import { openGuestSession } from '../../lib/hv/guest-session';
import { tunnelOpener, waitSshReady, sshEndpoint } from '../../lib/hv/readiness';
import { guestReplicationHooks, guestSeedHooks } from '../../lib/hv/guest-reidentify';
import { hvKind } from '../../lib/records/hv-outcome';
import { hostKeyFingerprint, hostKeyLine } from '../../lib/records/records';
import { installProcedure } from '../../harness/real/guest-recovery';
import { replicateOne, type ReplicationResult } from '../../lib/recovery/od-replication';
import { fromOd } from '../../lib/records/records';
import { pickFreePort } from '../../harness/net';
import { startGuestBed, type GuestBed } from '../../harness/real/guest-env';
import { MemoryFiles } from '../support/memory-files';
import { requireGuestBed } from './realvm-env';

interface Inside {
  hostname: string;
  address: string;
  machineId: string;
  hostKey: string;
}

describe('real guests: OD replication from a real ODS (QEMU driver, software emulation)', function () {
  this.timeout(600000);
  let bed: GuestBed | undefined;
  const ports = new Map<string, number>();
  const ODS = [
    { od: 'rv-od1', address: '10.0.2.21', realServer: 'RSREAL' },
    { od: 'rv-od2', address: '10.0.2.22', realServer: 'RSREAL' },
  ];
  const made: ReplicationResult[] = [];
  let files: MemoryFiles;

  before(async function () {
    this.timeout(600000);
    requireGuestBed(this);
    bed = await startGuestBed();
    files = new MemoryFiles(
      { hostname: 'M1', address: '127.0.0.1', realServer: 'RSREAL', services: '-' },
      { reservation: ODS.map((o) => [o.od, o.address, o.realServer]) },
    );
    for (const o of ODS) for (const gp of [22, 80]) ports.set(`${o.od}:${gp}`, await pickFreePort('127.0.0.1'));
  });

  after(async function () {
    this.timeout(120000);
    await bed?.stop();
  });

  it('clones two ODs, re-identifies them inside the guest, restarts them, and suspends them only once ready', async () => {
    const b = bed!;
    for (const [i, id] of ODS.entries()) {
      const portFor = (gp: number, x: { od: string }) => ports.get(`${x.od}:${gp}`)!;
      const login = { username: 'root', privateKey: b.guestKey, portFor };
      const hooks = i === 0 ? guestSeedHooks(b.driver, login) : guestReplicationHooks(b.driver, { ...login, odsFingerprint: b.ods.hostFingerprint });
      const r = await replicateOne(id, { files, driver: b.driver, ods: b.ods.name, ...hooks });
      assert.strictEqual(r.outcome, 'made');
      made.push(r);
      console.log(`      ${id.od}: ${JSON.stringify({ ...r.timings, ...r.reidentifySteps })}`);
      assert.strictEqual(await b.driver.domstate(id.od), 'paused');
    }
    // available-od carries each OD's new host key; the reservations are gone.
    const avail = files.records('available-od').map(fromOd);
    assert.deepStrictEqual(
      avail.map((o) => [o.od, o.address, o.hostKey]),
      made.map((m, i) => [ODS[i].od, ODS[i].address, m.hostKey]),
    );
    assert.deepStrictEqual(files.records('reservation'), []);
    for (const m of made) assert.match(hostKeyLine(m.hostKey) ?? '', /^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*$/);
    // The seeded OD booted once; the other booted, was set up over SSH and restarted.
    assert.deepStrictEqual(Object.keys(made[0].reidentifySteps ?? {}).sort(), ['boot', 'verify']);
    assert.ok(made[0].timings.seed > 0 && made[1].timings.seed === 0);
    assert.ok((made[1].reidentifySteps?.restart ?? 0) > 0);
  });

  it('gives each OD its own hostname, address, SSH host key and machine-id (read inside each guest), and resumes it to SSH', async () => {
    const b = bed!;
    assert.strictEqual(made.length, 2, 'the replication case ran');
    const inside: Inside[] = [];
    const resumeMs: number[] = [];
    for (const [i, id] of ODS.entries()) {
      const xml = await b.driver.dumpxml(id.od);
      // The clone's own forwards and log, not the template's.
      assert.ok(xml.includes(`hostfwd=tcp:127.0.0.1:${ports.get(`${id.od}:22`)}-${id.address}:22`), 'own SSH forward');
      assert.ok(!xml.includes(`:${b.ods.sshPort}-`), 'not the template forward');
      assert.ok(xml.includes(`${id.od}.log`), 'own serial log');
      const open = tunnelOpener(b.conn, sshEndpoint(xml, id.address));
      const t0 = performance.now();
      await b.driver.resume(id.od);
      await waitSshReady(open, { deadlineMs: 60000, what: id.od });
      resumeMs.push(performance.now() - t0);
      // Pinned to the recorded key: a login succeeds only if the guest holds the new key.
      const s = await openGuestSession({ open, username: 'root', privateKey: b.guestKey, hostFingerprint: hostKeyFingerprint(made[i].hostKey), label: id.od });
      try {
        const r = await s.exec("hostname; ip -4 -o addr show dev eth0 | awk '{print $4}'; cat /etc/machine-id; cat /etc/p2p/node-red.env");
        const [hostname, cidr, machineId] = r.stdout.split('\n');
        inside.push({ hostname, address: cidr.split('/')[0], machineId, hostKey: s.fingerprint });
        assert.match(r.stdout, new RegExp(`^P2P_HOSTNAME=${id.od}$`, 'm'));
        assert.match(r.stdout, new RegExp(`^P2P_ADDRESS=${id.address.replace(/\./g, '\\.')}$`, 'm'));
      } finally {
        s.close();
      }
    }
    const template: Inside = { hostname: b.ods.hostname, address: b.ods.address, machineId: b.ods.machineId, hostKey: b.ods.hostFingerprint };
    assert.deepStrictEqual(
      inside.map((x) => [x.hostname, x.address]),
      ODS.map((o) => [o.od, o.address]),
    );
    for (const field of ['hostname', 'address', 'machineId', 'hostKey'] as const) {
      const values = [template[field], ...inside.map((x) => x[field])];
      assert.strictEqual(new Set(values).size, 3, `${field} differs between template and clones: ${values.join(' / ')}`);
    }
    console.log(`      resume to SSH banner: ${resumeMs.map((m) => Math.round(m)).join(' ms, ')} ms (note: 0.25-0.65 s on these machines)`);
  });

  it('an installation procedure reaches the OD only with its recorded host key pinned (a wrong key is refused)', async () => {
    const b = bed!;
    assert.strictEqual(made.length, 2, 'the replication case ran');
    const path = '/var/lib/p2p-ha/realvm-install/rv-x.sh';
    await b.driver.copyFile(path, installProcedure(`${b.guestDir}/guest_key`));
    const vars = { TARGET: 'rv-x', TARGET_ADDRESS: '10.0.2.99', BACKUP: 'rv-xb', BACKUP_ADDRESS: ODS[0].address, OD: ODS[0].od, REAL_SERVER: 'RSREAL', SERVICES: '-' };
    // rv-od2's key is a real, valid key, but not rv-od1's: ssh must refuse rv-od1.
    const wrong = hostKeyLine(made[1].hostKey)!;
    const refused = await b.driver.runFile(path, vars, { knownHostsKey: wrong }).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode?: number },
    );
    assert.ok(refused, 'the procedure with a wrong pinned key must fail');
    assert.strictEqual(hvKind(refused), 'procedure-failed');
    assert.strictEqual(refused.exitCode, 255, `ssh's host key refusal: ${refused.message}`);
    // Nothing ran inside: the page is still the OD's own hostname.
    const open = tunnelOpener(b.conn, sshEndpoint(await b.driver.dumpxml(ODS[0].od), ODS[0].address));
    const look = async () => {
      const s = await openGuestSession({ open, username: 'root', privateKey: b.guestKey, hostFingerprint: hostKeyFingerprint(made[0].hostKey), label: ODS[0].od });
      try {
        return (await s.exec('hostname')).stdout.trim();
      } finally {
        s.close();
      }
    };
    assert.strictEqual(await look(), ODS[0].od);
    // Unpinned (no key recorded): the procedure refuses by itself.
    await assert.rejects(b.driver.runFile(path, vars), (e: unknown) => hvKind(e) === 'procedure-failed');
    // The right key: it runs.
    await b.driver.runFile(path, vars, { knownHostsKey: hostKeyLine(made[0].hostKey) });
    assert.strictEqual(await look(), 'rv-xb');
  });
});
