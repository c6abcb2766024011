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

/** Pids of live processes whose command line contains `needle` (e.g. a cluster's base directory). */
export function pidsWithCmdline(needle: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle) && pidAlive(pid)) out.push(pid);
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}
