// npm run bench:sem — the top of the note's Table 1: six Node-RED processes on loopback, S1 edits
// its files 200 times, and for each edit the time until each peer has it durably in its journal
// (a peer acknowledges only after its fsync), as S1 measures it. The note: 0.278 - 0.327 s.
// Run twice in one go: with the wire's VM signatures and encryption (the default) and without,
// so the JSON shows what they cost (issue 14).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { waitFor } from '../harness/wait';
import { DRIVER, DRIVER_TEXT, EditResult, GAP_MS, RealServerEditor, startSemCluster } from './sem-cluster';
import { cpuSplitMs, loadAverage, rssMb, schedOf, summarize } from './stats';
import { ChildProcess, spawn } from 'child_process';
import { countV8Trace, V8Trace } from './v8-trace';
import { gcFigures, parseGcLines, Sample } from './gc-stats';
import { performance } from 'perf_hooks';

const EDITS = Number(process.env.EDITS ?? 200);
// Edits before the measured ones (connections opened, code compiled). With the default 10, V8 is
// still optimising the path during the measured edits (6-11 % of the CPU, docs/performance.md);
// WARMUP=200 measures a warm VM.
const WARMUP = Number(process.env.WARMUP ?? 10);
// SECURE=on or off runs only that half (profiling); default both.
const SECURE = process.env.SECURE ?? 'both';
// CPU_PROF=<dir>: every VM is CPU-profiled (./cpu-profile.ts), its profile written into <dir>/<on|off>/ at exit.
const CPU_PROF = process.env.CPU_PROF;
// STRACE=1: S3's system calls are counted (strace -c -f) during the measured edits; the summary is
// printed (needs strace; slows S3 down, so its latency figures are not comparable then). Any other
// value is passed to strace as its options instead of -c (e.g. STRACE='-tt -e trace=write').
const STRACE = !!process.env.STRACE;
// V8_TRACE=1: every VM traces V8's optimisations and deoptimisations during the measured edits
// (./v8-trace-preload.ts); S1's and the receivers' counts per edit are printed and added to the
// JSON as `v8_trace`. Tracing costs CPU: the run's other figures are not comparable then.
// V8_TRACE=<dir> also keeps each VM's trace there (<dir>/<on|off>/S1.txt ...).
const V8_TRACE = process.env.V8_TRACE;
// Every VM prints its garbage collections (./gc-preload.ts); the JSON's `gc` says, per half, how
// many S1 and the receivers ran during the measured edits, their pauses, and how many samples (and
// how many of the slowest 1 %) a pause overlapped. GC_LOG=0 leaves the preload out.
const GC_LOG = process.env.GC_LOG !== '0';
// CPU of the six while idle is measured for this long before the measured edits.
const IDLE_MS = 3000;
const NOTE_S = { S3: 0.327, S4: 0.278, S5: 0.323, S6: 0.322 } as Record<string, number>;

interface Run {
  per: Record<string, ReturnType<typeof summarize>>;
  overall: ReturnType<typeof summarize>;
  whole: ReturnType<typeof summarize>;
  load: { start: number; end: number };
  senderRss: { idle?: number; afterEdits?: number; nodeOptions: string };
  /** CPU time (ms, user + system) per measured edit: S1, each receiver, all six together. */
  cpuPerEdit: { sender: number; receivers: Record<string, number>; total: number; system_share: number; idle_ms_per_s_all_six: number };
  /** Per measured edit, each VM's main thread (event loop): ms on a core, ms runnable but waiting
   * for a core, voluntary and involuntary context switches; S1, and the mean of the receivers. */
  schedPerEdit: { sender: Sched; receivers_mean: Sched };
  strace?: string;
  v8Trace?: { sender: V8Trace; receivers: V8Trace[] };
  gc?: ReturnType<typeof gcFigures>;
}

interface Sched {
  on_cpu_ms: number;
  runqueue_wait_ms: number;
  voluntary: number;
  involuntary: number;
}

