// OpenSSH's sshd started by hand on a free loopback port, for the hv system tests and benchmark.
// It serves one dedicated unprivileged user (default `p2phv`, created once if missing, shell
// /bin/sh): root's login shell here is bash, which reads a slow ~/.bashrc on every SSH exec.
// Facts (see the machine notes): /run/sshd must exist, -f needs an absolute path, UsePAM no.
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isPortFree, pickFreePort } from '../net';
import { removeDir, stopProcess, track, trackDir } from './process';
import { waitFor } from '../wait';
import { SshConnection } from '../../lib/hv/ssh-connection';

export interface Sshd {
  address: string;
  port: number;
  user: string;
  /** The client's private key (OpenSSH format), authorized for `user`. */
  clientKey: string;
  /** A second key that is NOT authorized (for the refused-key test). */
  strangerKey: string;
  /** The host key's fingerprint as `ssh-keygen -lf` prints it: `SHA256:...`. */
  hostFingerprint: string;
  /** A folder the user may write (copied files go there). */
  userDir: string;
  dir: string;
  /** sshd's log (LogLevel VERBOSE). */
  log(): string;
  /** Commands sshd started, counted in its log ("Starting session: command"): server-side proof of an exec. */
  commandCount(): number;
  stop(): Promise<void>;
}

export interface SshdOptions {
  address?: string;
  user?: string;
  /** Environment for every session (SetEnv), e.g. LIBVIRT_DEFAULT_URI. */
  env?: Record<string, string>;
}

function ensureUser(user: string): void {
  try {
    execFileSync('id', ['-u', user], { stdio: 'ignore' });
    return;
  } catch {
    // not there yet
  }
  const home = `/var/lib/${user}`;
  execFileSync('useradd', ['--system', '--shell', '/bin/sh', '--home-dir', home, '--create-home', user]);
  // A locked account ('!') is refused by sshd even for key logins: '*' means "no password".
  execFileSync('usermod', ['-p', '*', user]);
}

function keygen(file: string): void {
  execFileSync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'p2p-hv-test', '-f', file]);
}

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  const address = options.address ?? '127.0.0.1';
  const user = options.user ?? 'p2phv';
  ensureUser(user);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = trackDir(fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-sshd-')));
  fs.chmodSync(dir, 0o755);
  const userDir = path.join(dir, 'files');
  fs.mkdirSync(userDir);
  execFileSync('chown', [user, userDir]);
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'client_key'));
  keygen(path.join(dir, 'stranger_key'));
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  fs.chmodSync(path.join(dir, 'authorized_keys'), 0o644);
  const fp = execFileSync('/usr/bin/ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'host_key.pub')]).toString();
  const hostFingerprint = fp.split(' ')[1];
  const logFile = path.join(dir, 'sshd.log');
  let child: ChildProcess | undefined;
  const stop = async () => {
    await stopProcess(child);
    removeDir(dir);
  };
  try {
    // A port found free may be taken before sshd binds it: try a few.
    for (let attempt = 0; ; attempt++) {
      const port = await pickFreePort(address);
      const conf = path.join(dir, 'sshd_config');
      fs.writeFileSync(
        conf,
        [
          `Port ${port}`,
          `ListenAddress ${address}`,
          `HostKey ${path.join(dir, 'host_key')}`,
          `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
          `AllowUsers ${user}`,
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'MaxSessions 50',
          'MaxStartups 50',
          'LogLevel VERBOSE',
          `PidFile ${path.join(dir, 'sshd.pid')}`,
          ...Object.entries(options.env ?? {}).map(([k, val]) => `SetEnv ${k}=${val}`),
          '',
        ].join('\n'),
      );
      child = track(spawn('/usr/sbin/sshd', ['-D', '-f', conf, '-E', logFile], { stdio: 'ignore' }));
      try {
        // Listening = the port cannot be bound any more.
        await waitFor(async () => child!.exitCode === null && !(await isPortFree(address, port)), {
          what: `sshd on ${address}:${port}`,
          timeoutMs: 5000,
          intervalMs: 50,
        });
      } catch (e) {
        await stopProcess(child);
        if (attempt >= 2) throw new Error(`sshd did not start: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : e}`);
        continue;
      }
      return {
        address,
        port,
        user,
        clientKey: fs.readFileSync(path.join(dir, 'client_key'), 'utf8'),
        strangerKey: fs.readFileSync(path.join(dir, 'stranger_key'), 'utf8'),
        hostFingerprint,
        userDir,
        dir,
        log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
        commandCount: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').match(/Starting session: command/g)?.length ?? 0 : 0),
        stop,
      };
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A connection to a test sshd as its user, with its host key pinned. */
export function connectionTo(sshd: Sshd): SshConnection {
  return new SshConnection({
    host: sshd.address,
    port: sshd.port,
    username: sshd.user,
    privateKey: sshd.clientKey,
    hostFingerprint: sshd.hostFingerprint,
  });
}
