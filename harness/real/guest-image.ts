// A small real Linux guest built from Debian packages, installing nothing on the host: Debian's
// kernel (the uncompressed vmlinux, which has a PVH note and reaches init in ~3 s under software
// emulation), an initramfs with busybox-static and the virtio/ext4 modules, and an ext4 root disk
// (mkfs.ext4 -d, no loop mount) holding busybox, dropbear and its libraries. The root disk is an
// ODS in the sense of docs/recovery.md: DHCP on eth0, hostname from /etc/hostname, dropbear with
// host keys from /etc/dropbear, a machine-id, a tiny HTTP service, root's authorized_keys.
// Everything downloaded or extracted is cached under .tmp/realvm/ between runs.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../../..');
export const CACHE = path.join(ROOT, '.tmp', 'realvm');

/** Guest-side libraries dropbear needs (apt-get download; dpkg-deb -x). */
const LIB_PACKAGES = ['libc6', 'libcrypt1', 'libtomcrypt1', 'libtommath1', 'zlib1g', 'libgmp10'];
/** The kernel modules /init loads, in dependency order after resolution. */
const WANTED_MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'crc32c_generic', 'ext4', 'isofs'];

export interface GuestKernel {
  vmlinux: string;
  initrd: string;
  version: string;
}

function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string | Buffer } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

/** The versioned kernel package behind linux-image-amd64 (e.g. linux-image-6.1.0-57-amd64). */
function kernelPackage(): string {
  const deps = sh('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-\S+-amd64)/.exec(deps);
  if (!m) throw new Error(`cannot find the kernel package behind linux-image-amd64: ${deps.slice(0, 200)}`);
  return m[1];
}

/** Download (once) and extract every package into one tree. */
function extracted(): string {
  const tree = path.join(CACHE, 'tree');
  const stamp = path.join(tree, '.complete');
  if (fs.existsSync(stamp)) return tree;
  const debs = path.join(CACHE, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  const want = [kernelPackage(), 'dropbear-bin', ...LIB_PACKAGES];
  const have = fs.readdirSync(debs);
  const missing = want.filter((p) => !have.some((f) => f.startsWith(p + '_')));
  if (missing.length) sh('apt-get', ['download', ...missing], { cwd: debs });
  fs.rmSync(tree, { recursive: true, force: true });
  fs.mkdirSync(tree, { recursive: true });
  for (const f of fs.readdirSync(debs).filter((x) => x.endsWith('.deb'))) sh('dpkg-deb', ['-x', path.join(debs, f), tree]);
  fs.writeFileSync(stamp, want.join('\n'));
  return tree;
}

/** `depends=` of a .ko, read from its .modinfo strings (no modinfo/depmod needed). */
function moduleDepends(ko: Buffer): string[] {
  const m = /\0depends=([^\0]*)\0/.exec(ko.toString('latin1'));
  return m && m[1] ? m[1].split(',').filter(Boolean) : [];
}

function findModules(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(dir);
  return out;
}

/** Modules in load order: each after what it depends on. */
function moduleOrder(all: Map<string, string>): string[] {
  const order: string[] = [];
  const visit = (name: string) => {
    if (order.includes(name)) return;
    const file = all.get(name);
    if (!file) throw new Error(`kernel module ${name} not found (built in?)`);
    for (const d of moduleDepends(fs.readFileSync(file))) visit(d.replace(/-/g, '_'));
    order.push(name);
  };
  WANTED_MODULES.forEach(visit);
  return order;
}

/** The uncompressed kernel: the xz payload of the bzImage. */
function extractVmlinux(bzImage: string, out: string): void {
  const buf = fs.readFileSync(bzImage);
  const at = buf.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) throw new Error(`${bzImage}: no xz payload`);
  // From a file, not a pipe: xz stops reading after the first stream (--single-stream) and a pipe
  // still holding the bzImage's tail then fails the write with EPIPE (seen in CI).
  const payload = `${out}.xz-payload`;
  fs.writeFileSync(payload, buf.subarray(at));
  try {
    fs.writeFileSync(out, execFileSync('xz', ['-dc', '--single-stream', payload], { maxBuffer: 512 * 1024 * 1024 }));
  } finally {
    fs.rmSync(payload, { force: true });
  }
}

const INIT = `#!/bin/busybox sh
# initramfs: load the virtio and ext4 modules, mount the root disk, hand over to its /sbin/init.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules/order); do /bin/busybox insmod /modules/$m.ko; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.05; i=$((i+1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "no root disk"; /bin/busybox sh; }
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /sbin/init
`;

/** Kernel + initramfs, built once per kernel version. */
export function guestKernel(): GuestKernel {
  const tree = extracted();
  const version = fs.readdirSync(path.join(tree, 'lib', 'modules'))[0];
  // The cache folder names what went into the initramfs: a change of modules or /init rebuilds it.
  const stamp = crypto.createHash('sha256').update(WANTED_MODULES.join(',') + INIT).digest('hex').slice(0, 8);
  const dir = path.join(CACHE, `kernel-${version}-${stamp}`);
  const vmlinux = path.join(dir, 'vmlinux');
  const initrd = path.join(dir, 'initrd.cpio');
  if (fs.existsSync(vmlinux) && fs.existsSync(initrd)) return { vmlinux, initrd, version };
  fs.rmSync(dir, { recursive: true, force: true });
  const stage = path.join(dir, 'initramfs');
  fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'modules'));
  fs.copyFileSync('/bin/busybox', path.join(stage, 'bin', 'busybox'));
  fs.chmodSync(path.join(stage, 'bin', 'busybox'), 0o755);
  const mods = findModules(path.join(tree, 'lib', 'modules', version, 'kernel'));
  const order = moduleOrder(mods);
  for (const m of order) fs.copyFileSync(mods.get(m)!, path.join(stage, 'modules', `${m}.ko`));
  fs.writeFileSync(path.join(stage, 'modules', 'order'), order.join('\n') + '\n');
  fs.writeFileSync(path.join(stage, 'init'), INIT, { mode: 0o755 });
  const files = sh('find', ['.', '-print'], { cwd: stage });
  fs.writeFileSync(initrd + '.tmp', execFileSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: stage, input: files, maxBuffer: 256 * 1024 * 1024 }));
  extractVmlinux(path.join(tree, 'boot', `vmlinuz-${version}`), vmlinux + '.tmp');
  fs.renameSync(vmlinux + '.tmp', vmlinux);
  fs.renameSync(initrd + '.tmp', initrd);
  fs.rmSync(stage, { recursive: true, force: true });
  return { vmlinux, initrd, version };
}

