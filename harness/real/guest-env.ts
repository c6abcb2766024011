// The real-guest test bed used by test/realvm and bench/real-vm: a private libvirtd with the QEMU
// driver, an OpenSSH sshd as the real server's SSH (user root, virsh reaches the private daemon
// through the driver's URI), the guest kernel, an ODS disk and its shut-off domain, and the
// guest login key. Everything is stopped and removed by stop().
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { pickFreePort } from '../net';
import { startQemuLibvirtd, type QemuLibvirtd } from './libvirtd';
import { startSshd, connectionTo, type Sshd } from './sshd';
import { buildOdsDisk, guestKernel, type GuestKernel, type OdsDisk } from './guest-image';
import { guestDomainXml } from './guest-domain';
import { VirshDriver } from '../../lib/hv/virsh-driver';
import type { SshConnection } from '../../lib/hv/ssh-connection';

/** Programs the real-guest suite needs, with the Debian package that brings each. */
export const GUEST_PROGRAMS: { path: string; pkg: string }[] = [
  { path: '/usr/bin/qemu-system-x86_64', pkg: 'qemu-system-x86' },
  { path: '/usr/sbin/libvirtd', pkg: 'libvirt-daemon' },
  { path: '/usr/bin/virsh', pkg: 'libvirt-clients' },
  { path: '/usr/bin/virt-clone', pkg: 'virtinst' },
  { path: '/usr/bin/cpio', pkg: 'cpio' },
  { path: '/bin/busybox', pkg: 'busybox-static' },
  { path: '/usr/sbin/mkfs.ext4', pkg: 'e2fsprogs' },
  { path: '/usr/bin/xz', pkg: 'xz-utils' },
  { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { path: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  { path: '/usr/bin/ssh', pkg: 'openssh-client' },
  { path: '/usr/bin/unshare', pkg: 'util-linux' },
  // The OD seed volume (mode seed): genisoimage would do as well.
  { path: '/usr/bin/xorriso', pkg: 'xorriso' },
  // The subreaper libvirtd runs under (harness/real/libvirtd.ts).
  { path: '/usr/bin/perl', pkg: 'perl-base' },
];

/** Why the real-guest bed cannot run here, or undefined. busybox must be the static build. */
export function guestBedMissing(): string | undefined {
  const missing = GUEST_PROGRAMS.filter((p) => !fs.existsSync(p.path));
  const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
  if (missing.length === 0 && !notRoot) return undefined;
  const pkgs = [...new Set(missing.map((m) => m.pkg))].join(' ');
  return (
    (missing.length ? `missing ${missing.map((m) => m.path).join(', ')}: apt-get install -y --no-install-recommends ${pkgs}` : '') +
    (notRoot ? ' (and the real-guest suite needs root: libvirtd, unshare -m)' : '')
  ).trim();
}

export const ODS_NAME = 'rv-ods';
export const ODS_ADDRESS = '10.0.2.15';

export interface GuestBed {
  libvirtd: QemuLibvirtd;
  sshd: Sshd;
  /** The real server's SSH connection (host key pinned). */
  conn: SshConnection;
  driver: VirshDriver;
  kernel: GuestKernel;
  ods: OdsDisk & { name: string; address: string; hostname: string; sshPort: number; servicePort: number };
  /** The guests' root login key (authorized in the ODS image). */
  guestKey: string;
  guestDir: string;
  /** Define a guest domain from the kernel, a disk and its own forwards. */
  define(o: { name: string; disk: string; mac: string; address: string; sshPort: number; servicePort: number }): Promise<void>;
  stop(): Promise<void>;
}

export async function startGuestBed(): Promise<GuestBed> {
  const kernel = guestKernel();
  const libvirtd = await startQemuLibvirtd();
  let sshd: Sshd | undefined;
  let conn: SshConnection | undefined;
  const stop = async () => {
    await conn?.close();
    await sshd?.stop();
    await libvirtd.stop();
  };
  try {
    // virsh in the real server's sessions (the installation procedures) reaches the private daemon.
    sshd = await startSshd({ user: 'root', env: { LIBVIRT_DEFAULT_URI: libvirtd.uri } });
    conn = connectionTo(sshd);
    const driver = new VirshDriver(conn, { uri: libvirtd.uri, label: 'rs-real', slowTimeoutMs: 180000 });
    const guestDir = libvirtd.guestDir;
    execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'p2p-guest', '-f', path.join(guestDir, 'guest_key')]);
    const guestKey = fs.readFileSync(path.join(guestDir, 'guest_key'), 'utf8');
    const disk = buildOdsDisk(path.join(guestDir, `${ODS_NAME}.img`), {
      hostname: ODS_NAME,
      authorizedKey: fs.readFileSync(path.join(guestDir, 'guest_key.pub'), 'utf8'),
    });
    const define = async (o: { name: string; disk: string; mac: string; address: string; sshPort: number; servicePort: number }) => {
      await driver.define(guestDomainXml({ ...o, kernel, serialLog: path.join(guestDir, `${o.name}.log`) }));
    };
    const sshPort = await pickFreePort('127.0.0.1');
    const servicePort = await pickFreePort('127.0.0.1');
    await define({ name: ODS_NAME, disk: disk.image, mac: '52:54:00:0d:5e:01', address: ODS_ADDRESS, sshPort, servicePort });
    return {
      libvirtd,
      sshd,
      conn,
      driver,
      kernel,
      ods: { ...disk, name: ODS_NAME, address: ODS_ADDRESS, hostname: ODS_NAME, sshPort, servicePort },
      guestKey,
      guestDir,
      define,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
