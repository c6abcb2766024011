// npm run bench:anchor-etcd — SEM beside etcd in one run on the same machine and disk (issue 16):
// six etcd members (Debian's etcd-server, Raft) on their own loopback addresses; a client puts a
// key through member 1 PUTS times and, for each put, the time until every other member applied it
// is read from a watch on that member (an event is delivered once the member applied the entry).
// Then bench:sem (six Node-RED VMs, S1's edit durably applied on each peer) runs as a child. Then
// six light VMs (bench/scale-vm.ts: the same ReplicatedStore, routes, wire security, journal and
// text files, no Node-RED runtime around it, files on the same disk) do the same edits: etcd is a
// bare daemon too, so that figure says where the protocol itself stands; the ratio is the
// Node-RED one. All figures are each-peer / each-member p50 and p99, with the load average. When
// etcd is not installed the etcd half is skipped and said so.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { allocLoopbackRange, pickPortFreeOnAll } from '../harness/net';
import { httpRequest } from '../harness/http';
import { waitFor } from '../harness/wait';
import { loadAverage, summarize } from './stats';
import { call, startVm, stopVms, until, type Vm } from './scale-cluster';

const PUTS = Number(process.env.PUTS ?? 200);
const b64 = (s: string) => Buffer.from(s).toString('base64');