/** The root disk's /sbin/init: what a stock image's init system does, in a few lines. */
const GUEST_INIT = `#!/bin/sh
# PID 1 of the guest: mounts; the OD seed (what cloud-init does in a stock image: a read-only
# volume labelled cidata whose p2p-od-setup.sh is run with p2p-identity's variables and the host
# key it carries, before the SSH server starts); hostname from /etc/hostname, DHCP on eth0 (the
# address comes from the host's reservation), dropbear with the host keys in /etc/dropbear, the
# service, then reaps.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
seed=$(findfs LABEL=cidata 2>/dev/null)
if [ -n "$seed" ] && mkdir -p /run/seed && mount -t iso9660 -o ro "$seed" /run/seed; then
  if [ -f /run/seed/p2p-od-setup.sh ] && [ -f /run/seed/p2p-identity ]; then
    (set -a; . /run/seed/p2p-identity; OD_HOST_KEY_FILE=/run/seed/p2p-host-key /bin/sh /run/seed/p2p-od-setup.sh) >/run/od-setup.log 2>&1
    echo "od-seed: exit $? ($(tail -n 1 /run/od-setup.log))" > /dev/console
  fi
  umount /run/seed
fi
hostname "$(cat /etc/hostname)"
ip link set lo up
ip link set eth0 up
udhcpc -q -n -t 10 -T 1 -i eth0 -s /etc/udhcpc.script >/run/udhcpc.log 2>&1
/usr/sbin/dropbear -s -p 22 -P /run/dropbear.pid -r /etc/dropbear/dropbear_ed25519_host_key
[ -x /etc/p2p/service ] && /etc/p2p/service &
echo "guest-ready $(hostname)" > /dev/console
while true; do wait; sleep 1; done
`;

const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
    echo "$ip" > /run/address ;;
