// The first request to a busy peer, over a fresh connection or on a stream opened ahead
// (SemClient.warm; docs/recovery.md, "Two at once: the late acknowledgement"). A receiver process
// (this file, forked) serves the SEM diff route while its event loop is kept busy: a timer turn of
// BUSY_MS synchronous work after every 1 ms (a resumed OD becoming a member: its key published,
// its catch-ups, its monitor started). The sender times one request per fresh client, A/B
// interleaved: `cold` posts at once (an HTTP POST on a new connection while the stream's upgrade
// opens another beside it: what the first diff to a backup was), `warm` opens the stream first and
// posts once it is open. Knobs: BUSY_MS (default 15; several values: BUSY_MS=0,15,30), ROUNDS
// (per arm, default 30). Traffic on 127.0.0.1 only. Prints one JSON object as its last line.
import { fork } from 'child_process';
import { performance } from 'perf_hooks';
import { SemClient, SemServer } from '../lib/sem/sem-http';
import { DIFF_PATH } from '../lib/sem/fanout';
import { pickFreePort } from '../harness/net';
import { loadAverage, summarize } from './stats';

const SECRET = 'sem-warm-stream-bench-secret-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function receiver(port: number, busyMs: number): Promise<void> {
  const server = new SemServer({
    host: '127.0.0.1',
    port,
    secret: SECRET,
    // Answered after one more turn, as a journal write answers once it is durable.
    routes: { [DIFF_PATH]: { limit: 4096, handler: () => ({ status: 200, body: { ok: true }, ready: new Promise((r) => setImmediate(r)) }) } },
    ping: () => ({}),
    onRefused: () => undefined,
    limits: {},
    version: 2,
    encrypt: true,
    streamRoutes: [DIFF_PATH],
  });
  await server.listen();
  const spin = () => {
    const until = performance.now() + busyMs;
    while (performance.now() < until);
    setTimeout(spin, 1);
  };
  if (busyMs > 0) setTimeout(spin, 1);
  process.send!('ready');
  process.on('disconnect', () => process.exit(0));
}

async function sender(busyMs: number, rounds: number): Promise<Record<string, unknown>> {
  const port = await pickFreePort('127.0.0.1');
  const child = fork(__filename, ['receiver', String(port), String(busyMs)], { stdio: 'inherit' });
  try {
    await new Promise((r) => child.once('message', r));
    const target = { address: '127.0.0.1', port };
    const ms: Record<'cold' | 'warm', number[]> = { cold: [], warm: [] };
    for (let i = 0; i < rounds; i++) {
      for (const arm of i % 2 ? (['warm', 'cold'] as const) : (['cold', 'warm'] as const)) {
        const c = new SemClient(SECRET, 5000, undefined, undefined, undefined, true, undefined, { version: 2 }, [DIFF_PATH]);
        try {
          if (arm === 'warm') {
            c.warm(target);
            const until = Date.now() + 5000;
            while (!c.streamOpen(target) && Date.now() < until) await sleep(2);
          }
          await sleep(20);
          const t = performance.now();
          await c.post(target, DIFF_PATH, JSON.stringify({ arm, i }));
          ms[arm].push(performance.now() - t);
        } finally {
          c.close();
        }
        await sleep(10);
      }
    }
    const s = (v: number[]) => {
      const x = summarize(v);
      return { p50: x.p50, p99: x.p99, max: x.max };
    };
    return { busy_ms: busyMs, rounds, cold_ms: s(ms.cold), warm_ms: s(ms.warm) };
  } finally {
    child.disconnect();
  }
}

if (process.argv[2] === 'receiver') {
  void receiver(Number(process.argv[3]), Number(process.argv[4]));
} else {
  (async () => {
    const rounds = Number(process.env.ROUNDS ?? 30);
    const out: Record<string, unknown>[] = [];
    const loadStart = loadAverage();
    for (const b of String(process.env.BUSY_MS ?? '15').split(',').map(Number)) {
      const r = await sender(b, rounds);
      console.log(`receiver busy ${b} ms a turn: first request cold p50/p99/max ${JSON.stringify(r.cold_ms)}, on a stream opened ahead ${JSON.stringify(r.warm_ms)} (load ${loadAverage()})`);
      out.push(r);
    }
    console.log(JSON.stringify({ bench: 'sem-warm-stream', results: out, load_avg_start: loadStart, load_avg_end: loadAverage() }));
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
