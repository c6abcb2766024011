// npm run bench:scale — SEM at 6, 25, 50 and 100 VMs (issue 16). Each VM is a light process
// (bench/scale-vm.ts: this package's ReplicatedStore, its HTTP routes, journal and text files,
// without the Node-RED runtime around it) on its own 127.20.x.y address, all inside a network
// namespace this bench creates (and deletes), so that a partition is real packet loss: iptables
// DROP rules between the two halves of the cluster, inside that namespace only.
// Per size it prints one JSON line: time to form (every VM lists every member), per-VM idle CPU %
// and bytes/s (iptables byte counter of the namespace's loopback over IDLE_S seconds, divided by
// the VM count), edit-to-all p50/p99 (S1's edit until every peer acknowledged it durably), the
// convergence time after a PARTITION_S partition healed (every VM's digest equal), RSS per VM.
// The last line is one JSON object with every size and the issue's targets beside them.
// Files live on tmpfs by default (SCALE_DIR overrides): 100 VMs sharing one disk would measure
// the disk's fsync queue, not the protocol; bench:sem measures the disk path with real Node-RED.
// Needs root (network namespace, iptables); SIZES=6,25 EDITS=100 SYNC_MS=500 tune a run.
import { ChildProcess, execFileSync, fork, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadAverage, rssMb, summarize } from './stats';
import type { VmCommand } from './scale-vm';

const SIZES = (process.env.SIZES ?? '6,25,50,100').split(',').map(Number);
const EDITS = Number(process.env.EDITS ?? 100);
const SYNC_MS = Number(process.env.SYNC_MS ?? 500);
const IDLE_S = Number(process.env.IDLE_S ?? 10);
const PARTITION_S = 10;
const PORT = 18801;
const HALF_A = '127.20.1.';
const HALF_B = '127.20.2.';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ipt = (...args: string[]) => execFileSync('iptables', args, { encoding: 'utf8' });

interface Vm {
  name: string;
  address: string;
  proc: ChildProcess;
  pending: Map<number, (m: Record<string, unknown>) => void>;
  nextId: number;
}

