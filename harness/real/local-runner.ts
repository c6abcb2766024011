// Runs a driver command line on this machine with /bin/sh, as SSH would on the host: the
// benchmark's baseline (the same command without SSH).
import { spawn } from 'child_process';
import type { CommandRunner, ExecOptions, ExecResult } from '../../lib/hv/ssh-connection';

export class LocalRunner implements CommandRunner {
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      // Node gives a child a socket, not a pipe, as stdin, and `virsh define /dev/stdin` cannot
      // open a socket (ENXIO); sshd gives a pipe. With input, feed it through `cat |` to match.
      const args = options.stdin === undefined ? ['-c', command] : ['-c', 'cat | /bin/sh -c "$0"', command];
      const child = spawn('/bin/sh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60000);
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? 255 });
      });
      // A command that does not read its input may exit first: that EPIPE is not an error.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? '');
    });
  }
}
