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
    await waitFor(
      () => {
        if (daemon!.exitCode !== null) throw new Error('libvirtd exited: ' + fs.readFileSync(path.join(dir, 'libvirtd.log'), 'utf8'));
        return fs.existsSync(path.join(sock, 'libvirt-sock'));
      },
      { what: 'the libvirtd socket', timeoutMs: 10000, intervalMs: 50 },
    );
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
