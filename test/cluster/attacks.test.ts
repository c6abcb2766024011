// Attacks on the wire against real Node-RED processes running the store (issue 14): what an
// attacker on the LAN can do without the cluster secret, and what a holder of the secret must
// still not be able to do. Each test names the attack it stands for.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import { Cluster, startCluster, Vm } from '../../harness/cluster/launcher';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { sleep, waitFor } from '../../harness/wait';
import { semFlow, EDIT_PATH } from '../../harness/flows/sem-flow';

const SECRET = 'attack-suite-secret-0123456789abcdef';
const MiB = 1024 * 1024;

const filesOf = (vm: Vm) => path.join(vm.userDir, 'p2p-ha');
const semLog = (vm: Vm) => {
  const p = path.join(filesOf(vm), 'sem.log');
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
};

/** Resident memory of a process, bytes (/proc/<pid>/status VmRSS). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

async function edit(vm: Vm, payload: unknown) {
  const r = await httpRequest(vm.url + EDIT_PATH, { method: 'POST', body: payload, timeoutMs: 10_000 });
  return { status: r.status, body: JSON.parse(r.body) };
}

/** Samples a process's RSS every 100 ms until stopped; resolves with the highest seen. */
function watchRss(pid: number) {
  let peak = rss(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rss(pid));
    } catch {
      /* gone: the test's liveness check reports it */
    }
  }, 100);
  return { stop: () => (clearInterval(t), peak) };
}

