// npm run bench:memory — issue 16's memory aim for a sender: a real Node-RED VM (S1) with the SEM
// flow edits its realserver record EDITS times (default 10,000) while RECEIVERS (default 3) real
// Node-RED peers acknowledge each edit durably; S1's memory is sampled idle, every SAMPLE_EVERY
// edits, right after the last edit, and after a forced settle (full GCs in S1, then a pause).
// Each sample: RSS and its anonymous part (/proc/PID/status, smaps_rollup), and from the process
// itself (bench/sem-memory-probe.ts, preloaded) V8 heap used/total, external and array buffers.
// The aim (issue 16): RSS after 10,000 edits within 20 MB of the idle RSS.
// Idle is sampled right after the group formed ('idle', the baseline of the growth), after full
// GCs, and IDLE_S seconds later ('idle-later': how much an idle VM allocates, in scavenges); after
// the edits, right after the last one ('after', compared with the aim), IDLE_S seconds later
// ('after-idle') and after full GCs ('settled': what is still referenced, plus V8's sizing).
// Knobs: EDITS, RECEIVERS, SAMPLE_EVERY, IDLE_S (default 30), SEMI_SPACE_MB (runs the VMs with
// --max-semi-space-size to compare V8's young-generation sizing), HEAP_SNAPSHOTS=1 (S1 writes a
// heap snapshot after the warm-up and at the end, after full GCs, kept in the printed directory;
// compare them with bench/sem-memory-heapdiff.js; writing a snapshot adds ~150 MB of RSS for good,
// so take the RSS figures from a run without it), ALLOC_PROFILE=1 (every VM's allocations,
// collected ones included, as a .heapprofile per VM).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DRIVER, DRIVER_TEXT, GAP_MS, RealServerEditor, startSemCluster } from './sem-cluster';
import type { ProbeRequest } from './sem-memory-probe';
import { askProbe, snapshotPath } from './sem-memory-ask';
import { cpuMs, loadAverage, summarize } from './stats';

const EDITS = Number(process.env.EDITS ?? 10_000);
const RECEIVERS = Number(process.env.RECEIVERS ?? 3);
const SAMPLE_EVERY = Number(process.env.SAMPLE_EVERY ?? 1000);
const SNAPSHOTS = !!process.env.HEAP_SNAPSHOTS;
/** ALLOC_PROFILE=1: every VM records what it allocates (bench/sem-memory-probe.ts), kept in the printed directory. */
const ALLOC_PROFILE = !!process.env.ALLOC_PROFILE;
const AIM_MB = 20;
const WARMUP = 200;
const IDLE_S = Number(process.env.IDLE_S ?? 30);

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

interface Sample {
  at: string;
  edits: number;
  load: number;
  rssMb: number;
  anonMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  newSpaceMb: number;
  externalMb: number;
  arrayBuffersMb: number;
  scavenges: number;
  snapshot?: string;
}