function call(vm: Vm, req: VmCommand, timeoutMs = 60_000): Promise<Record<string, unknown>> {
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

async function until(what: string, deadlineMs: number, test: () => Promise<boolean>, everyMs = 100): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await test()) return Date.now() - t0;
    if (Date.now() - t0 > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** Bytes through the namespace's loopback since the counters were zeroed (one count per packet). */
function loBytes(): number {
  const line = ipt('-L', 'OUTPUT', '-v', '-x', '-n').split('\n').find((l) => /\slo\s/.test(l));
  return line ? Number(line.trim().split(/\s+/)[1]) : 0;
}

const allEqual = async (vms: Vm[]) => new Set(await Promise.all(vms.map(async (v) => (await call(v, { cmd: 'digest' })).digest))).size === 1;

async function runSize(n: number, base: string) {
  const nA = Math.ceil(n / 2);
  const vms: Vm[] = [];
  const dir = fs.mkdtempSync(path.join(base, `n${n}-`));
  const started: Promise<void>[] = [];
  const t0 = Date.now();
  for (let i = 1; i <= n; i++) {
    const address = i <= nA ? `${HALF_A}${i}` : `${HALF_B}${i - nA}`;
    const seeds = [`${HALF_A}1`, `${HALF_A}2`].filter((s) => s !== address);
    const cfg = { hostname: `S${i}`, address, port: PORT, folder: path.join(dir, `S${i}`), seeds, syncIntervalMs: SYNC_MS, requestTimeoutMs: 1000 };
    const proc = fork(path.join(__dirname, 'scale-vm.js'), [], { env: { ...process.env, SCALE_VM: JSON.stringify(cfg) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const vm: Vm = { name: cfg.hostname, address, proc, pending: new Map(), nextId: 0 };
    started.push(
      new Promise((resolve, reject) => {
        proc.on('message', (m: Record<string, unknown>) => {
          if (m.id === 0) return m.error ? reject(new Error(`${vm.name}: ${String(m.error)}`)) : resolve();
          vm.pending.get(m.id as number)?.(m);
          vm.pending.delete(m.id as number);
        });
        proc.once('exit', (code) => reject(new Error(`${vm.name} exited (${code})`)));
      }),
    );
    vms.push(vm);
  }
  try {
    await Promise.all(started);
    await until('every VM to list every member', 300_000, async () => (await Promise.all(vms.map((v) => call(v, { cmd: 'members' })))).every((m) => m.members === n), 250);
    const formMs = Date.now() - t0;
    await until('identical files after forming', 120_000, () => allEqual(vms), 250);
    await sleep(2000);

    // Idle: CPU and bytes over IDLE_S seconds, nothing but anti-entropy running.
    const cpu0 = vms.map((v) => cpuSeconds(v.proc.pid));
    ipt('-Z', 'OUTPUT');
    const w0 = Date.now();
    await sleep(IDLE_S * 1000);
    const secs = (Date.now() - w0) / 1000;
    const bytes = loBytes();
    const cpuPct = vms.map((v, i) => ((cpuSeconds(v.proc.pid) - cpu0[i]) / secs) * 100);
    const loadIdle = loadAverage();

    // Edits: S1 modifies one record EDITS times; each counts when every peer acknowledged it.
    const s1 = vms[0];
    const ms: number[] = [];
    let prev: string[] | null = null;
    let failed = 0;
    for (let i = 0; i < EDITS + 5; i++) {
      const record = ['RS1', (i / 1000).toFixed(3), String(i % 50), 'up'];
      const r = await call(s1, { cmd: 'edit', edit: prev ? { file: 'realserver', op: 'Mod', before: prev, record } : { file: 'realserver', op: 'Add', record } });
      prev = record;
      if (i < 5) continue;
      if (Number(r.failed) > 0) failed++;
      else ms.push(Number(r.ms));
    }
    const loadEdits = loadAverage();

    // Partition: the two halves cannot reach each other for PARTITION_S; each side edits.
    ipt('-I', 'INPUT', '-s', `${HALF_A}0/24`, '-d', `${HALF_B}0/24`, '-j', 'DROP');
    ipt('-I', 'INPUT', '-s', `${HALF_B}0/24`, '-d', `${HALF_A}0/24`, '-j', 'DROP');
    const p0 = Date.now();
    const last = vms[n - 1];
    for (let i = 0; i < 3; i++) {
      const a = ['RS1', `9.${i}`, '9', 'up'];
      await call(s1, { cmd: 'edit', edit: { file: 'realserver', op: 'Mod', before: prev!, record: a } });
      prev = a;
      await call(last, { cmd: 'edit', edit: { file: 'available-od', op: 'Add', record: [`OD${i}`, `127.0.3.${i + 1}`, 'RS2'] } });
    }
    await sleep(Math.max(0, PARTITION_S * 1000 - (Date.now() - p0)));
    ipt('-D', 'INPUT', '-s', `${HALF_A}0/24`, '-d', `${HALF_B}0/24`, '-j', 'DROP');
    ipt('-D', 'INPUT', '-s', `${HALF_B}0/24`, '-d', `${HALF_A}0/24`, '-j', 'DROP');
    const convergeMs = await until('identical files after the heal', 120_000, () => allEqual(vms), 100);

    const rss = vms.map((v) => rssMb(v.proc.pid) ?? 0);
    const edit = summarize(ms);
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      vms: n,
      form_s: r2(formMs / 1000),
      idle_cpu_pct_per_vm: r2(cpuPct.reduce((a, b) => a + b, 0) / n),
      idle_bytes_per_s_per_vm: Math.round(bytes / secs / n),
      edit_to_all_ms: { p50: edit.p50, p99: edit.p99, n: edit.n, with_failed_peers: failed },
      converge_after_heal_ms: convergeMs,
      partition_s: PARTITION_S,
      rss_mb_per_vm: { mean: r2(rss.reduce((a, b) => a + b, 0) / n), max: Math.max(...rss) },
      load_average: { idle: loadIdle, edits: loadEdits, end: loadAverage() },
      sync_interval_ms: SYNC_MS,
    };
  } finally {
    await Promise.all(
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
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function inNamespace(): Promise<void> {
  ipt('-A', 'OUTPUT', '-o', 'lo');
  const base = fs.mkdtempSync(path.join(process.env.SCALE_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()), 'p2p-scale-'));
  const results: Awaited<ReturnType<typeof runSize>>[] = [];
  try {
    for (const n of SIZES) {
      const r = await runSize(n, base);
      console.log(JSON.stringify(r));
      results.push(r);
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
  const at = (n: number) => results.find((r) => r.vms === n);
  const small = at(6);
  const big = at(100);
  console.log(
    JSON.stringify({
      bench: 'scale',
      vm: 'light process: ReplicatedStore + its HTTP routes, no Node-RED runtime',
      partition: 'iptables DROP between two /24 halves inside a network namespace of this bench',
      disk: process.env.SCALE_DIR ? process.env.SCALE_DIR : 'tmpfs',
      sizes: results,
      targets: {
        idle_cpu_100_vs_6: small && big ? Math.round((big.idle_cpu_pct_per_vm / small.idle_cpu_pct_per_vm) * 100) / 100 : null,
        idle_bytes_100_vs_6: small && big ? Math.round((big.idle_bytes_per_s_per_vm / small.idle_bytes_per_s_per_vm) * 100) / 100 : null,
        aim_ratio_at_most: 2,
        edit_to_all_p99_ms_at_50: at(50)?.edit_to_all_ms.p99 ?? null,
        aim_p99_ms_at_50: 100,
        converge_ms_at_100: big?.converge_after_heal_ms ?? null,
        aim_converge_ms_at_100: 5000,
      },
      issue_before: { vms_60_edit_p99_ms: 1598.5, vms_60_load_idle: 17.7, note: 'real Node-RED, digest with every peer every 2 s, whole snapshots' },
    }),
  );
}

function main(): void {
  if (process.env.SCALE_NETNS) {
    inNamespace().catch((e) => {
      console.error(e);
      process.exit(1);
    });
    return;
  }
  if (process.getuid?.() !== 0) {
    console.log(JSON.stringify({ bench: 'scale', skipped: 'needs root for its network namespace and iptables rules' }));
    return;
  }
  const ns = `p2pscale${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, __filename], { stdio: 'inherit', env: { ...process.env, SCALE_NETNS: ns } });
    process.exitCode = r.status ?? 1;
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

main();