describe('attacks on the wire (real Node-RED processes)', function () {
  this.timeout(240_000);
  let range: LoopbackRange;
  let cluster: Cluster;
  let semPort: number;
  let ips: string[];
  /** Addresses the attacker sends from (inside this suite's own loopback range). */
  let attackers: string[];

  before(async () => {
    range = allocLoopbackRange();
    ips = range.ips(3);
    attackers = Array.from({ length: 8 }, (_, i) => range.ip(100 + i));
    semPort = await pickPortFreeOnAll([...ips, range.ip(13), ...attackers]);
    const two = ips.slice(0, 2);
    cluster = await startCluster({
      count: 2,
      ips: two,
      flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: SECRET, seeds: two }),
    });
    await waitFor(() => cluster.vms.every((vm) => (fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8').match(/^S\d/gm) ?? []).length === 2), {
      what: 'two members in every group file',
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await cluster?.stopAll();
    range?.release();
  });

  it('attack 2: 1000 unauthenticated connections and 64 slow 8 MiB senders: the runtime stays up, RSS grows < 50 MB and comes back within 10 MB', async () => {
    const s1 = cluster.vm('S1');
    const pid = s1.pid!;
    // Baseline: the runtime at rest (a few samples, the highest).
    await sleep(2000);
    let base = 0;
    for (let i = 0; i < 5; i++) {
      base = Math.max(base, rss(pid));
      await sleep(200);
    }
    const watch = watchRss(pid);
    const sockets: net.Socket[] = [];
    const track = (s: net.Socket) => {
      s.on('error', () => undefined);
      sockets.push(s);
      return s;
    };
    // 64 senders of an 8 MiB snapshot that dribble it (256 KiB every 200 ms: 6.4 s for all of it).
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const dribblers: NodeJS.Timeout[] = [];
    let refusedEarly = 0;
    for (let i = 0; i < 64; i++) {
      const s = track(net.connect({ host: s1.ip, port: semPort, localAddress: attackers[i % attackers.length] }));
      s.on('connect', () => {
        s.write(`POST /p2p/sem/snapshot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${8 * MiB}\r\nx-p2p-mac: ${'0'.repeat(64)}\r\n\r\n`);
        const t = setInterval(() => {
          if (s.destroyed || !s.writable) return clearInterval(t);
          s.write(chunk);
        }, 200);
        dribblers.push(t);
      });
      s.on('data', () => (refusedEarly += 1));
    }
    await sleep(500);
    // 1000 connections from eight addresses: half say nothing, half send half a request line.
    for (let i = 0; i < 1000; i++) {
      const s = track(net.connect({ host: s1.ip, port: semPort, localAddress: attackers[i % attackers.length] }));
      if (i % 2) s.on('connect', () => s.write('POST /p2p/sem/diff HTTP/1.1\r\nHost: x\r\n'));
    }
    await sleep(8000);
    const alive = () => fs.existsSync(`/proc/${pid}`);
    assert.ok(alive(), 'the runtime died under the flood');
    // While the flood is on, a legitimate edit still replicates.
    const during = await edit(cluster.vm('S2'), 'available-od, Add, ODA1, 127.0.2.10, RS1');
    assert.equal(during.status, 200, JSON.stringify(during.body));
    for (const t of dribblers) clearInterval(t);
    for (const s of sockets) s.destroy();
    const peak = watch.stop();
    const grew = (peak - base) / MiB;
    console.log(`      S1 RSS: base ${(base / MiB).toFixed(1)} MB, peak ${(peak / MiB).toFixed(1)} MB (+${grew.toFixed(1)} MB)`);
    assert.ok(grew < 50, `RSS grew by ${grew.toFixed(1)} MB (base ${(base / MiB).toFixed(1)} MB, peak ${(peak / MiB).toFixed(1)} MB)`);
    await waitFor(() => rss(pid) - base < 10 * MiB, {
      what: `S1's RSS back within 10 MB of ${(base / MiB).toFixed(1)} MB`,
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    console.log(`      S1 RSS ${(rss(pid) / MiB).toFixed(1)} MB after; ${refusedEarly} slow senders refused before their body ended`);
    assert.ok(refusedEarly > 0, 'no slow sender was answered (refused) before its body ended');
    await waitFor(() => /^ODA1, /m.test(fs.readFileSync(path.join(filesOf(s1), 'available-od'), 'utf8')), { what: 'the edit on S1', timeoutMs: 10_000 });
    const admin = await httpRequest(s1.url + '/settings', { timeoutMs: 5000 });
    assert.equal(admin.status, 200, 'the runtime does not answer');
  });

  it('attack 1: a fake server at a seed\'s address answering an endless body is cut at the cap; the runtime stays up', async () => {
    // The fake "peer" listens at the third address, on the SEM port, and answers every request
    // with an endless body; a new VM is given it as its only seed.
    let written = 0;
    let closedAt = -1;
    const fake = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      const block = Buffer.alloc(MiB, 0x20);
      const pump = () => {
        while (!res.destroyed && written < 4096 * MiB) {
          written += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => {
        if (closedAt < 0) closedAt = written;
      });
      pump();
    });
    await new Promise<void>((r) => fake.listen(semPort, ips[2], r));
    const s3 = await cluster.define({ name: 'S3', ip: range.ip(3 + 10) });
    try {
      await cluster.start(s3);
      await cluster.deploy(s3, semFlow(s3, 2, { semPort, secret: SECRET, seeds: [ips[2]] }));
      const pid = s3.pid!;
      const base = rss(pid);
      const watch = watchRss(pid);
      await waitFor(() => closedAt >= 0, { what: 'the client to close the endless answer', timeoutMs: 30_000 });
      await sleep(3000); // the next anti-entropy rounds hit it again
      const peak = watch.stop();
      assert.ok(fs.existsSync(`/proc/${pid}`), 'the runtime died');
      // The cap is 8 MiB; the kernel's socket buffers hold a few MiB more on loopback.
      assert.ok(closedAt <= 64 * MiB, `the client read ${closedAt / MiB} MiB before closing`);
      assert.ok(peak - base < 50 * MiB, `RSS grew by ${((peak - base) / MiB).toFixed(1)} MB`);
      const admin = await httpRequest(s3.url + '/settings', { timeoutMs: 5000 });
      assert.equal(admin.status, 200);
    } finally {
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
      await cluster.remove(s3);
    }
  });
});
