// The SEM per-edit path in one process, for profiling (issue 16): a sender and RECEIVERS stores
// (default 2) on loopback in this one Node.js thread, EDITS edits of one record, and the CPU time
// per edit of the whole process (sender + receivers), which is what six VMs on two cores compete
// for. On a loaded machine CPU per edit is comparable between runs where wall-clock latency is
// not. PROFILE=<file> writes a CPU profile of the measured edits only; SECURE=off turns VM
// signatures and encryption off; DIR=/dev/shm puts the stores' files on tmpfs (fdatasync free).
// Prints one JSON object as its last line.
import * as fs from 'fs';
import * as inspector from 'inspector';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../lib/sem/replicated-store';
import type { Edit } from '../lib/records/cluster-api';
import { allocLoopbackRange, pickPortFreeOnAll } from '../harness/net';
import { loadAverage, summarize } from './stats';

const EDITS = Number(process.env.EDITS ?? 1000);
const RECEIVERS = Number(process.env.RECEIVERS ?? 2);
const SECURE = process.env.SECURE !== 'off';

function post(session: inspector.Session, method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
}

(async () => {
  const dir = fs.mkdtempSync(path.join(process.env.DIR ?? os.tmpdir(), 'sem-path-'));
  const range = allocLoopbackRange();
  const ips = range.ips(RECEIVERS + 1);
  const port = await pickPortFreeOnAll(ips);
  const stores = ips.map(
    (ip, i) =>
      new ReplicatedStore({
        identity: { hostname: `S${i + 1}`, address: ip, realServer: 'RS1', services: '-' },
        folder: path.join(dir, `S${i + 1}`),
        port,
        secret: 'sem-path-bench-secret-0123',
        seeds: ips,
        syncIntervalMs: 600_000,
        wireSecurity: SECURE,
      }),
  );
  try {
    await Promise.all(stores.map((s) => s.start()));
    await Promise.all(stores.map((s) => s.syncAll()));
    let prev: string[] | null = null;
    const edit = async (i: number) => {
      const record = ['RS1', (i / 1000).toFixed(3), String(i % 50), 'up'];
      const e: Edit = prev ? { file: 'realserver', op: 'Mod', before: prev, record } : { file: 'realserver', op: 'Add', record };
      const r = await stores[0].edit(e);
      if (r.failed.length || r.acked.length !== RECEIVERS) throw new Error(`edit ${i}: ${JSON.stringify(r.failed)}`);
      prev = record;
      return r;
    };
    for (let i = 0; i < 100; i++) await edit(i); // warm-up
    const session = new inspector.Session();
    if (process.env.PROFILE) {
      session.connect();
      await post(session, 'Profiler.enable');
      await post(session, 'Profiler.setSamplingInterval', { interval: 100 });
      await post(session, 'Profiler.start');
    }
    const load0 = loadAverage();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const acks: number[] = [];
    const whole: number[] = [];
    for (let i = 100; i < 100 + EDITS; i++) {
      const r = await edit(i);
      whole.push(r.ms);
      for (const a of r.acked) acks.push(a.ms);
    }
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (process.env.PROFILE) {
      const { profile } = (await post(session, 'Profiler.stop')) as { profile: unknown };
      fs.writeFileSync(process.env.PROFILE, JSON.stringify(profile));
      session.disconnect();
    }
    const perEdit = (us: number) => Math.round((us / 1000 / EDITS) * 1000) / 1000;
    console.log(
      JSON.stringify({
        bench: 'sem-path',
        receivers: RECEIVERS,
        edits: EDITS,
        wire_security: SECURE,
        disk: process.env.DIR ?? os.tmpdir(),
        cpu_ms_per_edit: { user: perEdit(cpu.user), system: perEdit(cpu.system), total: perEdit(cpu.user + cpu.system) },
        wall_ms_per_edit: Math.round((wall / EDITS) * 1000) / 1000,
        ack_ms: summarize(acks),
        edit_ms: summarize(whole),
        load_average: { start: load0, end: loadAverage() },
      }),
    );
  } finally {
    await Promise.all(stores.map((s) => s.stop().catch(() => undefined)));
    range.release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