/** One cluster of six, S1 editing; `secure` = VM signatures and AES-256-GCM on (the default). */
async function measure(secure: boolean): Promise<Run> {
  // BENCH_DIR=/dev/shm/... puts the VMs' files on tmpfs: fsync becomes free, which isolates the
  // protocol's own cost from the shared disk's (all six "VMs" share one disk on this machine).
  const baseDir = process.env.BENCH_DIR ? fs.mkdtempSync(path.join(process.env.BENCH_DIR, 'sem-bench-')) : undefined;
  // SEMI_SPACE_MB=2 runs the VMs with node --max-semi-space-size=2: the sender's RSS growth under
  // a stream of edits is V8's young generation growing to its default maximum (2 x 16 MB), not
  // retained state (test/unit/sem-retained.test.ts); this caps it.
  const semi = [
    process.env.SEMI_SPACE_MB ? `--max-semi-space-size=${Number(process.env.SEMI_SPACE_MB)}` : '',
    process.env.HEAP_SNAPSHOTS ? '--heapsnapshot-signal=SIGURG' : '',
    CPU_PROF ? `--require ${path.join(__dirname, 'cpu-profile.js')}` : '',
    V8_TRACE ? `--require ${path.join(__dirname, 'v8-trace-preload.js')}` : '',
    GC_LOG ? `--require ${path.join(__dirname, 'gc-preload.js')}` : '',
  ].join(' ').trim();
  const sem = await startSemCluster(6, {
    keepDirs: !!process.env.HEAP_SNAPSHOTS,
    env: {
      ...(semi ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${semi}`.trim() } : {}),
      ...(CPU_PROF ? { CPU_PROF_DIR: path.resolve(CPU_PROF, secure ? 'on' : 'off') } : {}),
      ...(V8_TRACE ? { V8_TRACE: '1' } : {}),
    },
    baseDir,
    flow: { insecureWire: !secure, burst: DRIVER === 'flow' },
  });
  const cluster = sem.cluster;
  try {
    const editor = new RealServerEditor(cluster.vms[0].url);
    const s1 = cluster.vms[0];
    const load0 = loadAverage();
    const rssIdle = rssMb(s1.pid);
    // HEAP_SNAPSHOTS=1: S1 writes a heap snapshot (after a full GC) after the warm-up edits and after all of them, into
    // its user directory, to see what the RSS growth holds (needs SEM VMs started with
    // NODE_OPTIONS=--heapsnapshot-signal=SIGURG, which this option adds).
    const snapshot = async () => {
      if (!process.env.HEAP_SNAPSHOTS || !s1.pid) return;
      const count = () => fs.readdirSync(s1.userDir).filter((f) => f.endsWith('.heapsnapshot')).length;
      const before = count();
      process.kill(s1.pid, 'SIGURG');
      await waitFor(() => count() > before, { what: 'a heap snapshot', timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 3000));
    };
    const perPeer: Record<string, number[]> = {};
    const total: number[] = [];
    const samples: Sample[] = [];
    let cpu0: ({ user: number; system: number } | undefined)[] = [];
    let sched0: ReturnType<typeof schedOf>[] = [];
    let tracer: { proc: ChildProcess; out: string } | undefined;
    let idleCpu: number[] = [];
    const record = (result: EditResult, start: number, before: number) => {
      total.push(result.ms);
      for (const a of result.acked) {
        (perPeer[a.peer] ??= []).push(a.ms);
        if (a.peer !== 'S2') samples.push({ peer: a.peer, start, ms: before + a.ms, value: a.ms });
      }
    };
    // From the end of the warm-up: the six idle for IDLE_MS (what they use with no edit at all:
    // timers, anti-entropy; part of every figure below), then the counters' start.
    const startMeasuring = async () => {
      const idle0 = cluster.vms.map((vm) => cpuSplitMs(vm.pid));
      await new Promise((r) => setTimeout(r, IDLE_MS));
      idleCpu = cluster.vms.map((vm, j) => {
        const a = idle0[j], b = cpuSplitMs(vm.pid);
        return a && b ? ((b.user + b.system - a.user - a.system) / IDLE_MS) * 1000 : 0;
      });
      if (STRACE) tracer = await startStrace(cluster.vms[2].pid!);
      if (CPU_PROF || V8_TRACE) markProfiles(cluster.vms);
      cpu0 = cluster.vms.map((vm) => cpuSplitMs(vm.pid));
      sched0 = cluster.vms.map((vm) => schedOf(vm.pid));
    };
    if (DRIVER === 'flow') {
      // Warm-up (connections opened, code paths compiled) and measured edits alike in S1's flow.
      if (WARMUP > 0) await editor.burst(WARMUP, 0, GAP_MS);
      await snapshot();
      await startMeasuring();
      for (const e of await editor.burst(EDITS, WARMUP, GAP_MS)) record(e, e.start, 0);
    } else {
      for (let i = 0; i < EDITS + WARMUP; i++) {
        if (i === WARMUP) await startMeasuring();
        const start = performance.timeOrigin + performance.now();
        const result = await editor.edit(i);
        // S1 times the edit from its own start; the request's way to it (at most the round trip
        // less S1's figure) is counted before, so a sample's interval begins at the request.
        const before = Math.max(0, performance.timeOrigin + performance.now() - start - result.ms);
        if (i === WARMUP - 1) await snapshot();
        if (i < WARMUP) continue; // warm-up: connections opened, code paths compiled
        record(result, start, before);
      }
    }
    const cpu1 = cluster.vms.map((vm) => cpuSplitMs(vm.pid));
    const sched1 = cluster.vms.map((vm) => schedOf(vm.pid));
    if (CPU_PROF || V8_TRACE) markProfiles(cluster.vms);
    const used = (i: number, k: 'user' | 'system') => (cpu1[i]?.[k] ?? 0) - (cpu0[i]?.[k] ?? 0);
    const perEdit = (i: number) => Math.round(((used(i, 'user') + used(i, 'system')) / EDITS) * 100) / 100;
    const allSystem = cluster.vms.reduce((n, _, i) => n + used(i, 'system'), 0);
    const allCpu = cluster.vms.reduce((n, _, i) => n + used(i, 'user') + used(i, 'system'), 0);
    const strace = tracer ? await stopStrace(tracer) : undefined;
    const rssAfter = rssMb(s1.pid);
    await snapshot();
    const load1 = loadAverage();
    // The marks are signals: give each VM a moment to write its `off` line.
    if (V8_TRACE) await new Promise((r) => setTimeout(r, 500));
    const traces = V8_TRACE ? cluster.vms.map((vm) => keepTrace(vm.name, secure, cluster.logs(vm).stdout)) : undefined;
    const peers = Object.keys(perPeer).sort();
    const per: Record<string, ReturnType<typeof summarize>> = {};
    for (const p of peers) per[p] = summarize(perPeer[p]);
    const overall = summarize(peers.filter((p) => p !== 'S2').flatMap((p) => perPeer[p]));
    const window: [number, number] = [Math.min(...samples.map((x) => x.start)), Math.max(...samples.map((x) => x.start + x.ms))];
    const gc = GC_LOG ? gcFigures(s1.name, Object.fromEntries(cluster.vms.map((vm) => [vm.name, parseGcLines(cluster.logs(vm).stdout)])), window, samples, overall.p99) : undefined;
    return {
      per,
      overall,
      whole: summarize(total),
      load: { start: load0, end: load1 },
      senderRss: { idle: rssIdle, afterEdits: rssAfter, nodeOptions: semi || 'default' },
      cpuPerEdit: {
        sender: perEdit(0),
        receivers: Object.fromEntries(cluster.vms.slice(1).map((vm, i) => [vm.name, perEdit(i + 1)])),
        total: Math.round(cluster.vms.reduce((n, _, i) => n + perEdit(i), 0) * 100) / 100,
        // The kernel's part of it (system calls, loopback TCP, file system).
        system_share: allCpu ? Math.round((allSystem / allCpu) * 100) / 100 : 0,
        // CPU ms per second the six use with no edit (the edits' figures above include it).
        idle_ms_per_s_all_six: Math.round(idleCpu.reduce((n, x) => n + x, 0) * 10) / 10,
      },
      schedPerEdit: { sender: schedDelta([0], sched0, sched1), receivers_mean: schedDelta(cluster.vms.slice(1).map((_, i) => i + 1), sched0, sched1) },
      strace,
      v8Trace: traces ? { sender: traces[0], receivers: traces.slice(1) } : undefined,
      gc,
    };
  } finally {
    if (process.env.HEAP_SNAPSHOTS) console.error(`heap snapshots kept in ${cluster.vms[0].userDir}`);
    await sem.stop();
    if (baseDir) fs.rmSync(baseDir, { recursive: true, force: true });
  }
}

/** V8_TRACE: counts a VM's trace, and keeps it when V8_TRACE names a directory. */
function keepTrace(name: string, secure: boolean, stdout: string): V8Trace {
  if (V8_TRACE && V8_TRACE !== '1') {
    const dir = path.resolve(V8_TRACE, secure ? 'on' : 'off');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name}.txt`), stdout);
  }
  return countV8Trace(stdout);
}

/** V8_TRACE: compilations, compile ms and deoptimisations per measured edit, S1 and the receivers' mean. */
function v8PerEdit(t: { sender: V8Trace; receivers: V8Trace[] }) {
  const per = (x: number) => Math.round((x / EDITS) * 1000) / 1000;
  const mean = (k: 'compilations' | 'compileMs' | 'deopts') => t.receivers.reduce((n, r) => n + r[k], 0) / Math.max(1, t.receivers.length);
  return {
    sender: { compilations: per(t.sender.compilations), compile_ms: per(t.sender.compileMs), deopts: per(t.sender.deopts) },
    receivers_mean: { compilations: per(mean('compilations')), compile_ms: per(mean('compileMs')), deopts: per(mean('deopts')) },
  };
}

/** The scheduling figures of VMs `which` per measured edit, averaged over them. */
function schedDelta(which: number[], a: ReturnType<typeof schedOf>[], b: ReturnType<typeof schedOf>[]): Sched {
  const per = (k: 'onCpuMs' | 'waitMs' | 'voluntary' | 'involuntary') =>
    Math.round((which.reduce((n, i) => n + ((b[i]?.[k] ?? 0) - (a[i]?.[k] ?? 0)), 0) / which.length / EDITS) * 1000) / 1000;
  return { on_cpu_ms: per('onCpuMs'), runqueue_wait_ms: per('waitMs'), voluntary: per('voluntary'), involuntary: per('involuntary') };
}

/** CPU_PROF: the profiles cover the measured edits only (./cpu-profile.ts: first mark restarts, second writes). */
function markProfiles(vms: { pid?: number }[]): void {
  for (const vm of vms) if (vm.pid) process.kill(vm.pid, 'SIGWINCH');
}

/** strace -c -f on a running process, its summary in a file. */
async function startStrace(pid: number): Promise<{ proc: ChildProcess; out: string }> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sem-strace-')), 'strace.txt');
  const args = process.env.STRACE === '1' ? ['-c'] : process.env.STRACE!.split(' ');
  const proc = spawn('strace', [...args, '-f', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000)); // attached to every thread
  return { proc, out };
}

