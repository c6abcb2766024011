// npm run bench:memory-members — issue 16's second memory aim: the idle RSS of a Node-RED VM
// running the cluster flow, in a group of MEMBERS members (default 100), within 15 MB of the same
// Node-RED with no flow. One real Node-RED 4.1 process runs the SEM flow (harness/flows/sem-flow);
// the other MEMBERS-1 members are bench:scale's light VMs (bench/scale-vm.ts: the same
// ReplicatedStore, HTTP routes and files, no Node-RED around them). Beside it, two more Node-RED
// processes, idle for the same time: "bare" (this package not installed, no flow) and "package"
// (installed, no flow). All run inside a network namespace made for the run (bench/scale-cluster
// inNetns; needs root). After the group formed and IDLE_S seconds of idle anti-entropy, each
// Node-RED process's RSS is sampled every 2 s during the idle period (the median is the figure
// compared with the aim), then each is asked for its heap figures (bench/sem-memory-probe.ts) and
// its RSS after full GCs ('settled': an idle bare Node-RED gives its young generation back then,
// an active one does not, so the settled difference overstates the flow's cost).
// IDLE_S shorter than ~30 s compares a VM that just joined (V8 not yet shrunk after the join's
// peak: newSpaceMb shows it) with idle Node-REDs, and overstates the flow's cost.
// MEMBERS=25,50,100 measures each size in turn (one cluster at a time) and prints the slope per
// member. HEAP_SNAPSHOTS=1 keeps a heap snapshot of the cluster VM per size (after full GCs).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cluster, ClusterOptions, startCluster } from '../harness/cluster/launcher';
import { semFlow } from '../harness/flows/sem-flow';
import { askProbe, snapshotPath } from './sem-memory-ask';
import { PORT, Vm, call, inNetns, runDir, sleep, specs, startVm, stopVms, until } from './scale-cluster';
import { loadAverage, rssMb } from './stats';

const SIZES = (process.env.MEMBERS ?? '100').split(',').map(Number);
const IDLE_S = Number(process.env.IDLE_S ?? 30);
const SYNC_MS = Number(process.env.SYNC_MS ?? 1000);
const SNAPSHOTS = !!process.env.HEAP_SNAPSHOTS;
const AIM_MB = 15;
/** The Node-RED processes' addresses: beside the light VMs' two halves (127.20.1.x, 127.20.2.x). */
const NR_IPS = { cluster: '127.20.3.1', bare: '127.20.3.2', package: '127.20.3.3' };

const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Figures {
  /** Median RSS over the idle period (sampled every 2 s, no forced GC): what `ps` shows. */
  idleRssMb: number;
  /** V8's young generation (both semi-spaces) as sized at the end of the idle period. */
  newSpaceMb: number;
  /** RSS and heap used after full GCs: what is referenced, without the garbage of the moment. */
  settledRssMb: number;
  heapUsedMb: number;
  /** V8's heap as committed after the GCs: what of the settled RSS is V8's sizing, not live objects. */
  heapTotalMb: number;
  externalMb: number;
  snapshot?: string;
}

/** Memory of a process with the probe preloaded (the snapshot, when asked, last: it inflates RSS). */
async function figures(pid: number, dir: string, snapshot: boolean, idle: number[]): Promise<Figures> {
  const raw = await askProbe(pid, dir);
  const a = await askProbe(pid, dir, { settle: true });
  await sleep(3000);
  const settledRssMb = rssMb(pid)!;
  const snap = snapshot ? snapshotPath(pid, dir, await askProbe(pid, dir, { snapshot: true })) : undefined;
  return {
    idleRssMb: median(idle),
    newSpaceMb: raw.spaces.find((s) => s.name === 'new_space')?.sizeMb ?? NaN,
    settledRssMb,
    heapUsedMb: mb(a.memory.heapUsed),
    heapTotalMb: mb(a.memory.heapTotal),
    externalMb: mb(a.memory.external),
    ...(snap ? { snapshot: snap } : {}),
  };
}

