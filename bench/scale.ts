// npm run bench:scale — SEM at 6, 25, 50 and 100 VMs (issue 16). Each VM is a light process
// (bench/scale-vm.ts: this package's ReplicatedStore, its HTTP routes, journal and text files,
// without the Node-RED runtime around it) on its own 127.20.x.y address, all inside a network
// namespace this bench creates (and deletes), so that a partition is real packet loss: iptables
// DROP rules between the two halves of the cluster, inside that namespace only.
// Per size it prints one JSON line: time to form (every VM lists every member), per-VM idle CPU %
// and bytes/s (iptables byte counter of the namespace's loopback over IDLE_S seconds, divided by
// the VM count), edit-to-all p50/p99 (S1's edit until every peer acknowledged it durably), the
// convergence time after a PARTITION_S partition healed (every VM's digest equal), RSS per VM,
// and the CPU of an edit summed over all VMs (their CPU during the edits minus their idle rate;
// and with the background, i.e. without that subtraction): it holds on a loaded machine, where
// the wall-clock figures do not.
// The last line is one JSON object with every size and the issue's targets beside them.
// Files live on tmpfs by default (SCALE_DIR=<folder on a disk> overrides, like BENCH_DIR of
// bench:sem; the JSON says which): 100 VMs sharing one disk would measure the disk's journal
// commits, where real VMs each have their own disk; bench:sem measures the disk path with real Node-RED.
// Needs root (network namespace, iptables); SIZES=6,25 EDITS=100 SYNC_MS=500 PAIR_KEYS=0 tune a run.
import * as fs from 'fs';
import { loadAverage, rssMb, summarize } from './stats';
import { Vm, allEqual, call, inNetns, ipt, partition, runDir, sleep, specs, startVm, stopVms, until } from './scale-cluster';
import { BRANCH, DIRECT_MAX, chunks, ringAfter } from '../lib/sem/fanout';

const SIZES = (process.env.SIZES ?? '6,25,50,100').split(',').map(Number);
const EDITS = Number(process.env.EDITS ?? 100);
const SYNC_MS = Number(process.env.SYNC_MS ?? 500);
const IDLE_S = Number(process.env.IDLE_S ?? 10);
const PARTITION_S = 10;
const FORM_DEADLINE_MS = Number(process.env.FORM_DEADLINE_S ?? 600) * 1000;
/** PAIR_KEYS=0: measure right after forming, before the pair keys are published (signed answers). */
const PAIR_KEYS = process.env.PAIR_KEYS !== '0';

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

/** The relays S1's fan-out picks (./lib/sem/fanout.ts: every peer speaks version 2 and answers),
 * none up to DIRECT_MAX peers. */
function relaysOf(vms: Vm[]): Set<string> {
  const peers = vms.slice(1).map((v) => ({ hostname: v.name, address: v.address }));
  if (peers.length <= DIRECT_MAX) return new Set();
  return new Set(chunks(ringAfter(vms[0].name, peers), BRANCH).filter((c) => c.length > 1).map((c) => c[0].hostname));
}

/**
 * Where an edit's CPU goes, per edit in ms: the sender (S1), a relay and a leaf (mean of each;
 * each VM's CPU during the edits minus its own idle rate over that time), and the background (all
 * VMs' idle rate over the edits' time: rounds, timers), which `cpu_ms_per_edit_all_vms` leaves out.
 */
function cpuSplit(vms: Vm[], before: number[], idlePct: number[], secs: number, edits: number) {
  const relays = relaysOf(vms);
  const gross = vms.map((v, i) => ((cpuSeconds(v.proc.pid) - before[i]) / edits) * 1000);
  const net = gross.map((g, i) => g - ((idlePct[i] / 100) * secs * 1000) / edits);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const mean = (xs: number[]) => (xs.length ? r3(xs.reduce((a, b) => a + b, 0) / xs.length) : null);
  const isRelay = (i: number) => relays.has(vms[i].name);
  const isLeaf = (i: number) => i > 0 && !isRelay(i);
  return {
    sender: r3(net[0]),
    relay_mean: mean(net.filter((_, i) => isRelay(i))),
    relays: relays.size,
    leaf_mean: mean(net.filter((_, i) => isLeaf(i))),
    leaves: vms.length - 1 - relays.size,
    background_all_vms: Math.round(((idlePct.reduce((a, b) => a + b, 0) / 100) * secs * 1000) / edits * 100) / 100,
    // The same without subtracting the idle rate: rounds are mostly postponed while edits flow,
    // so the idle rate overstates the background and the figures above understate the edit.
    with_background: { sender: r3(gross[0]), relay_mean: mean(gross.filter((_, i) => isRelay(i))), leaf_mean: mean(gross.filter((_, i) => isLeaf(i))) },
  };
}

