// An SSH session INTO a guest (an OD being re-identified, a backup being checked), carried by a
// stream the real server opened (readiness.ts tunnelOpener) or by plain TCP. The guest's host key
// is pinned when it is known (the ODS's before re-identification, the OD's recorded one after);
// when it is not, the key is taken on first use over the pinned real-server tunnel and returned,
// so the caller can record it. Commands, their deadline and their output cap as in ssh-connection.
import { Client } from 'ssh2';
import { HvError, sshFingerprint, type ExecOptions, type ExecResult } from './ssh-connection';
import type { StreamOpener } from './readiness';

export interface GuestSessionOptions {
  open: StreamOpener;
  username: string;
  privateKey: string | Buffer;
  /** Pin this host key (`SHA256:...`); unset: accept the key presented and report it. */
  hostFingerprint?: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** For messages: the guest's name. */
  label: string;
}

export interface GuestSession {
  /** The host key the guest presented (equal to the pinned one when one was given). */
  fingerprint: string;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  close(): void;
}

const MAX_OUTPUT = 1024 * 1024;

export async function openGuestSession(o: GuestSessionOptions): Promise<GuestSession> {
  const sock = await o.open();
  const client = new Client();
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', (err: Error & { level?: string }) => {
      client.end();
      if (o.hostFingerprint && seen && seen !== o.hostFingerprint) {
        reject(new HvError('host-key-mismatch', `${o.label}: host key ${seen} is not the expected ${o.hostFingerprint}`));
      } else if (err.level === 'client-authentication') {
        reject(new HvError('auth-refused', `${o.label}: the guest refused the private key`));
      } else if (err.level === 'client-timeout') {
        reject(new HvError('timeout', `${o.label}: no SSH handshake within ${o.connectTimeoutMs ?? 10000} ms`));
      } else {
        reject(new HvError('unreachable', `${o.label}: ${err.message}`));
      }
    });
    client.connect({
      sock,
      username: o.username,
      privateKey: o.privateKey,
      readyTimeout: o.connectTimeoutMs ?? 10000,
      hostVerifier: (key: Buffer) => {
        seen = sshFingerprint(key);
        return o.hostFingerprint === undefined || seen === o.hostFingerprint;
      },
    });
  });
  const exec = (command: string, options: ExecOptions = {}) =>
    new Promise<ExecResult>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? o.commandTimeoutMs ?? 60000;
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        reject(new HvError('timeout', `${o.label}: \`${command.slice(0, 120)}\` gave no result within ${timeoutMs} ms`));
      }, timeoutMs);
      client.exec(command, (err, ch) => {
        if (err) {
          done = true;
          clearTimeout(timer);
          return reject(new HvError('unreachable', `${o.label}: cannot open a session: ${err.message}`));
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let size = 0;
        const collect = (into: Buffer[]) => (d: Buffer) => {
          size += d.length;
          if (size <= MAX_OUTPUT) into.push(d);
        };
        ch.on('data', collect(out));
        ch.stderr.on('data', collect(errOut));
        ch.on('close', (code: number | null) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errOut).toString(), code: typeof code === 'number' ? code : 255 });
        });
        ch.end(options.stdin ?? '');
      });
    });
  return {
    fingerprint: seen,
    exec,
    close: () => {
      client.end();
      sock.destroy();
    },
  };
}