function etcdBinary(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A watch on `key` at one member, calling `onEvent` with the time of each event. */
function watch(url: string, key: string, onEvent: (at: number) => void): http.ClientRequest {
  const req = http.request(url + '/v3/watch', { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
    let buf = '';
    res.on('data', (c: Buffer) => {
      const at = performance.now();
      buf += c.toString('utf8');
      // The gateway streams one JSON object per message, back to back.
      for (;;) {
        let depth = 0;
        let end = -1;
        for (let i = 0; i < buf.length; i++) {
          if (buf[i] === '{') depth++;
          else if (buf[i] === '}' && --depth === 0) {
            end = i + 1;
            break;
          }
        }
        if (end < 0) break;
        const msg = JSON.parse(buf.slice(0, end)) as { result?: { events?: unknown[] } };
        buf = buf.slice(end);
        for (let i = 0; i < (msg.result?.events?.length ?? 0); i++) onEvent(at);
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  req.end(JSON.stringify({ create_request: { key: b64(key) } }));
  return req;
}

async function etcdRun(bin: string) {
  const range = allocLoopbackRange();
  const ips = range.ips(6);
  const [clientPort, peerPort] = [await pickPortFreeOnAll(ips), await pickPortFreeOnAll(ips)];
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-anchor-'));
  const cluster = ips.map((ip, i) => `m${i + 1}=http://${ip}:${peerPort}`).join(',');
  const procs: ChildProcess[] = [];
  const watches: http.ClientRequest[] = [];
  try {
    ips.forEach((ip, i) => {
      const log = fs.openSync(path.join(base, `m${i + 1}.log`), 'a');
      procs.push(
        spawn(
          bin,
          [
            '--name', `m${i + 1}`,
            '--data-dir', path.join(base, `m${i + 1}`),
            '--listen-client-urls', `http://${ip}:${clientPort}`,
            '--advertise-client-urls', `http://${ip}:${clientPort}`,
            '--listen-peer-urls', `http://${ip}:${peerPort}`,
            '--initial-advertise-peer-urls', `http://${ip}:${peerPort}`,
            '--initial-cluster', cluster,
            '--initial-cluster-state', 'new',
            '--initial-cluster-token', `anchor-${process.pid}`,
          ],
          { stdio: ['ignore', log, log] },
        ),
      );
      fs.closeSync(log);
    });
    const urls = ips.map((ip) => `http://${ip}:${clientPort}`);
    for (const u of urls) {
      await waitFor(async () => (await httpRequest(u + '/health', { timeoutMs: 2000 }).catch(() => ({ body: '' }))).body.includes('"true"'), {
        what: `etcd ${u} healthy`,
        timeoutMs: 60_000,
      });
    }
    const key = 'anchor-bench';
    let t0 = 0;
    let current: number[] = [];
    const perMember: number[][] = urls.map(() => []);
    let seen = 0;
    let done: () => void = () => undefined;
    urls.forEach((u, m) => {
      watches.push(
        watch(u, key, (at) => {
          if (!t0) return;
          current[m] = at - t0;
          if (++seen === urls.length) done();
        }),
      );
    });
    await new Promise((r) => setTimeout(r, 500)); // watches created
    const load0 = loadAverage();
    for (let i = 0; i < PUTS + 10; i++) {
      current = [];
      seen = 0;
      const all = new Promise<void>((resolve) => (done = resolve));
      t0 = performance.now();
      const r = await httpRequest(urls[0] + '/v3/kv/put', { method: 'POST', body: { key: b64(key), value: b64(String(i)) }, timeoutMs: 10_000 });
      if (r.status !== 200) throw new Error(`put ${i}: HTTP ${r.status} ${r.body}`);
      await Promise.race([all, new Promise((_, rej) => setTimeout(() => rej(new Error(`put ${i}: not applied on every member within 10 s`)), 10_000))]);
      if (i >= 10) current.forEach((ms, m) => perMember[m].push(ms));
    }
    const others = perMember.slice(1).flat();
    const s = summarize(others);
    return { members: 6, puts: PUTS, p50_ms: s.p50, p99_ms: s.p99, per_member: perMember.map((l) => summarize(l)), load_average: { start: load0, end: loadAverage() } };
  } finally {
    for (const w of watches) w.destroy();
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
            setTimeout(() => p.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    fs.rmSync(base, { recursive: true, force: true });
    range.release();
  }
}

function semRun(): Promise<{ p50_ms: number; p99_ms: number; load_average: unknown; without_wire_security?: { p50_ms: number; p99_ms: number } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'sem-sync.js')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, EDITS: String(PUTS) } });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`bench:sem exited ${code}`);
        resolve(JSON.parse(last));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Six light VMs on loopback addresses of their own, files on the same disk as etcd's; S1 edits. */
async function semLightRun() {
  const range = allocLoopbackRange();
  const ips = range.ips(6);
  const port = await pickPortFreeOnAll(ips);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'sem-light-anchor-'));
  const vms: Vm[] = ips.map((address, i) =>
    startVm({ hostname: `S${i + 1}`, address, port, folder: path.join(base, `S${i + 1}`), seeds: ips.slice(0, 2).filter((s) => s !== address), syncIntervalMs: 1000, requestTimeoutMs: 2000 }),
  );
  try {
    await Promise.all(vms.map((v) => v.started));
    await until('six light VMs listing six members', 60_000, async () => (await Promise.all(vms.map((v) => call(v, { cmd: 'members' })))).every((m) => m.members === 6));
    const perPeer: Record<string, number[]> = {};
    const load0 = loadAverage();
    let prev: string[] | null = null;
    for (let i = 0; i < PUTS + 10; i++) {
      const record = ['RS1', (i / 1000).toFixed(3), String(i % 50), 'up'];
      const r = await call(vms[0], { cmd: 'edit', edit: prev ? { file: 'realserver', op: 'Mod', before: prev, record } : { file: 'realserver', op: 'Add', record } });
      prev = record;
      if (Number(r.failed) > 0) throw new Error(`light edit ${i}: ${String(r.why)}`);
      if (i < 10) continue;
      for (const [peer, ms] of r.peers as [string, number][]) (perPeer[peer] ??= []).push(ms);
    }
    // As bench:sem's figure: S3..S6 (the note's Table 1 peers).
    const s = summarize(Object.keys(perPeer).filter((p) => p !== 'S2').flatMap((p) => perPeer[p]));
    return { vms: 6, edits: PUTS, wire_security: 'on', p50_ms: s.p50, p99_ms: s.p99, load_average: { start: load0, end: loadAverage() } };
  } finally {
    await stopVms(vms);
    fs.rmSync(base, { recursive: true, force: true });
    range.release();
  }
}

(async () => {
  const bin = etcdBinary();
  const etcd = bin ? await etcdRun(bin) : undefined;
  const sem = await semRun();
  const light = await semLightRun();
  console.log(
    JSON.stringify({
      bench: 'anchor-etcd',
      what: 'write on one member/VM until applied on each other one, six each, same machine and disk, one run',
      etcd: etcd ?? { skipped: 'etcd is not installed (Debian: apt-get install etcd-server)' },
      sem: { wire_security: 'on', p50_ms: sem.p50_ms, p99_ms: sem.p99_ms, load_average: sem.load_average },
      // bench:sem runs a second cluster without signatures and encryption (etcd here runs without TLS).
      sem_without_wire_security: sem.without_wire_security ? { p50_ms: sem.without_wire_security.p50_ms, p99_ms: sem.without_wire_security.p99_ms } : null,
      sem_p99_over_etcd_p99: etcd ? Math.round((sem.p99_ms / etcd.p99_ms) * 100) / 100 : null,
      aim_at_most: 0.8,
      sem_light: { what: 'six light VMs: the same store and wire, no Node-RED runtime (bench/scale-vm.ts)', ...light },
      sem_light_p99_over_etcd_p99: etcd ? Math.round((light.p99_ms / etcd.p99_ms) * 100) / 100 : null,
    }),
  );
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