esac
exit 0
`;

/** The service: an HTTP page naming the host, on port 80 (busybox httpd). */
const SERVICE = `#!/bin/sh
mkdir -p /run/www
hostname > /run/www/index.html
exec httpd -f -p 80 -h /run/www
`;

export interface OdsDisk {
  /** The ext4 image (raw): the ODS's disk. */
  image: string;
  /** The ODS's SSH host key fingerprint (SHA256:...). */
  hostFingerprint: string;
  machineId: string;
}

/** Path of the extracted dropbear tools, run through the extracted loader (nothing installed). */
function dropbearkey(tree: string, args: string[]): string {
  const libs = [path.join(tree, 'lib', 'x86_64-linux-gnu'), path.join(tree, 'usr', 'lib', 'x86_64-linux-gnu')].join(':');
  return sh(path.join(tree, 'lib64', 'ld-linux-x86-64.so.2'), ['--library-path', libs, path.join(tree, 'usr', 'bin', 'dropbearkey'), ...args]);
}

function fingerprintOfPublicLine(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1], 'base64');
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/**
 * Build an ODS root disk at `image`: `hostname`, root's authorized public key, a fresh dropbear
 * host key and machine-id. 64 MiB, ext4, written without mounting.
 */
export function buildOdsDisk(image: string, opts: { hostname: string; authorizedKey: string; sizeMiB?: number }): OdsDisk {
  const tree = extracted();
  const stage = fs.mkdtempSync(path.join(CACHE, 'rootfs-'));
  try {
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/dropbear', 'etc/p2p', 'root/.ssh', 'proc', 'sys', 'dev', 'tmp', 'run', 'var/log', 'lib64', 'lib/x86_64-linux-gnu']) {
      fs.mkdirSync(path.join(stage, d), { recursive: true });
    }
    fs.copyFileSync('/bin/busybox', path.join(stage, 'bin', 'busybox'));
    fs.chmodSync(path.join(stage, 'bin', 'busybox'), 0o755);
    for (const app of sh('/bin/busybox', ['--list']).split('\n').filter((a) => a && a !== 'busybox' && a !== 'init')) {
      fs.symlinkSync('busybox', path.join(stage, 'bin', app));
    }
    fs.copyFileSync(path.join(tree, 'usr', 'sbin', 'dropbear'), path.join(stage, 'usr', 'sbin', 'dropbear'));
    fs.copyFileSync(path.join(tree, 'usr', 'bin', 'dropbearkey'), path.join(stage, 'usr', 'bin', 'dropbearkey'));
    fs.copyFileSync(path.join(tree, 'usr', 'bin', 'dropbearconvert'), path.join(stage, 'usr', 'bin', 'dropbearconvert'));
    fs.chmodSync(path.join(stage, 'usr', 'bin', 'dropbearconvert'), 0o755);
    fs.chmodSync(path.join(stage, 'usr', 'sbin', 'dropbear'), 0o755);
    fs.chmodSync(path.join(stage, 'usr', 'bin', 'dropbearkey'), 0o755);
    fs.copyFileSync(path.join(tree, 'lib64', 'ld-linux-x86-64.so.2'), path.join(stage, 'lib64', 'ld-linux-x86-64.so.2'));
    fs.chmodSync(path.join(stage, 'lib64', 'ld-linux-x86-64.so.2'), 0o755);
    const libSo = /\.so(\.\d+)*$/;
    for (const dir of ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu']) {
      const from = path.join(tree, dir);
      if (!fs.existsSync(from)) continue;
      for (const f of fs.readdirSync(from)) {
        if (!libSo.test(f)) continue;
        // libc's many NSS/gconv-less libraries are small; copy them dereferenced.
        fs.copyFileSync(fs.realpathSync(path.join(from, f)), path.join(stage, 'lib', 'x86_64-linux-gnu', f));
      }
    }
    fs.writeFileSync(path.join(stage, 'sbin', 'init'), GUEST_INIT, { mode: 0o755 });
    fs.writeFileSync(path.join(stage, 'etc', 'udhcpc.script'), UDHCPC_SCRIPT, { mode: 0o755 });
    fs.writeFileSync(path.join(stage, 'etc', 'p2p', 'service'), SERVICE, { mode: 0o755 });
    fs.writeFileSync(path.join(stage, 'etc', 'hostname'), opts.hostname + '\n');
    fs.writeFileSync(path.join(stage, 'etc', 'hosts'), `127.0.0.1 localhost\n127.0.1.1 ${opts.hostname}\n`);
    fs.writeFileSync(path.join(stage, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    fs.writeFileSync(path.join(stage, 'etc', 'group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(stage, 'etc', 'shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
    fs.writeFileSync(path.join(stage, 'etc', 'shells'), '/bin/sh\n');
    const machineId = crypto.randomBytes(16).toString('hex');
    fs.writeFileSync(path.join(stage, 'etc', 'machine-id'), machineId + '\n');
    fs.writeFileSync(path.join(stage, 'root', '.ssh', 'authorized_keys'), opts.authorizedKey.trim() + '\n', { mode: 0o600 });
    fs.chmodSync(path.join(stage, 'root', '.ssh'), 0o700);
    fs.chmodSync(path.join(stage, 'root'), 0o700);
    const keyFile = path.join(stage, 'etc', 'dropbear', 'dropbear_ed25519_host_key');
    const out = dropbearkey(tree, ['-t', 'ed25519', '-f', keyFile]);
    const pub = out.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
    if (!pub) throw new Error(`dropbearkey printed no public key: ${out}`);
    fs.rmSync(image, { force: true });
    sh('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', stage, image, `${opts.sizeMiB ?? 64}M`]);
    return { image, hostFingerprint: fingerprintOfPublicLine(pub), machineId };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}