async function stopStrace(t: { proc: ChildProcess; out: string }): Promise<string> {
  const exited = new Promise((r) => t.proc.once('exit', r));
  t.proc.kill('SIGINT');
  await exited;
  const text = fs.readFileSync(t.out, 'utf8');
  fs.rmSync(path.dirname(t.out), { recursive: true, force: true });
  return text;
}

function report(title: string, r: Run): void {
  console.log(`${title}: SEM sync time, S1 edit durably applied on each peer, ${EDITS} edits (ms):`);
  console.log('peer   mean     p50      p99      cv       note (s)');
  for (const [p, s] of Object.entries(r.per)) {
    console.log(`${p.padEnd(6)} ${String(s.mean).padEnd(8)} ${String(s.p50).padEnd(8)} ${String(s.p99).padEnd(8)} ${String(s.cv).padEnd(8)} ${NOTE_S[p] ?? '-'}`);
  }
  console.log(`whole edit at S1 (local durable write + fan-out to 5 peers): p50 ${r.whole.p50} ms, p99 ${r.whole.p99} ms`);
  console.log(`S3..S6: p50 ${r.overall.p50} ms, p99 ${r.overall.p99} ms; the note: 278-327 ms (mean) -> ${(300 / r.overall.p50).toFixed(0)}x faster at p50`);
  console.log(`load average ${r.load.start} -> ${r.load.end}; S1 RSS ${r.senderRss.idle} -> ${r.senderRss.afterEdits} MB`);
  console.log(`CPU per edit (ms): S1 ${r.cpuPerEdit.sender}, receivers ${JSON.stringify(r.cpuPerEdit.receivers)}, all six ${r.cpuPerEdit.total} (${Math.round(r.cpuPerEdit.system_share * 100)} % in the kernel); idle: ${r.cpuPerEdit.idle_ms_per_s_all_six} ms/s for the six`);
  const sc = (x: Sched) => `${x.on_cpu_ms} ms on a core, ${x.runqueue_wait_ms} ms waiting for one, ${x.voluntary} voluntary / ${x.involuntary} involuntary switches`;
  console.log(`per edit, main thread: S1 ${sc(r.schedPerEdit.sender)}; each receiver ${sc(r.schedPerEdit.receivers_mean)}`);
  if (r.v8Trace) {
    const show = (name: string, t: V8Trace) =>
      console.log(
        `V8 during the measured edits, ${name}: ${t.compilations} compilations (${t.compileMs} ms), ${t.deopts} deoptimisations\n` +
          `  deopts: ${t.deoptsBy.slice(0, 25).map(([k, n]) => `${n} x ${k}`).join('\n          ')}\n` +
          `  compiled (ms): ${t.compiledBy.slice(0, 40).map(([k, ms]) => `${k} ${ms}`).join(', ')}`,
      );
    show('S1', r.v8Trace.sender);
    r.v8Trace.receivers.forEach((t, i) => show(`S${i + 2}`, t));
  }
  if (r.gc) {
    const g = r.gc;
    const pz = (x: typeof g.sender) => `${x.scavenges} scavenges (p50 ${x.scavenge_p50_ms} ms, max ${x.scavenge_max_ms} ms), ${x.other} other (max ${x.other_max_ms} ms)`;
    console.log(`GC during the measured edits: S1 ${pz(g.sender)}; receivers ${pz(g.receivers)}`);
    console.log(`  samples overlapping a pause of S1 / of their own receiver: ${g.samples_hit.by_sender} / ${g.samples_hit.by_own_receiver} of ${g.samples}; of the ${g.tail_samples} at or above the p99: ${g.tail_hit.by_sender} / ${g.tail_hit.by_own_receiver}, ${g.tail_hit.by_none} by none`);
    console.log(`  median of the samples S1's pauses overlapped ${g.hit_median_ms.by_sender} ms, of those none overlapped ${g.hit_median_ms.by_none} ms; p99 of the latter ${g.p99_without_hit_ms} ms`);
  }
  if (r.strace) console.log(`system calls of S3 during the ${EDITS} edits (strace -c -f):\n${r.strace}`);
}

