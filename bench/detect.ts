// npm run bench:detect — failure detection on six Node-RED processes on loopback, each running
// p2p-store + p2p-heartbeat with the default settings (interval 1 s, timeout 0.5 s, the note's
// re-examination 2 s network / 3 s service). RUNS (default 20) times each:
//   network: SIGKILL a VM; service: stop its service port only (the manager stays up).
// For each run: the time from the fault to the confirmed failure on its manager (confirmedAt in
// the failure msg), and to the problem record being confirmed in every live peer's file on disk.
// The overhead is the time above the configured re-examination: the figure to drive down.
// The last line is one JSON object.
import * as fs from 'fs';
import { HeartbeatCluster } from '../harness/monitor/heartbeat-cluster';
import { sleep, waitFor } from '../harness/wait';
import { summarize } from './stats';

const RUNS = Number(process.env.RUNS ?? 20);
const REEXAM = { network: 2000, service: 3000 } as const;
type Kind = keyof typeof REEXAM;

interface Run {
  kind: Kind;
  target: string;
  detectMs: number;
  everywhereMs: number;
  /** Fault to the first failed check, and the checks that did not count (monitor starved). */
  firstFailMs: number;
  inconclusive: number;
}

/** Targets in turn, S2..S5: each has its P1 and P2 alive. */
const targetOf = (i: number) => `S${2 + (i % 4)}`;
const p1Of = (t: string) => `S${Number(t.slice(1)) - 1}`;

async function waitEverywhere(hc: HeartbeatCluster, target: string, t0: number): Promise<number> {
  await waitFor(
    () =>
      hc.running().every((v) => {
        const r = hc.file(v, 'problem').find((x) => x[0] === target);
        return r !== undefined && r[3] === 'confirmed';
      }),
    { what: `the ${target} problem record confirmed on every live peer`, timeoutMs: 15_000, intervalMs: 5 },
  );
  return Date.now() - t0;
}

async function heal(hc: HeartbeatCluster, target: string): Promise<void> {
  if (hc.vm(target).state !== 'running') await hc.cluster.start(target);
  await hc.startService(target);
  await hc.waitReady(target);
  await hc.waitConverged(30_000);
  await hc.clearProblems();
  await waitFor(
    async () => {
      const w = (await hc.watching(p1Of(target))).watching as { target: string; state: string }[];
      return w.find((x) => x.target === target)?.state === 'ok';
    },
    { what: `${p1Of(target)} watching ${target} afresh`, timeoutMs: 20_000, intervalMs: 200 },
  );
  // Let the sentinels reconnect and a few regular checks pass.
  await sleep(1500);
  hc.events.length = 0;
}

async function one(hc: HeartbeatCluster, kind: Kind, target: string): Promise<Run> {
  hc.events.length = 0;
  const t0 = Date.now();
  if (kind === 'network') await hc.cluster.kill(target);
  else await hc.stopService(target);
  const f = await waitFor(() => hc.failures().find((e) => e.payload.target === target), {
    what: `the failure of ${target}`,
    timeoutMs: 20_000,
    intervalMs: 5,
  });
  const detectMs = Date.parse(f.payload.timings.confirmedAt) - t0;
  const everywhereMs = await waitEverywhere(hc, target, t0);
  // Let a P2 that would (wrongly) act do so before the count.
  await sleep(500);
  const msgs = hc.failures().filter((e) => e.payload.target === target).length;
  if (msgs !== 1) throw new Error(`${kind} fault of ${target}: ${msgs} failure msgs in the cluster`);
  if (f.payload.kind !== kind) throw new Error(`${kind} fault of ${target} reported as ${f.payload.kind}`);
  await heal(hc, target);
  const firstFailMs = Date.parse(f.payload.timings.detectedAt) - t0;
  return { kind, target, detectMs, everywhereMs, firstFailMs, inconclusive: f.payload.timings.inconclusive };
}

(async () => {
  const hc = await HeartbeatCluster.start({ count: 6 });
  const runs: Run[] = [];
  try {
    await sleep(3000);
    await hc.clearProblems();
    for (let i = 0; i < RUNS; i++) {
      for (const kind of ['network', 'service'] as Kind[]) {
        const r = await one(hc, kind, targetOf(i));
        runs.push(r);
        console.log(
          `${kind} ${r.target}: first failed check ${r.firstFailMs} ms, confirmed ${r.detectMs} ms after the fault, ` +
            `on every peer after ${r.everywhereMs} ms (${r.inconclusive} checks discounted: monitor starved)`,
        );
      }
    }
  } finally {
    await hc.stop();
  }
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const out: Record<string, unknown> = { bench: 'detect', runs: RUNS, loadavg: load };
  for (const kind of ['network', 'service'] as Kind[]) {
    const mine = runs.filter((r) => r.kind === kind);
    const d = summarize(mine.map((r) => r.detectMs));
    const e = summarize(mine.map((r) => r.everywhereMs));
    const o = summarize(mine.map((r) => r.detectMs - REEXAM[kind]));
    console.log(
      `${kind}: re-examination ${REEXAM[kind]} ms (the note's); fault to confirmed p50 ${d.p50} / p99 ${d.p99} ms ` +
        `(overhead p50 ${o.p50} / p99 ${o.p99} ms); record on every live peer p50 ${e.p50} / p99 ${e.p99} ms`,
    );
    out[`${kind}_p50_ms`] = d.p50;
    out[`${kind}_p99_ms`] = d.p99;
    out[`${kind}_overhead_p50_ms`] = o.p50;
    out[`${kind}_overhead_p99_ms`] = o.p99;
    out[`${kind}_everywhere_p50_ms`] = e.p50;
    out[`${kind}_everywhere_p99_ms`] = e.p99;
    out[`${kind}_reexamination_ms`] = REEXAM[kind];
    out[`${kind}_discounted_checks`] = mine.reduce((a, r) => a + r.inconclusive, 0);
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
