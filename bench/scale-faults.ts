// npm run bench:scale-faults — the SEM fault cases at 25 VMs (issue 16), on the light VMs of
// bench:scale (bench/scale-cluster.ts) in a network namespace of its own:
//   partition   the two halves cut off for 10 s, each side editing; healed
//   kill -9     three VMs (both halves) SIGKILLed during a stream of edits, started again later
//   restart all every VM SIGKILLed at once right after a burst of edits, all started again
// After each: every VM's digest equal, and every acknowledged edit (an edit whose call returned:
// durable at its sender) present on every VM. One JSON line per case, then one object.
// FAULT_VMS=25 SYNC_MS=500 tune it; needs root (network namespace, iptables).
import * as fs from 'fs';
import { loadAverage } from './stats';
import { Vm, allEqual, call, inNetns, killVm, partition, runDir, sleep, specs, startVm, stopVms, until } from './scale-cluster';

const N = Number(process.env.FAULT_VMS ?? 25);
const SYNC_MS = Number(process.env.SYNC_MS ?? 500);

const od = (tag: string, i: number, rs: string) => ({ file: 'available-od' as const, op: 'Add' as const, record: [`OD${tag}${i}`, `127.0.3.${(i % 250) + 1}`, rs] });

/** Keys of acknowledged edits missing on any VM (all VMs asked). */
async function lost(vms: Vm[], keys: string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const v of vms) for (const k of ((await call(v, { cmd: 'missing', file: 'available-od', keys })).missing as string[]) ?? []) out.add(`${v.name}:${k}`);
  return Array.from(out);
}

async function converge(vms: Vm[], keys: string[]) {
  const ms = await until('identical files everywhere', 120_000, () => allEqual(vms), 100);
  const missing = await lost(vms, keys);
  return { converge_ms: ms, acknowledged: keys.length, lost: missing, ok: missing.length === 0 };
}

inNetns('scale-faults', async () => {
  const dir = runDir();
  const sp = specs(N, dir, SYNC_MS);
  const vms: Vm[] = sp.map(startVm);
  const results: Record<string, unknown> = {};
  try {
    await Promise.all(vms.map((v) => v.started));
    await until('every VM to list every member', 300_000, async () => (await Promise.all(vms.map((v) => call(v, { cmd: 'members' })))).every((m) => m.members === N), 250);
    await until('identical files after forming', 120_000, () => allEqual(vms), 250);
    const acked: string[] = [];
    const edit = async (vm: Vm, e: ReturnType<typeof od>) => {
      await call(vm, { cmd: 'edit', edit: e });
      acked.push(e.record[0]);
    };

    // Partition: 10 s, both sides edit.
    partition(true);
    const p0 = Date.now();
    for (let i = 0; i < 5; i++) {
      await edit(vms[0], od('P', i, 'RS1'));
      await edit(vms[N - 1], od('Q', i, 'RS2'));
    }
    await sleep(Math.max(0, 10_000 - (Date.now() - p0)));
    partition(false);
    results.partition = await converge(vms, acked);
    console.log(JSON.stringify({ case: 'partition', ...(results.partition as object) }));

    // kill -9 of three VMs during a stream of edits, restarted later.
    const victims = [4, 9, N - 3].map((i) => vms[i]);
    for (let i = 0; i < 40; i++) {
      if (i === 10) await Promise.all(victims.map(killVm));
      if (i === 25) {
        for (const v of victims) vms[vms.indexOf(v)] = startVm(v.spec);
        await Promise.all(vms.map((v) => v.started));
      }
      await edit(vms[0], od('K', i, 'RS1'));
    }
    results.kill9 = await converge(vms, acked);
    console.log(JSON.stringify({ case: 'kill -9 of 3 during edits', ...(results.kill9 as object) }));

    // Restart of all: a burst from two VMs, then every VM SIGKILLed at once and started again.
    for (let i = 0; i < 10; i++) await Promise.all([edit(vms[0], od('R', i, 'RS1')), edit(vms[N - 1], od('S', i, 'RS2'))]);
    await Promise.all(vms.map(killVm));
    for (let i = 0; i < N; i++) vms[i] = startVm(sp[i]);
    await Promise.all(vms.map((v) => v.started));
    results.restartAll = await converge(vms, acked);
    console.log(JSON.stringify({ case: 'restart of all (SIGKILL)', ...(results.restartAll as object) }));
  } finally {
    await stopVms(vms);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const ok = Object.values(results).every((r) => (r as { ok: boolean }).ok);
  console.log(JSON.stringify({ bench: 'scale-faults', vms: N, ok, ...results, load_average: loadAverage() }));
  if (!ok) process.exitCode = 1;
});