(async () => {
  // Both in one run, on the same machine state: signatures + encryption on (the product), then off.
  const on = SECURE !== 'off' ? await measure(true) : undefined;
  if (on) report('signing + encryption ON', on);
  const off = SECURE !== 'on' ? await measure(false) : undefined;
  if (off) report('signing + encryption OFF', off);
  const main = (on ?? off)!;
  console.log(
    JSON.stringify({
      bench: 'sem-sync',
      disk: process.env.BENCH_DIR ? 'tmpfs' : 'ext4 (shared by the six VMs)',
      peers: 6,
      edits: EDITS,
      warmup_edits: WARMUP,
      driver: DRIVER_TEXT,
      // What every VM ran with (NODE_OPTIONS), plainly: the product's set-up or the bench's own.
      node_options: main.senderRss.nodeOptions,
      wire_security: on ? 'on (Ed25519 signatures + AES-256-GCM)' : 'off',
      p50_ms: main.overall.p50,
      p99_ms: main.overall.p99,
      mean_ms: main.overall.mean,
      cv: main.overall.cv,
      edit_p50_ms: main.whole.p50,
      edit_p99_ms: main.whole.p99,
      per_peer: main.per,
      load_average: main.load,
      sender_rss_mb: main.senderRss,
      cpu_ms_per_edit: main.cpuPerEdit,
      sched_per_edit: main.schedPerEdit,
      without_wire_security:
        on && off
          ? {
              p50_ms: off.overall.p50,
              p99_ms: off.overall.p99,
              mean_ms: off.overall.mean,
              edit_p50_ms: off.whole.p50,
              edit_p99_ms: off.whole.p99,
              load_average: off.load,
              cpu_ms_per_edit: off.cpuPerEdit,
              sched_per_edit: off.schedPerEdit,
              gc: off.gc,
            }
          : undefined,
      note_ms: { S3: 327, S4: 278, S5: 323, S6: 322 },
      v8_trace: main.v8Trace ? v8PerEdit(main.v8Trace) : undefined,
      gc: main.gc,
    }),
  );
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