async function runSize(n: number, base: string) {
  const dir = fs.mkdtempSync(`${base}/n${n}-`);
  const t0 = Date.now();
  const vms: Vm[] = specs(n, dir, SYNC_MS).map(startVm);
  try {
    await Promise.all(vms.map((v) => v.started));
    let fewest = 0;
    await until(
      'every VM to list every member',
      FORM_DEADLINE_MS,
      async () => {
        const counts = (await Promise.all(vms.map((v) => call(v, { cmd: 'members' })))).map((m) => Number(m.members));
        fewest = Math.min(...counts);
        return fewest === n;
      },
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: fewest members listed by a VM ${fewest} of ${n}`);
    });
    const formMs = Date.now() - t0;
    await until('identical files after forming', 120_000, () => allEqual(vms), 250);
    // A cluster in service answers by pair keys (HMAC); a newly formed one signs its answers until
    // each VM has heard every member speak wire version 3 and published its X25519 key. The
    // figures below are the cluster in service: measured once every VM lists every key.
    let pairKeysMs: number | null = null;
    if (PAIR_KEYS) {
      const p0 = Date.now();
      await until(
        'every VM to list every member publishing its X25519 key',
        FORM_DEADLINE_MS,
        async () => (await Promise.all(vms.map((v) => call(v, { cmd: 'pairKeys' })))).every((k) => Number(k.published) === n),
        500,
      );
      pairKeysMs = Date.now() - p0;
      await until('identical files after the keys', 120_000, () => allEqual(vms), 250);
    }
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
    const roundsOf = async () =>
      (await Promise.all(vms.map((v) => call(v, { cmd: 'rounds' })))).reduce(
        (a, r) => [a[0] + Number(r.made), a[1] + Number(r.postponed), a[2] + Number(r.chains), a[3] + Number(r.followUps)],
        [0, 0, 0, 0],
      );
    const answersOf = async () =>
      (await Promise.all(vms.map((v) => call(v, { cmd: 'answers' })))).reduce((a, r) => [a[0] + Number(r.pair), a[1] + Number(r.signed), a[2] + Number(r.macOnly)], [0, 0, 0]);
    const a0 = await answersOf();
    const r0 = await roundsOf();
    const e0 = vms.map((v) => cpuSeconds(v.proc.pid));
    const ew0 = Date.now();
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
    const r1 = await roundsOf();
    const a1 = await answersOf();
    // CPU per edit, cluster-wide: every VM's CPU during the edits minus what it spends idle over
    // the same time (holds under load, where wall-clock figures do not).
    const editSecs = (Date.now() - ew0) / 1000;
    const editCpu = vms.reduce((a, v, i) => a + (cpuSeconds(v.proc.pid) - e0[i]), 0);
    const idleCpu = (cpuPct.reduce((a, b) => a + b, 0) / 100) * editSecs;
    const cpuPerEditMs = ((editCpu - idleCpu) / (EDITS + 5)) * 1000;
    const split = cpuSplit(vms, e0, cpuPct, editSecs, EDITS + 5);

    // Partition: the two halves cannot reach each other for PARTITION_S; each side edits.
    partition(true);
    const p0 = Date.now();
    const last = vms[n - 1];
    for (let i = 0; i < 3; i++) {
      const a = ['RS1', `9.${i}`, '9', 'up'];
      await call(s1, { cmd: 'edit', edit: { file: 'realserver', op: 'Mod', before: prev!, record: a } });
      prev = a;
      await call(last, { cmd: 'edit', edit: { file: 'available-od', op: 'Add', record: [`OD${i}`, `127.0.3.${i + 1}`, 'RS2'] } });
    }
    await sleep(Math.max(0, PARTITION_S * 1000 - (Date.now() - p0)));
    partition(false);
    const convergeMs = await until('identical files after the heal', 120_000, () => allEqual(vms), 100);

    const rss = vms.map((v) => rssMb(v.proc.pid) ?? 0);
    const edit = summarize(ms);
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      vms: n,
      form_s: r2(formMs / 1000),
      pair_keys_after_form_s: pairKeysMs === null ? null : r2(pairKeysMs / 1000),
      idle_cpu_pct_per_vm: r2(cpuPct.reduce((a, b) => a + b, 0) / n),
      idle_bytes_per_s_per_vm: Math.round(bytes / secs / n),
      edit_to_all_ms: { p50: edit.p50, p99: edit.p99, n: edit.n, with_failed_peers: failed },
      cpu_ms_per_edit_all_vms: r2(cpuPerEditMs),
      cpu_ms_per_edit_all_vms_with_background: r2((editCpu / (EDITS + 5)) * 1000),
      cpu_ms_per_edit_by_role: split,
      answers_during_edits: { by_pair_key: a1[0] - a0[0], signed: a1[1] - a0[1], mac_only: a1[2] - a0[2] },
      rounds_during_edits: { made: r1[0] - r0[0], postponed: r1[1] - r0[1], follow_up_chains: r1[2] - r0[2], follow_up_exchanges: r1[3] - r0[3] },
      converge_after_heal_ms: convergeMs,
      partition_s: PARTITION_S,
      rss_mb_per_vm: { mean: r2(rss.reduce((a, b) => a + b, 0) / n), max: Math.max(...rss) },
      load_average: { idle: loadIdle, edits: loadEdits, end: loadAverage() },
      sync_interval_ms: SYNC_MS,
    };
  } finally {
    await stopVms(vms);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function inNamespace(): Promise<void> {
  ipt('-A', 'OUTPUT', '-o', 'lo');
  const base = runDir();
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

inNetns('scale', inNamespace);
