// Stopping what this harness started: SIGTERM, then SIGKILL at a deadline. Every started process
// and temp folder is also tracked, so that if the test or benchmark process dies on an uncaught
// error, its exit handler still kills them and removes the folders (nothing is left running).
import type { ChildProcess } from 'child_process';
import * as fs from 'fs';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

export function track<T extends ChildProcess>(child: T): T {
  hook();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function trackDir(dir: string): string {
  hook();
  dirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

export function stopProcess(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
