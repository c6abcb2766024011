// A libvirtd started by hand for tests and the benchmark, serving libvirt's test driver
// (test:///default) on a private unix socket. Facts behind the choices (see the machine notes):
// - LIBVIRT_DRIVER_DIR points at an EMPTY folder: no state driver loads (the QEMU one would fail on
//   'libvirt-qemu'; the others would take locks under /run/libvirt), and the test driver, which is
//   built into libvirt itself, still serves test:///default.
// - test:///default keeps its state across connections only while one stays open: a holder
//   `virsh event --all --loop` keeps it.
// - The socket is world-writable with no auth so the unprivileged SSH test user can reach it.
import { execFile, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { removeDir, stopProcess, track, trackDir } from './process';
import { waitFor } from '../wait';

const run = promisify(execFile);

export interface Libvirtd {
  /** Connection URI for virsh -c / LIBVIRT_DEFAULT_URI. */
  uri: string;
  dir: string;
  /** Run a local virsh command against this daemon (for checks and the benchmark's baseline). */
  virsh(args: string[], stdin?: string): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

function waitSocket(daemon: ChildProcess, sockFile: string, logFile: string, timeoutMs: number): Promise<unknown> {
  return waitFor(
    () => {
      if (daemon.exitCode !== null) throw new Error('libvirtd exited: ' + fs.readFileSync(logFile, 'utf8'));
      return fs.existsSync(sockFile);
    },
    { what: 'the libvirtd socket', timeoutMs, intervalMs: 50 },
  );
}

export async function startLibvirtd(): Promise<Libvirtd> {
  const dir = trackDir(fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-libvirtd-')));
  fs.chmodSync(dir, 0o755);
  const drivers = path.join(dir, 'drivers');
  const sock = path.join(dir, 'sock');
  fs.mkdirSync(drivers);
  fs.mkdirSync(sock, { mode: 0o755 });
  const conf = path.join(dir, 'libvirtd.conf');
  fs.writeFileSync(
    conf,
    [
      `unix_sock_dir = "${sock}"`,
      'unix_sock_rw_perms = "0777"',
      'unix_sock_ro_perms = "0777"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'listen_tcp = 0',
      'listen_tls = 0',
      '',
    ].join('\n'),
  );
  const uri = `test+unix:///default?socket=${sock}/libvirt-sock`;
  const log = fs.openSync(path.join(dir, 'libvirtd.log'), 'a');
  let daemon: ChildProcess | undefined;
  let holder: ChildProcess | undefined;
  const stop = async () => {
    await stopProcess(holder);
    await stopProcess(daemon);
    removeDir(dir);
  };
  try {
    daemon = track(spawn('/usr/sbin/libvirtd', ['-f', conf, '-p', path.join(dir, 'libvirtd.pid')], {
      env: { ...process.env, LIBVIRT_DRIVER_DIR: drivers },
      stdio: ['ignore', log, log],
    }));
    fs.closeSync(log);
    await waitSocket(daemon, path.join(sock, 'libvirt-sock'), path.join(dir, 'libvirtd.log'), 10000);
    holder = track(spawn('/usr/bin/virsh', ['-c', uri, 'event', '--all', '--loop'], { stdio: 'ignore' }));
    const virsh = async (args: string[], stdin?: string) => {
      const p = run('/usr/bin/virsh', ['-c', uri, ...args], { timeout: 30000 });
      if (stdin !== undefined) {
        p.child.stdin!.end(stdin);
      }
      return p;
    };
    await waitFor(async () => (await virsh(['list', '--all'])).stdout.includes('Name'), {
      what: 'libvirtd answering virsh list',
      timeoutMs: 10000,
    });
    return { uri, dir, virsh, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A libvirtd with the QEMU driver (real guests under software emulation). */
export interface QemuLibvirtd extends Libvirtd {
  /** Where the guests' disks, logs and kernels may live (visible to the daemon and QEMU). */
  guestDir: string;
  /** QEMU processes of the domains still running (pid files of the private /run/libvirt/qemu). */
  qemuPids(): number[];
}

const QEMU_CONF = [
  'user = "root"',
  'group = "root"',
  'security_driver = "none"',
  'cgroup_controllers = [ ]',
  'namespaces = [ ]',
  'stdio_handler = "file"',
  'dynamic_ownership = 0',
  'remember_owner = 0',
  '',
].join('\n');

/**
 * libvirtd runs under a child subreaper (perl, which Debian always has): QEMU daemonizes, so its
 * process is an orphan, and `virsh destroy` returns only once that process is gone (reaped). On a
 * host whose PID 1 is systemd that is at once; on these machines PID 1 (a VM agent) reaps orphans
 * about every 2 s, which made every destroy take 1.2-2.0 s (measured: QEMU a zombie from ~0.2 s,
 * reaped at 1.6-2.0 s). The reaper makes the bed behave like a real host: it becomes the parent of
 * the orphaned QEMUs and reaps them as they exit; it forwards TERM/INT to libvirtd and exits with
 * it. prctl(PR_SET_CHILD_SUBREAPER) is syscall 157 on x86_64; elsewhere it warns and only waits.
 */
const REAPER = [
  'syscall(157, 36, 1) == 0 or warn "p2p reaper: no subreaper ($!)\\n";',
  'my $pid = fork; defined $pid or die "fork: $!";',
  'if ($pid == 0) { exec @ARGV or die "exec: $!"; }',
  '$SIG{TERM} = sub { kill "TERM", $pid }; $SIG{INT} = sub { kill "INT", $pid };',
  'for (;;) { my $w = waitpid(-1, 0); if ($w == $pid) { exit($? >> 8) } if ($w < 0 && !$!{EINTR}) { exit 0 } }',
].join(' ');

/**
 * libvirtd with the QEMU driver, inside its own mount namespace (`unshare -m --propagation
 * private`) with private copies of /etc/libvirt (qemu.conf: root, no security driver, no cgroups,
 * no namespaces), /etc/passwd and /etc/group (with a libvirt-qemu user), and private
 * /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt: nothing of the host's
 * libvirt is touched. Its socket is outside the namespace so virsh (local or over SSH) reaches it.
 * stop() destroys every domain still running, stops the daemon, and kills any QEMU left by id.
 */
export async function startQemuLibvirtd(): Promise<QemuLibvirtd> {
  const dir = trackDir(fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-qemu-libvirtd-')));
  fs.chmodSync(dir, 0o755);
  const sock = path.join(dir, 'sock');
  const guestDir = path.join(dir, 'guests');
  const etc = path.join(dir, 'etc-libvirt');
  for (const d of [sock, guestDir, etc, 'run', 'lib', 'log', 'cache'].map((x) => path.resolve(dir, x))) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  const conf = path.join(etc, 'libvirtd.conf');
  fs.writeFileSync(
    conf,
    [
      `unix_sock_dir = "${sock}"`,
      'unix_sock_rw_perms = "0777"',
      'unix_sock_ro_perms = "0777"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'listen_tcp = 0',
      'listen_tls = 0',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(etc, 'qemu.conf'), QEMU_CONF);
  fs.writeFileSync(path.join(etc, 'libvirt.conf'), '');
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  const group = fs.readFileSync('/etc/group', 'utf8');
  fs.writeFileSync(path.join(dir, 'passwd'), passwd + (/^libvirt-qemu:/m.test(passwd) ? '' : 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n'));
  fs.writeFileSync(path.join(dir, 'group'), group + (/^libvirt-qemu:/m.test(group) ? '' : 'libvirt-qemu:x:64055:\n') + (/^kvm:/m.test(group) ? '' : 'kvm:x:64056:\n'));
  const binds: [string, string][] = [
    [etc, '/etc/libvirt'],
    [path.join(dir, 'passwd'), '/etc/passwd'],
    [path.join(dir, 'group'), '/etc/group'],
    [path.join(dir, 'run'), '/run/libvirt'],
    [path.join(dir, 'lib'), '/var/lib/libvirt'],
    [path.join(dir, 'log'), '/var/log/libvirt'],
    [path.join(dir, 'cache'), '/var/cache/libvirt'],
  ];
  // Bind targets must exist; creating an empty folder on the host is the only trace left.
  for (const [, to] of binds) if (!fs.existsSync(to)) fs.mkdirSync(to, { recursive: true });
  const script = [
    'set -e',
    ...binds.map(([from, to]) => `mount --bind '${from}' '${to}'`),
    `exec /usr/bin/perl -e '${REAPER}' /usr/sbin/libvirtd -f '${conf}' -p '${path.join(dir, 'libvirtd.pid')}'`,
  ].join('\n');
  const uri = `qemu+unix:///system?socket=${sock}/libvirt-sock`;
  const logFile = path.join(dir, 'libvirtd.log');
  const log = fs.openSync(logFile, 'a');
  let daemon: ChildProcess | undefined;
  const virsh = async (args: string[], stdin?: string) => {
    const p = run('/usr/bin/virsh', ['-c', uri, ...args], { timeout: 60000 });
    if (stdin !== undefined) p.child.stdin!.end(stdin);
    return p;
  };
  const qemuPids = (): number[] => {
    const d = path.join(dir, 'run', 'qemu');
    if (!fs.existsSync(d)) return [];
    return fs
      .readdirSync(d)
      .filter((f) => f.endsWith('.pid') && f !== 'driver.pid')
      .map((f) => Number(fs.readFileSync(path.join(d, f), 'utf8').trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 1 && fs.existsSync(`/proc/${pid}`));
  };
  const stop = async () => {
    if (daemon && daemon.exitCode === null) {
      try {
        const names = (await virsh(['list', '--name'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
        await Promise.all(names.map((n) => virsh(['destroy', n]).catch(() => undefined)));
      } catch {
        /* the daemon may already be gone: the pids below are the fallback */
      }
    }
    const left = qemuPids();
    await stopProcess(daemon, 5000);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    removeDir(dir);
  };
  try {
    daemon = track(
      spawn('/usr/bin/unshare', ['-m', '--propagation', 'private', '/bin/sh', '-c', script], {
        env: { ...process.env, LIBVIRT_LOG_OUTPUTS: `3:file:${logFile}` },
        stdio: ['ignore', log, log],
      }),
    );
    fs.closeSync(log);
    await waitSocket(daemon, path.join(sock, 'libvirt-sock'), logFile, 20000);
    // The first connection probes QEMU's capabilities (~8 s here, more on a busy machine).
    await waitFor(async () => (await virsh(['list', '--all'])).stdout.includes('Name'), {
      what: 'libvirtd (QEMU driver) answering virsh list',
      timeoutMs: 90000,
      intervalMs: 500,
    });
    return { uri, dir, guestDir, virsh, stop, qemuPids };
  } catch (e) {
    await stop();
    throw e;
  }
}
