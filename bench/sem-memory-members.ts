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
// MEMBERS=25,50,100 measures each size in turn (one cluster at a time) and prints the slope per
// member. HEAP_SNAPSHOTS=1 keeps a heap snapshot of the cluster VM per size (after full GCs).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startCluster } from '../harness/cluster/launcher';
import { semFlow } from '../harness/flows/sem-flow';
import type { ProbeAnswer } from './sem-memory-probe';
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
  rssMb: number;
  settledRssMb: number;
  heapUsedMb: number;
  externalMb: number;
}

let probeN = 0;
/** Memory of a process with the probe preloaded: RSS now, then heap figures and RSS after full GCs. */
async function figures(pid: number, dir: string, snapshot: boolean, idle: number[]): Promise<Figures> {
  const rss = rssMb(pid)!;
  const n = ++probeN;
  fs.writeFileSync(path.join(dir, `${pid}.req`), JSON.stringify({ n, settle: true, snapshot }));
  process.kill(pid, 'SIGURG');
  const out = path.join(dir, `${pid}-${n}.json`);
  await until('memory figures', 120_000, async () => fs.existsSync(out), 200);
  await sleep(3000);
  const a = JSON.parse(fs.readFileSync(out, 'utf8')) as ProbeAnswer;
  return { idleRssMb: median(idle), rssMb: rss, settledRssMb: rssMb(pid)!, heapUsedMb: mb(a.memory.heapUsed), externalMb: mb(a.memory.external) };
}

async function runSize(n: number, base: string, probeDir: string) {
  const dir = fs.mkdtempSync(`${base}/m${n}-`);
  const light: Vm[] = specs(n - 1, dir, SYNC_MS).map(startVm);
  const seeds = light.slice(0, 2).map((v) => v.address);
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${path.join(__dirname, 'sem-memory-probe.js')}`.trim();
  const env = { NODE_OPTIONS: nodeOptions, MEMORY_PROBE_DIR: probeDir };
  const clusterVm = await startCluster({
    count: 1,
    names: [`S${n}`],
    ips: [NR_IPS.cluster],
    env,
    flows: (vm) => semFlow(vm, 0, { semPort: PORT, secret: 'scale-bench-secret', seeds, syncIntervalMs: SYNC_MS }),
  });
  const bare = await startCluster({ count: 1, names: ['BARE'], ips: [NR_IPS.bare], env, installPackage: false, flows: [] });
  const pkg = await startCluster({ count: 1, names: ['PKG'], ips: [NR_IPS.package], env, flows: [] });
  try {
    await Promise.all(light.map((v) => v.started));
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
    await Promise.all([clusterVm.stopAll(), bare.stopAll(), pkg.stopAll(), stopVms(light)]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function inNamespace(): Promise<void> {
  const base = runDir();
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sem-memory-members-'));
  try {
    const runs = [];
    for (const n of SIZES) runs.push(await runSize(n, base, probeDir));
    // Per member: the least-squares slope of the cluster VM's settled RSS over the group size.
    let slope: number | undefined;
    if (runs.length > 1) {
      const xs = runs.map((r) => r.members);
      const ys = runs.map((r) => r.cluster_vm.idleRssMb);
      const mx = xs.reduce((a, x) => a + x, 0) / xs.length;
      const my = ys.reduce((a, y) => a + y, 0) / ys.length;
      slope = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    }
    const last = runs[runs.length - 1];
    console.log(
      JSON.stringify({
        bench: 'sem-memory-members',
        sizes: runs.map((r) => ({ members: r.members, cluster_vm_mb: r.cluster_vm.idleRssMb, cluster_vm_settled_mb: r.cluster_vm.settledRssMb, bare_mb: r.bare_node_red.idleRssMb, bare_settled_mb: r.bare_node_red.settledRssMb, over_bare_mb: r.over_bare_mb, over_bare_settled_mb: r.over_bare_settled_mb, load_average: r.load_average })),
        per_member_kb: slope === undefined ? undefined : Math.round(slope * 1024),
        extrapolated_100_over_bare_mb: slope === undefined || last.members === 100 ? undefined : Math.round((last.over_bare_mb + slope * (100 - last.members)) * 10) / 10,
        aim_mb: AIM_MB,
        aim_met: last.members === 100 ? last.over_bare_mb <= AIM_MB : undefined,
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
