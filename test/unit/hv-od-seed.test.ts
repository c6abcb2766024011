// The OD seed (lib/hv/od-seed.ts), the recorded host key forms (records.ts hostKeyLine /
// hostKeyFingerprint) and the pinned known_hosts an installation procedure gets (virsh-driver.ts
// runFileCommand with knownHostsKey, run by a real /bin/sh).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { attachSeedXml, diskFolder, makeOdSeed, SEED_LABEL } from '../../lib/hv/od-seed';
import { VirshDriver } from '../../lib/hv/virsh-driver';
import { sshFingerprint } from '../../lib/hv/ssh-connection';
import { hostKeyFingerprint, hostKeyLine } from '../../lib/records/records';
import { validateRecord } from '../../lib/records/files';
import { LocalRunner } from '../../harness/real/local-runner';

const id = { od: 'OD11', address: '10.0.2.11', realServer: 'RS1', mac: '52:54:00:aa:bb:cc' };

describe('hv OD seed', () => {
  it('makes a fresh host key, machine-id and instance-id per OD, and NoCloud + p2p files', () => {
    const a = makeOdSeed(id, { script: '#!/bin/sh\necho od-setup=ok\n' });
    const b = makeOdSeed(id, { script: '#!/bin/sh\n' });
    assert.notEqual(a.hostKey.blob, b.hostKey.blob);
    assert.notEqual(a.machineId, b.machineId);
    assert.notEqual(a.instanceId, b.instanceId);
    assert.match(a.hostKey.line, /^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*$/);
    assert.equal(a.hostKey.fingerprint, sshFingerprint(Buffer.from(a.hostKey.blob, 'base64')));
    assert.deepEqual(Object.keys(a.files).sort(), ['meta-data', 'network-config', 'p2p-host-key', 'p2p-identity', 'p2p-od-setup.sh', 'user-data']);
    assert.match(a.files['meta-data'], new RegExp(`^instance-id: ${a.instanceId}\\nlocal-hostname: OD11\\n$`));
    assert.match(a.files['user-data'], /^#cloud-config\n/);
    assert.ok(a.files['user-data'].includes(`ed25519_public: '${a.hostKey.line}'`));
    assert.ok(a.files['user-data'].includes('      P2P_HOSTNAME=OD11'));
    assert.match(a.files['network-config'], /macaddress: '52:54:00:aa:bb:cc'\n    dhcp4: true/);
    assert.match(a.files['p2p-identity'], /^OD_HOSTNAME='OD11'\nOD_ADDRESS='10\.0\.2\.11'\nOD_REAL_SERVER='RS1'\nOD_MACHINE_ID='[0-9a-f]{32}'\n/);
    assert.match(a.files['p2p-host-key'], /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    assert.equal(a.files['p2p-od-setup.sh'], '#!/bin/sh\necho od-setup=ok\n');
  });

  it('static addresses go into network-config; bad input is refused before anything is made', () => {
    const s = makeOdSeed(id, { script: '', variables: { OD_NETWORK: 'static', OD_PREFIX: '16', OD_GATEWAY: '10.0.0.1' } });
    assert.match(s.files['network-config'], /addresses: \['10\.0\.2\.11\/16'\]\n    routes: \[\{to: default, via: '10\.0\.0\.1'\}\]/);
    assert.throws(() => makeOdSeed({ ...id, od: 'a b' }, { script: '' }), /hostname/);
    assert.throws(() => makeOdSeed({ ...id, mac: 'zz' }, { script: '' }), /MAC/);
    assert.throws(() => makeOdSeed(id, { script: '', variables: { PATH: '/x' } }), /OD_/);
    assert.throws(() => makeOdSeed(id, { script: '', variables: { OD_NETWORK: 'bridge' } }), /dhcp or static/);
  });

  it('attaches the seed read-only as the next free virtio disk beside the clone disk, once', () => {
    const xml = "<domain><devices>\n<disk type='file' device='disk'><source file='/var/lib/g/OD11.img'/><target dev='vda' bus='virtio'/></disk>\n</devices></domain>";
    assert.equal(diskFolder(xml), '/var/lib/g');
    const out = attachSeedXml(xml, '/var/lib/g/OD11-seed.iso');
    assert.match(out, /<source file='\/var\/lib\/g\/OD11-seed.iso'\/>\n      <target dev='vdb' bus='virtio'\/>\n      <readonly\/>/);
    assert.equal(attachSeedXml(out, '/var/lib/g/OD11-seed.iso'), out);
    assert.throws(() => diskFolder('<domain><devices/></domain>'), /no file-backed disk/);
    assert.equal(SEED_LABEL, 'cidata');
  });

  it('available-od holds the whole public key (or an older fingerprint); its known_hosts line and fingerprint derive from it', () => {
    const s = makeOdSeed(id, { script: '' });
    assert.equal(hostKeyLine(s.hostKey.blob), s.hostKey.line);
    assert.equal(hostKeyFingerprint(s.hostKey.blob), s.hostKey.fingerprint);
    const fp = 'SHA256:' + 'k'.repeat(43);
    assert.equal(hostKeyLine(fp), undefined);
    assert.equal(hostKeyFingerprint(fp), fp);
    assert.equal(hostKeyFingerprint('-'), undefined);
    assert.doesNotThrow(() => validateRecord('available-od', ['OD11', '10.0.2.11', 'RS1', s.hostKey.blob]));
    assert.doesNotThrow(() => validateRecord('available-od', ['OD11', '10.0.2.11', 'RS1', fp]));
    assert.throws(() => validateRecord('available-od', ['OD11', '10.0.2.11', 'RS1', 'ssh-ed25519 ' + s.hostKey.blob]));
  });

  it('a procedure run with knownHostsKey gets OD_HOST_KEY-pinning known_hosts (`* <key>`), removed after the run; a bad key is refused', async () => {
    const s = makeOdSeed(id, { script: '' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-kh-'));
    try {
      const file = path.join(dir, 'p.sh');
      fs.writeFileSync(file, 'cat "$OD_KNOWN_HOSTS"; echo "$OD_KNOWN_HOSTS" > ' + path.join(dir, 'where') + '\n');
      const d = new VirshDriver(new LocalRunner());
      const r = await d.runFile(file, { TARGET: 'S1' }, { knownHostsKey: s.hostKey.line });
      assert.equal(r.stdout, `* ${s.hostKey.line}\n`);
      assert.ok(!fs.existsSync(fs.readFileSync(path.join(dir, 'where'), 'utf8').trim()), 'the known_hosts file is removed after the run');
      fs.writeFileSync(file, 'exit 7\n');
      await assert.rejects(d.runFile(file, {}, { knownHostsKey: s.hostKey.line }), (e: Error & { exitCode?: number }) => e.exitCode === 7);
      assert.throws(() => d.runFileCommand(file, {}, { knownHostsKey: "ssh-ed25519 AAAA' ; rm -rf /" }), /SSH public key/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
