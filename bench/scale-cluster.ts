// The light VMs of bench:scale and bench:scale-faults: processes running bench/scale-vm.ts (this
// package's ReplicatedStore and its HTTP routes, no Node-RED), driven over IPC, on 127.20.1.x (the
// first half of the cluster) and 127.20.2.x (the second), inside a network namespace that
// `inNetns` creates for the run and deletes after it. Partitions are iptables DROP rules between
// the two halves, inside that namespace only.
import { ChildProcess, execFileSync, fork, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { VmCommand, VmConfig } from './scale-vm';

export const PORT = 18801;
export const HALF_A = '127.20.1.';
export const HALF_B = '127.20.2.';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const ipt = (...args: string[]) => execFileSync('iptables', args, { encoding: 'utf8' });

/** What a light VM is started with (bench/scale-vm.ts reads it from SCALE_VM). */
export type VmSpec = VmConfig;

export interface Vm {
  spec: VmSpec;
  name: string;
  address: string;
  proc: ChildProcess;
  pending: Map<number, (m: Record<string, unknown>) => void>;
  nextId: number;
  started: Promise<void>;
}

/** The specs of an n-VM cluster in `dir`: S1..Sn, the first half on HALF_A, seeds S1 and S2. */
export function specs(n: number, dir: string, syncIntervalMs: number): VmSpec[] {
  const nA = Math.ceil(n / 2);
  return Array.from({ length: n }, (_, k) => {
    const i = k + 1;
    const address = i <= nA ? `${HALF_A}${i}` : `${HALF_B}${i - nA}`;
    const seeds = [`${HALF_A}1`, `${HALF_A}2`].filter((s) => s !== address);
    return { hostname: `S${i}`, address, port: PORT, folder: path.join(dir, `S${i}`), seeds, syncIntervalMs, requestTimeoutMs: 1000 };
  });
}

/** Start one VM; `started` resolves once its store listens and joined. */
export function startVm(spec: VmSpec): Vm {
  // SCALE_VM_NODE_ARGS: node options for the VMs only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" to
  // profile them (NODE_OPTIONS refuses --cpu-prof, and the bench re-executes itself in its namespace).
  const execArgv = process.env.SCALE_VM_NODE_ARGS?.split(' ').filter(Boolean);
  const proc = fork(path.join(__dirname, 'scale-vm.js'), [], { env: { ...process.env, SCALE_VM: JSON.stringify(spec) }, execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const vm = { spec, name: spec.hostname, address: spec.address, proc, pending: new Map(), nextId: 0 } as unknown as Vm;
  vm.started = new Promise((resolve, reject) => {
    proc.on('message', (m: Record<string, unknown>) => {
      if (m.id === 0) return m.error ? reject(new Error(`${vm.name}: ${String(m.error)}`)) : resolve();
      vm.pending.get(m.id as number)?.(m);
      vm.pending.delete(m.id as number);
    });
    proc.once('exit', (code, signal) => reject(new Error(`${vm.name} exited (${code ?? signal})`)));
  });
  vm.started.catch(() => undefined);
  return vm;
}

export function call(vm: Vm, req: VmCommand, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const id = ++vm.nextId;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      vm.pending.delete(id);
      reject(new Error(`${vm.name}: no answer to ${req.cmd} within ${timeoutMs} ms`));
    }, timeoutMs);
    vm.pending.set(id, (m) => {
      clearTimeout(t);
      if (m.error) reject(new Error(`${vm.name}: ${String(m.error)}`));
      else resolve(m);
    });
    vm.proc.send({ ...req, id });
  });
}

export async function until(what: string, deadlineMs: number, test: () => Promise<boolean>, everyMs = 100): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await test()) return Date.now() - t0;
    if (Date.now() - t0 > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const allEqual = async (vms: Vm[]) => new Set(await Promise.all(vms.map(async (v) => (await call(v, { cmd: 'digest' })).digest))).size === 1;

/** SIGKILL a VM and wait for its exit. */
export function killVm(vm: Vm): Promise<void> {
  return new Promise((resolve) => {
    if (vm.proc.exitCode !== null || vm.proc.signalCode !== null) return resolve();
    vm.proc.once('exit', () => resolve());
    vm.proc.kill('SIGKILL');
  });
}

/** Stop every VM (its store closed), SIGKILL after 5 s. */
export function stopVms(vms: Vm[]): Promise<void[]> {
  return Promise.all(
    vms.map(
      (v) =>
        new Promise<void>((resolve) => {
          if (v.proc.exitCode !== null || v.proc.signalCode !== null) return resolve();
          const kill = setTimeout(() => v.proc.kill('SIGKILL'), 5000);
          v.proc.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          call(v, { cmd: 'stop' }, 5000).catch(() => v.proc.kill('SIGKILL'));
        }),
    ),
  );
}

/** Cut the two halves off each other (true) or heal (false). */
export function partition(on: boolean): void {
  const op = on ? '-I' : '-D';
  ipt(op, 'INPUT', '-s', `${HALF_A}0/24`, '-d', `${HALF_B}0/24`, '-j', 'DROP');
  ipt(op, 'INPUT', '-s', `${HALF_B}0/24`, '-d', `${HALF_A}0/24`, '-j', 'DROP');
}

/**
 * Run `body` inside a network namespace created for it (this script re-executed there by
 * `ip netns exec`), and delete the namespace after. Prints a skipped line without root.
 */
export function inNetns(bench: string, body: () => Promise<void>): void {
  if (process.env.SCALE_NETNS) {
    body().catch((e) => {
      console.error(e);
      process.exit(1);
    });
    return;
  }
  if (process.getuid?.() !== 0) {
    console.log(JSON.stringify({ bench, skipped: 'needs root for its network namespace and iptables rules' }));
    return;
  }
  const ns = `p2pscale${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const cleanup = () => {
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      /* already gone */
    }
  };
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (e) {
    cleanup();
    throw e;
  }
  const script = require.main?.filename ?? process.argv[1];
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script], { stdio: 'inherit', env: { ...process.env, SCALE_NETNS: ns } });
  // A stopped bench stops its VMs (they exit with their parent) and removes the namespace.
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  child.on('exit', (code, signal) => {
    cleanup();
    process.exitCode = code ?? (signal ? 1 : 0);
    process.off('SIGTERM', forward);
    process.off('SIGINT', forward);
  });
}

/** A fresh folder for a run's VMs: tmpfs unless SCALE_DIR says otherwise. */
export function runDir(): string {
  const base = process.env.SCALE_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : require('os').tmpdir());
  return fs.mkdtempSync(path.join(base, 'p2p-scale-'));
}
