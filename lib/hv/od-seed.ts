// An OD's identity given BEFORE its first boot (the default re-identification, docs/recovery.md
// "OD re-identification"): a small read-only seed volume, ISO 9660 labelled `cidata`, attached to
// the clone. It is cloud-init's NoCloud format, so a stock cloud image applies it with the
// cloud-init it already has, and it also carries the package's own od-setup.sh for images whose
// boot runs that instead (the test bed's busybox guest: harness/real/guest-image.ts):
//   meta-data       instance-id (new per OD, so cloud-init treats the clone as a new instance), local-hostname
//   user-data       #cloud-config: hostname, the SSH host key made here (ssh_keys; old keys deleted),
//                   /etc/p2p/node-red.env and /etc/p2p/address (write_files)
//   network-config  v2: the NIC with the OD's MAC by DHCP (the reservation), or its static address
//   p2p-identity    the same as shell variables (OD_HOSTNAME, OD_ADDRESS, OD_REAL_SERVER, OD_MACHINE_ID...)
//   p2p-host-key    the OD's new ed25519 host key (OpenSSH private key format)
//   p2p-od-setup.sh the package's od-setup.sh (or the operator's script)
// The host key pair is made HERE, so the OD's full public key is known before it boots: the first
// readiness check already pins it, and available-od records it for the installation procedures.
// So the boot + setup-over-SSH + restart cycle of the older mode is one boot.
import { randomBytes } from 'crypto';
import { utils as sshUtils } from 'ssh2';
import { sshFingerprint } from './ssh-connection';
import * as v from './validate';

export interface SeedIdentity {
  od: string;
  address: string;
  realServer: string;
  mac: string;
  /** The services of the OD's future role, for P2P_SERVICES (optional). */
  services?: string;
}

export interface SeedOptions {
  /** The setup procedure carried on the seed (default: the package's od-setup.sh, given by the caller). */
  script: string;
  /** Extra OD_* variables (OD_NETWORK=static, OD_PREFIX, OD_GATEWAY, OD_INTERFACE...). */
  variables?: Record<string, string>;
}

export interface OdSeed {
  /** File name -> content, for the seed volume. */
  files: Record<string, string>;
  /** The OD's new host key: the public key line (`ssh-ed25519 AAAA...`), its blob (base64), fingerprint. */
  hostKey: { line: string; blob: string; fingerprint: string };
  machineId: string;
  instanceId: string;
}

/** The volume label cloud-init's NoCloud looks for. */
export const SEED_LABEL = 'cidata';

function yamlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Make an OD's seed: a fresh ed25519 host key pair, machine-id and instance-id, and the files. */
export function makeOdSeed(id: SeedIdentity, o: SeedOptions): OdSeed {
  const od = v.hostname(id.od);
  const address = v.hostname(id.address);
  const realServer = v.domainName(id.realServer);
  const mac = v.mac(id.mac);
  const extra = Object.fromEntries(v.variables(o.variables ?? {}));
  for (const k of Object.keys(extra)) if (!/^OD_[A-Z_]+$/.test(k)) throw new v.ValidationError('seed variable', k, 'a name OD_...');
  const pair = sshUtils.generateKeyPairSync('ed25519');
  const pub = pair.public.trim().split(/\s+/);
  const line = `${pub[0]} ${pub[1]}`;
  const fingerprint = sshFingerprint(Buffer.from(pub[1], 'base64'));
  const machineId = randomBytes(16).toString('hex');
  const instanceId = `p2p-${od}-${randomBytes(4).toString('hex')}`;
  const network = extra.OD_NETWORK ?? 'dhcp';
  if (network !== 'dhcp' && network !== 'static') throw new v.ValidationError('OD_NETWORK', network, 'dhcp or static');
  const services = id.services && id.services !== '-' ? id.services : undefined;
  const identity: Record<string, string> = {
    OD_HOSTNAME: od,
    OD_ADDRESS: address,
    OD_REAL_SERVER: realServer,
    OD_MACHINE_ID: machineId,
    OD_INSTANCE_ID: instanceId,
    ...(services ? { OD_SERVICES: services } : {}),
    ...extra,
  };
  const env = [`P2P_HOSTNAME=${od}`, `P2P_ADDRESS=${address}`, `P2P_REAL_SERVER=${realServer}`, ...(services ? [`P2P_SERVICES=${services}`] : [])].join('\n') + '\n';
  const indent = (text: string, n: number) => text.trim().split('\n').map((l) => ' '.repeat(n) + l).join('\n');
  const userData = [
    '#cloud-config',
    `hostname: ${yamlString(od)}`,
    'preserve_hostname: false',
    'ssh_deletekeys: true',
    'ssh_genkeytypes: []',
    'ssh_keys:',
    '  ed25519_private: |',
    indent(pair.private, 4),
    `  ed25519_public: ${yamlString(line)}`,
    'write_files:',
    '  - path: /etc/p2p/node-red.env',
    "    permissions: '0644'",
    '    content: |',
    indent(env, 6),
    '  - path: /etc/p2p/address',
    "    permissions: '0644'",
    '    content: |',
    indent(`OD_ADDRESS=${address}\nOD_NETWORK=${network}`, 6),
    '',
  ].join('\n');
  const nic = ['  p2p0:', '    match:', `      macaddress: ${yamlString(mac)}`];
  const networkConfig =
    network === 'dhcp'
      ? ['version: 2', 'ethernets:', ...nic, '    dhcp4: true', ''].join('\n')
      : [
          'version: 2',
          'ethernets:',
          ...nic,
          `    addresses: [${yamlString(`${address}/${extra.OD_PREFIX ?? '24'}`)}]`,
          ...(extra.OD_GATEWAY ? [`    routes: [{to: default, via: ${yamlString(v.hostname(extra.OD_GATEWAY))}}]`] : []),
          '',
        ].join('\n');
  return {
    files: {
      'meta-data': `instance-id: ${instanceId}\nlocal-hostname: ${od}\n`,
      'user-data': userData,
      'network-config': networkConfig,
      'p2p-identity': Object.entries(identity).map(([k, val]) => `${k}=${v.shellQuote(val)}`).join('\n') + '\n',
      'p2p-host-key': pair.private.trim() + '\n',
      'p2p-od-setup.sh': o.script,
    },
    hostKey: { line, blob: pub[1], fingerprint },
    machineId,
    instanceId,
  };
}

/** The folder of the domain's first disk image (the seed goes beside it). */
export function diskFolder(xml: string): string {
  const m = /<disk\b[^>]*device=['"]disk['"][^>]*>[\s\S]*?<source\s+file=['"]([^'"]+)['"]/.exec(xml);
  if (!m) throw new Error('the clone has no file-backed disk: cannot place its seed volume');
  return m[1].slice(0, m[1].lastIndexOf('/')) || '/';
}

/** The clone's XML with the seed volume attached read-only as the next free virtio disk. */
export function attachSeedXml(xml: string, seedPath: string): string {
  const p = v.absolutePath(seedPath);
  if (xml.includes(`'${p}'`) || xml.includes(`"${p}"`)) return xml;
  const used = new Set([...xml.matchAll(/<target\s+dev=['"](vd[a-z]+)['"]/g)].map((m) => m[1]));
  const dev = 'bcdefghijklmnopqrstuvwxyz'.split('').map((c) => `vd${c}`).find((d) => !used.has(d));
  if (!dev) throw new Error('no free virtio disk name for the seed volume');
  const disk =
    `    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='${p}'/>\n` +
    `      <target dev='${dev}' bus='virtio'/>\n      <readonly/>\n    </disk>\n`;
  const at = xml.indexOf('</devices>');
  if (at < 0) throw new Error('domain XML without </devices>');
  return xml.slice(0, at) + disk + xml.slice(at);
}