/** A /proc field in kB as MB. */
function procKb(file: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(file, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

async function sample(pid: number, dir: string, at: string, edits: number, req: Omit<ProbeRequest, 'n'> = {}): Promise<Sample> {
  const a = await askProbe(pid, dir, req);
  if (req.settle) await new Promise((r) => setTimeout(r, 3000)); // the allocator returns freed pages
  const s: Sample = {
    at,
    edits,
    load: loadAverage(),
    rssMb: procKb(`/proc/${pid}/status`, 'VmRSS'),
    anonMb: procKb(`/proc/${pid}/smaps_rollup`, 'Anonymous'),
    heapUsedMb: mb(a.memory.heapUsed),
    heapTotalMb: mb(a.memory.heapTotal),
    newSpaceMb: a.spaces.find((x) => x.name === 'new_space')?.sizeMb ?? NaN,
    externalMb: mb(a.memory.external),
    arrayBuffersMb: mb(a.memory.arrayBuffers),
    scavenges: a.scavenges,
    ...(req.snapshot ? { snapshot: snapshotPath(pid, dir, a) } : {}),
  };
  console.log(
    `${at.padEnd(12)} edits ${String(edits).padStart(6)}  RSS ${s.rssMb} MB (anon ${s.anonMb})  heap used ${s.heapUsedMb} / total ${s.heapTotalMb} (new space ${s.newSpaceMb})  external ${s.externalMb}  arrayBuffers ${s.arrayBuffersMb}  scavenges ${s.scavenges}  load ${s.load}`,
  );
  return s;
}

(async () => {
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sem-memory-'));
  const nodeOptions = [
    `--require ${path.join(__dirname, 'sem-memory-probe.js')}`,
    process.env.SEMI_SPACE_MB ? `--max-semi-space-size=${Number(process.env.SEMI_SPACE_MB)}` : '',
  ].join(' ').trim();
  const sem = await startSemCluster(1 + RECEIVERS, { flow: { burst: DRIVER === 'flow' }, env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${nodeOptions}`.trim(), MEMORY_PROBE_DIR: probeDir, ...(ALLOC_PROFILE ? { MEMORY_ALLOC_PROFILE: '1' } : {}) } });
  const samples: Sample[] = [];
  let keepDir = false;
  try {
    const s1 = sem.cluster.vms[0];
    const pid = s1.pid!;
    const editor = new RealServerEditor(s1.url);
    // Idle: the cluster formed, nothing edited yet; a few seconds for start-up garbage to settle.
    // Then IDLE_S more seconds idle (the scavenges in that time: how much idle anti-entropy allocates).
    await new Promise((r) => setTimeout(r, 5000));
    samples.push(await sample(pid, probeDir, 'idle', 0));
    const idleSettled = await sample(pid, probeDir, 'idle-settled', 0, { settle: true });
    samples.push(idleSettled);
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const idleLater = await sample(pid, probeDir, 'idle-later', 0);
    samples.push(idleLater);
    const ms: number[] = [];
    const cpu0 = cpuMs(pid) ?? 0;
    // The edits up to the next sample: one request each (DRIVER=http) or one burst in S1's flow.
    for (let i = 0; i < EDITS; ) {
      let to = Math.min(EDITS, (Math.floor(i / SAMPLE_EVERY) + 1) * SAMPLE_EVERY);
      if (SNAPSHOTS && i < WARMUP) to = Math.min(to, WARMUP);
      if (DRIVER === 'flow') for (const r of await editor.burst(to - i, i, GAP_MS)) ms.push(r.ms);
      else for (let k = i; k < to; k++) ms.push((await editor.edit(k)).ms);
      i = to;
      if (SNAPSHOTS && i === WARMUP) samples.push(await sample(pid, probeDir, 'warm-up', i, { snapshot: true }));
      if (i % SAMPLE_EVERY === 0 && i < EDITS) samples.push(await sample(pid, probeDir, 'edits', i));
    }
    const cpuPerEdit = Math.round((((cpuMs(pid) ?? 0) - cpu0) / EDITS) * 100) / 100;
    const after = await sample(pid, probeDir, 'after', EDITS);
    samples.push(after);
    // Idle again for IDLE_S: what the VM keeps after a burst of edits, with no forced GC.
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const afterIdle = await sample(pid, probeDir, 'after-idle', EDITS);
    samples.push(afterIdle);
    const settled = await sample(pid, probeDir, 'settled', EDITS, { settle: true, snapshot: SNAPSHOTS });
    samples.push(settled);
    keepDir = SNAPSHOTS || ALLOC_PROFILE;
    const idle = samples[0];
    const during = samples.filter((s) => s.at === 'edits' || s.at === 'after');
    const growth = Math.round((after.rssMb - idle.rssMb) * 10) / 10;
    const settledGrowth = Math.round((settled.rssMb - idle.rssMb) * 10) / 10;
    const e = summarize(ms);
    console.log(
      JSON.stringify({
        bench: 'sem-memory',
        vm: 'S1, a real Node-RED 4.1 process with the SEM flow (sender)',
        receivers: RECEIVERS,
        edits: EDITS,
        driver: DRIVER_TEXT,
        node_options: process.env.SEMI_SPACE_MB ? `--max-semi-space-size=${process.env.SEMI_SPACE_MB}` : 'default',
        idle_rss_mb: idle.rssMb,
        rss_after_mb: after.rssMb,
        rss_growth_mb: growth,
        rss_after_idle_mb: afterIdle.rssMb,
        settled_rss_mb: settled.rssMb,
        settled_growth_mb: settledGrowth,
        aim_mb: AIM_MB,
        aim_met: growth <= AIM_MB,
        idle_scavenges_per_min: Math.round(((idleLater.scavenges - idleSettled.scavenges) / IDLE_S) * 60 * 10) / 10,
        heap_used_mb: { idle_settled: idleSettled.heapUsedMb, settled: settled.heapUsedMb, max_during: Math.max(...during.map((s) => s.heapUsedMb)) },
        new_space_mb: { idle: idle.newSpaceMb, after: after.newSpaceMb },
        external_mb: { idle: idle.externalMb, settled: settled.externalMb },
        array_buffers_mb: { idle: idle.arrayBuffersMb, settled: settled.arrayBuffersMb },
        rss_during_mb: during.map((s) => s.rssMb),
        edit_ms: { p50: e.p50, p99: e.p99 },
        cpu_ms_per_edit: cpuPerEdit,
        load_average: { start: idle.load, end: settled.load },
        issue_figures: '112 -> 181 MB over 2000 edits, 139 MB after 6000 (issue 16)',
      }),
    );
  } finally {
    await sem.stop(); // the allocation profiles are written as the VMs exit
    if (keepDir) console.error(`heap snapshots / allocation profiles kept in ${probeDir}`);
    else fs.rmSync(probeDir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
