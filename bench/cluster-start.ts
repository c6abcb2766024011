// How long the local cluster launcher takes to bring VMs up (start to admin API answering, plus
// one deploy), for one VM and for six VMs at several start parallelisms, so the launcher's default
// (`parallel`) is chosen from a measurement on this machine (2 cores, shared).
// Run: npm run build && node dist/bench/cluster-start.js [runs]. Last line: one JSON object.
import * as os from 'os';
import { FlowNode, startCluster } from '../harness/cluster/launcher';
import { allocLoopbackRange } from '../harness/net';

const FLOW: FlowNode[] = [
  { id: 'tab1', type: 'tab', label: 'bench' },
  { id: 'inj1', type: 'inject', z: 'tab1', repeat: '', once: false, wires: [['dbg1']] },
  { id: 'dbg1', type: 'debug', z: 'tab1', active: true, wires: [] },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeStart(count: number, parallel: number): Promise<number> {
  const range = allocLoopbackRange();
  const t0 = process.hrtime.bigint();
  const cluster = await startCluster({ ips: range.ips(count), parallel, flows: FLOW, startTimeoutMs: 120_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await cluster.stopAll();
  range.release();
  return ms;
}

(async () => {
  const runs = Number(process.argv[2] ?? 3);
  const parallels = [1, 2, 3, 6];
  const one: number[] = [];
  const six = new Map<number, number[]>(parallels.map((p) => [p, []]));
  // Rounds interleave the variants, so a burst of load from another user of the machine spreads
  // over all of them instead of spoiling one.
  for (let i = 0; i < runs; i++) {
    one.push(await timeStart(1, 1));
    for (const p of parallels) six.get(p)!.push(await timeStart(6, p));
  }
  const fmt = (xs: number[]): string => `${xs.map((x) => Math.round(x)).join(', ')} ms (median ${Math.round(median(xs))})`;
  const result: Record<string, number> = { one_vm_ms: Math.round(median(one)) };
  console.log(`1 VM: ${fmt(one)}`);
  for (const p of parallels) {
    result[`six_vms_parallel${p}_ms`] = Math.round(median(six.get(p)!));
    console.log(`6 VMs, ${p} at a time: ${fmt(six.get(p)!)}`);
  }
  console.log(JSON.stringify({ bench: 'cluster-start', runs, cores: os.cpus().length, ...result }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