async function runSize(n: number, base: string, probeDir: string) {
  const dir = fs.mkdtempSync(`${base}/m${n}-`);
  const light: Vm[] = specs(n - 1, dir, SYNC_MS).map(startVm);
  const seeds = light.slice(0, 2).map((v) => v.address);
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${path.join(__dirname, 'sem-memory-probe.js')}`.trim();
  const env = { NODE_OPTIONS: nodeOptions, MEMORY_PROBE_DIR: probeDir };
  // The Node-RED processes start once the light VMs have (booting dozens at once starves them).
  const nodeRed: Cluster[] = [];
  try {
    await Promise.all(light.map((v) => v.started));
    const start = (o: ClusterOptions) => startCluster({ count: 1, env, startTimeoutMs: 180_000, ...o }).then((c) => (nodeRed.push(c), c));
    const clusterVm = await start({
      names: [`S${n}`],
      ips: [NR_IPS.cluster],
      flows: (vm) => semFlow(vm, 0, { semPort: PORT, secret: 'scale-bench-secret', seeds, syncIntervalMs: SYNC_MS }),
    });
    const bare = await start({ names: ['BARE'], ips: [NR_IPS.bare], installPackage: false, flows: [] });
    const pkg = await start({ names: ['PKG'], ips: [NR_IPS.package], flows: [] });
    const t0 = Date.now();
    const groupOf = () => (fs.readFileSync(path.join(clusterVm.vms[0].userDir, 'p2p-ha', 'group'), 'utf8').match(/^S\d+/gm) ?? []).length;
    await until(`the Node-RED VM to list all ${n} members`, 600_000, async () => groupOf() === n, 1000);
    await until(`every light VM to list all ${n} members`, 600_000, async () => (await Promise.all(light.map((v) => call(v, { cmd: 'members' })))).every((m) => Number(m.members) === n), 1000);
    const formMs = Date.now() - t0;
    const idle: number[][] = [[], [], []];
    const pids = [clusterVm, bare, pkg].map((c) => c.vms[0].pid!);
    for (let t = 0; t < IDLE_S; t += 2) {
      await sleep(2000);
      pids.forEach((pid, i) => idle[i].push(rssMb(pid)!));
    }
    const groupBytes = fs.statSync(path.join(clusterVm.vms[0].userDir, 'p2p-ha', 'group')).size;
    const c = await figures(pids[0], probeDir, SNAPSHOTS, idle[0]);
    const b = await figures(pids[1], probeDir, false, idle[1]);
    const p = await figures(pids[2], probeDir, false, idle[2]);
    const lightRss = median(light.map((v) => rssMb(v.proc.pid) ?? NaN));
    const r = {
      members: n,
      form_ms: formMs,
      group_file_bytes: groupBytes,
      cluster_vm: c,
      bare_node_red: b,
      package_no_flow: p,
      over_bare_mb: Math.round((c.idleRssMb - b.idleRssMb) * 10) / 10,
      over_package_mb: Math.round((c.idleRssMb - p.idleRssMb) * 10) / 10,
      over_bare_settled_mb: Math.round((c.settledRssMb - b.settledRssMb) * 10) / 10,
      over_package_settled_mb: Math.round((c.settledRssMb - p.settledRssMb) * 10) / 10,
      light_vm_rss_median_mb: lightRss,
      load_average: loadAverage(),
    };
    console.log(JSON.stringify(r));
    return r;
  } finally {
    await Promise.all([...nodeRed.map((c) => c.stopAll()), stopVms(light)]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function inNamespace(): Promise<void> {
  const base = runDir();
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sem-memory-members-'));
  try {
    const runs: Awaited<ReturnType<typeof runSize>>[] = [];
    for (const n of SIZES) runs.push(await runSize(n, base, probeDir));
    // Per member: least-squares slopes over the group size of the cluster VM's settled RSS and heap
    // used (the raw idle RSS moves by +-15 MB with V8's young-generation sizing, see docs/memory.md).
    const slopeOf = (ys: number[]) => {
      if (runs.length < 2) return undefined;
      const xs = runs.map((r) => r.members);
      const mx = xs.reduce((a, x) => a + x, 0) / xs.length;
      const my = ys.reduce((a, y) => a + y, 0) / ys.length;
      return xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    };
    const slope = slopeOf(runs.map((r) => r.cluster_vm.settledRssMb));
    const heapSlope = slopeOf(runs.map((r) => r.cluster_vm.heapUsedMb));
    const last = runs[runs.length - 1];
    console.log(
      JSON.stringify({
        bench: 'sem-memory-members',
        sizes: runs.map((r) => ({
          members: r.members,
          cluster_vm_idle_mb: r.cluster_vm.idleRssMb,
          bare_idle_mb: r.bare_node_red.idleRssMb,
          over_bare_idle_mb: r.over_bare_mb,
          cluster_vm_settled_mb: r.cluster_vm.settledRssMb,
          bare_settled_mb: r.bare_node_red.settledRssMb,
          over_bare_settled_mb: r.over_bare_settled_mb,
          cluster_vm_heap_used_mb: r.cluster_vm.heapUsedMb,
          load_average: r.load_average,
        })),
        per_member_settled_rss_kb: slope === undefined ? undefined : Math.round(slope * 1024),
        per_member_heap_used_kb: heapSlope === undefined ? undefined : Math.round(heapSlope * 1024),
        extrapolated_100_over_bare_settled_mb: slope === undefined || last.members === 100 ? undefined : Math.round((last.over_bare_settled_mb + slope * (100 - last.members)) * 10) / 10,
        aim_mb: AIM_MB,
        // Judged on the settled figures (both processes after full GCs): the idle figures differ by V8's sizing of the moment.
        aim_met: last.members === 100 ? last.over_bare_settled_mb <= AIM_MB : undefined,
        other_members: 'light VMs (bench/scale-vm.ts)',
      }),
    );
  } finally {
    if (SNAPSHOTS) console.error(`heap snapshots kept in ${probeDir}`);
    else fs.rmSync(probeDir, { recursive: true, force: true });
    fs.rmSync(base, { recursive: true, force: true });
  }
}

inNetns('sem-memory-members', inNamespace);
