import * as fs from 'fs';
import * as os from 'os';
// Summary statistics for benchmarks: percentiles by nearest rank, mean, coefficient of variation.
export interface Summary {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
  cv: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values: number[]): Summary {
  const s = values.slice().sort((a, b) => a - b);
  const n = s.length;
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { n, mean: r(mean), p50: r(percentile(s, 50)), p99: r(percentile(s, 99)), min: r(s[0]), max: r(s[n - 1]), cv: r(sd / mean) };
}

/** Resident set size of a process in MB (Linux /proc), undefined when it is gone. */
export function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** The 1-minute load average, rounded: printed beside every latency figure (the machine is shared). */
export function loadAverage(): number {
  return Math.round(os.loadavg()[0] * 100) / 100;
}

/** CPU time (user + system, all threads) a process has used, in ms (Linux /proc; clock ticks of
 * 10 ms), undefined when it is gone. Under load, CPU per operation is what compares across runs. */
export function cpuMs(pid: number | undefined): number | undefined {
  const c = cpuSplitMs(pid);
  return c && c.user + c.system;
}

/**
 * Scheduling of a process's main thread (its event loop) from /proc: ms on a core and ms runnable
 * but waiting for one (the kernel's schedstat, ns), and its context switches: voluntary (it
 * waited, e.g. in epoll) and involuntary (preempted, e.g. by a process its write woke).
 */
export function schedOf(pid: number | undefined): { onCpuMs: number; waitMs: number; voluntary: number; involuntary: number } | undefined {
  if (!pid) return undefined;
  try {
    const [run, wait] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { onCpuMs: run / 1e6, waitMs: wait / 1e6, voluntary: field('voluntary_ctxt_switches'), involuntary: field('nonvoluntary_ctxt_switches') };
  } catch {
    return undefined;
  }
}

/** CPU time of a process so far (ms), in user space and in the kernel (system calls, its TCP sends). */
export function cpuSplitMs(pid: number | undefined): { user: number; system: number } | undefined {
  if (!pid) return undefined;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { user: Number(f[11]) * 10, system: Number(f[12]) * 10 };
  } catch {
    return undefined;
  }
}
