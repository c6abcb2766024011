// Process checks for tests: which processes are alive, found through /proc (no pgrep needed).
import * as fs from 'fs';

/** True when `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return processState(stat) !== 'Z';
  } catch {
    return false;
  }
}

/** The one-letter state of /proc/<pid>/stat (R, S, D, T = stopped, Z = zombie...), undefined if gone. */
export function pidState(pid: number): string | undefined {
  try {
    return processState(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function processState(stat: string): string {
  // "pid (comm) S ..." — comm may itself contain spaces or parentheses: cut at the last ")".
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/**
 * Pids of live processes that belong to directory `dir`: their working directory is in it, or
 * their command line or environment names it. The command line alone is not enough: Node-RED
 * sets process.title, which overwrites its command line with "node-red"; the launcher starts
 * each VM with its user directory as working directory.
 */
export function pidsUsingDir(dir: string): number[] {
  const out: number[] = [];
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      let cwd = '';
      try {
        cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        /* a kernel thread, or exited */
      }
      const uses =
        cwd === dir ||
        cwd.startsWith(prefix) ||
        fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir) ||
        fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(dir);
      if (uses && pidAlive(pid)) out.push(pid);
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}
