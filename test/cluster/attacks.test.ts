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
import { encodeDiff, freshness } from '../../lib/sem/sem-protocol';
import { semPost, signerOf } from '../support/sem-wire';
import { loadOrCreateVmKey } from '../../lib/sem/vm-key';

const SECRET = 'attack-suite-secret-0123456789abcdef';

/** POST as an insider holding the secret and `signer`'s key, or as an outsider (secret null). */
const post = (ip: string, port: number, route: string, body: string, secret: string | null, localAddress?: string, signer?: Vm) =>
  semPost(ip, port, route, body, { secret, localAddress, signer: signer ? signerOf(signer.userDir, signer.name) : undefined });
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
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    await cluster?.stopAll();
    range?.release();
  });

  it('attack 2: 1000 unauthenticated connections and 64 slow 8 MiB senders: the runtime stays up, RSS grows < 50 MB and comes back within 10 MB', async function () {
    // The memory comes back when V8 shrinks its heap, which it does late on a busy machine (about
    // 90 s of the 120 s once at load 15-20): a longer deadline, and the time it took printed.
    this.timeout(420_000);
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
    const floodEnded = Date.now();
    await waitFor(() => rss(pid) - base < 10 * MiB, {
      what: `S1's RSS back within 10 MB of ${(base / MiB).toFixed(1)} MB`,
      timeoutMs: 300_000,
      intervalMs: 500,
    });
    console.log(`      S1 RSS ${(rss(pid) / MiB).toFixed(1)} MB after ${((Date.now() - floodEnded) / 1000).toFixed(1)} s; ${refusedEarly} slow senders refused before their body ended`);
    assert.ok(refusedEarly > 0, 'no slow sender was answered (refused) before its body ended');
    await waitFor(() => /^ODA1, /m.test(fs.readFileSync(path.join(filesOf(s1), 'available-od'), 'utf8')), { what: 'the edit on S1', timeoutMs: 30_000 });
    const admin = await httpRequest(s1.url + '/settings', { timeoutMs: 5000 });
    assert.equal(admin.status, 200, 'the runtime does not answer');
  });

  it('attack 1: a fake server at a seed\'s address answering an endless body is cut at the cap; the runtime stays up', async () => {
    // The fake "peer" listens at the third address, on the SEM port, and answers every request
    // with an endless body; a new VM is given it as its only seed.
    let written = 0;
    let closedAt = -1;
    const captured: string[] = [];
    const fake = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.length < 65536 ? c.toString() : ''));
      req.on('end', () => captured.push(body));
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
      // Attack 8 (confidentiality): what S3 sent to the "peer" is sealed: no JSON, no names.
      assert.ok(captured.length > 0, 'the fake peer received nothing');
      for (const b of captured) {
        assert.match(b, /^[A-Za-z0-9+/]{16}\.[A-Za-z0-9+/=]+$/, `not a sealed body: ${b.slice(0, 80)}`);
        assert.ok(!Buffer.from(b.split('.')[1], 'base64').includes('digest'), 'plain text inside the sealed body');
      }
    } finally {
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
      await cluster.remove(s3);
    }
  });

  const groupCount = (vm: Vm) => (fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8').match(/^S\d/gm) ?? []).length;
  const has = (vm: Vm, file: string, re: RegExp) => re.test(fs.readFileSync(path.join(filesOf(vm), file), 'utf8'));

  it('attack 4: a Lamport time of MAX_SAFE_INTEGER and a forged seq of 1e9 are refused; later edits still apply everywhere', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    const diff = (seq: number, lamport: number, od: string) =>
      encodeDiff({ file: 'available-od', op: 'Add', record: [od, '127.0.2.20', 'RS1'], origin: 'S1', seq, lamport });
    const poison = diff(5000, Number.MAX_SAFE_INTEGER, 'ODX1');
    const r1 = await post(s2.ip, semPort, '/p2p/sem/diff', poison, SECRET, undefined, s1);
    assert.equal(r1.status, 422, r1.body);
    assert.match(r1.body, /Lamport time 9007199254740991 is beyond the bound/);
    const forgedSeq = diff(1e9, 10, 'ODX2');
    const r2 = await post(s2.ip, semPort, '/p2p/sem/diff', forgedSeq, SECRET, undefined, s1);
    assert.equal(r2.status, 422, r2.body);
    assert.match(r2.body, /sequence number 1000000000 jumps more than 1000000 above/);
    // S1's next edits are applied on S2, and S2's on S1.
    const e1 = await edit(s1, 'available-od, Add, ODB1, 127.0.2.21, RS1');
    assert.deepEqual(e1.body.acked.map((a: { peer: string }) => a.peer), ['S2'], JSON.stringify(e1.body));
    const e2 = await edit(s2, 'available-od, Add, ODB2, 127.0.2.22, RS1');
    assert.deepEqual(e2.body.acked.map((a: { peer: string }) => a.peer), ['S1'], JSON.stringify(e2.body));
    // Acknowledged = durable and applied; the text files follow within an interval (lib/sem/text-files.ts).
    await waitFor(() => has(s2, 'available-od', /^ODB1, /m) && has(s1, 'available-od', /^ODB2, /m), { what: 'each edit in the other VM\'s available-od file', timeoutMs: 10_000 });
    assert.ok(!has(s2, 'available-od', /^ODX/m), 'a refused diff was applied');
  });

  it('attack 4 (on disk): a state already poisoned by a MAX_SAFE_INTEGER Lamport time is repaired at load with a log line', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    await cluster.stop(s2);
    const stateFile = path.join(filesOf(s2), '.sem-state.json');
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    state.clock = Number.MAX_SAFE_INTEGER;
    // S2's own entry (an entry poisoned in another VM's name carries no proof of that VM once its
    // time is repaired: it is kept on S2 but never shipped, docs/security.md rule 10).
    state.entries.push(['available-od', 'ODP1', ['ODP1', '127.0.2.26', 'RS1'], Number.MAX_SAFE_INTEGER, 'S2']);
    state.proofOf?.push(-1);
    fs.writeFileSync(stateFile, JSON.stringify(state));
    await cluster.start(s2);
    await waitFor(() => /repaired a poisoned Lamport clock at load: 9007199254740991 is beyond the bound/.test(semLog(s2)), {
      what: 'the repair line in S2\'s SEM log',
      timeoutMs: 20_000,
    });
    await waitFor(() => groupCount(s2) === 2, { what: 'S2 running with both members', timeoutMs: 20_000 });
    const e2 = await edit(s2, 'available-od, Add, ODC2, 127.0.2.23, RS1');
    assert.equal(e2.status, 200, JSON.stringify(e2.body));
    assert.ok(e2.body.lamport < Number.MAX_SAFE_INTEGER && Number.isSafeInteger(e2.body.lamport + 1), `S2 ticks on (${e2.body.lamport})`);
    await waitFor(() => has(s1, 'available-od', /^ODC2, /m), { what: 'S2\'s edit on S1', timeoutMs: 30_000 });
    const e1 = await edit(s1, 'available-od, Add, ODC1, 127.0.2.24, RS1');
    assert.equal(e1.status, 200, JSON.stringify(e1.body));
    await waitFor(() => has(s2, 'available-od', /^ODC1, /m), { what: 'S1\'s edit on S2', timeoutMs: 30_000 });
    // The repaired record itself converges (S1 learns it by anti-entropy), and can be edited.
    await waitFor(() => has(s1, 'available-od', /^ODP1, /m), { what: 'the repaired record on S1', timeoutMs: 30_000 });
    const del = await edit(s1, 'available-od, Del, ODP1, 127.0.2.26, RS1');
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await waitFor(() => !has(s2, 'available-od', /^ODP1, /m), { what: 'the Del of the repaired record on S2', timeoutMs: 30_000 });
  });

  it('attack 6: a digest or snapshot request replayed, or stale, is refused', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    const digest = JSON.stringify({ v: 1, type: 'digest', from: 'S1', digest: '0'.repeat(64), ...freshness() });
    assert.equal((await post(s2.ip, semPort, '/p2p/sem/digest', digest, SECRET, undefined, s1)).status, 200);
    const again = await post(s2.ip, semPort, '/p2p/sem/digest', digest, SECRET, undefined, s1);
    assert.equal(again.status, 409, again.body);
    assert.match(again.body, /replayed request/);
    const stale = JSON.stringify({ v: 1, type: 'digest', from: 'S1', digest: '0'.repeat(64), ...freshness(Date.now() - 5 * 60_000) });
    const old = await post(s2.ip, semPort, '/p2p/sem/digest', stale, SECRET, undefined, s1);
    assert.equal(old.status, 409, old.body);
    assert.match(old.body, /stale digest request/);
    const snap = JSON.stringify({ v: 1, type: 'snapshot', from: 'S1', snapshot: { clock: 1, seqs: {}, entries: [] }, ...freshness() });
    assert.equal((await post(s2.ip, semPort, '/p2p/sem/snapshot', snap, SECRET, undefined, s1)).status, 200);
    const snapAgain = await post(s2.ip, semPort, '/p2p/sem/snapshot', snap, SECRET, undefined, s1);
    assert.equal(snapAgain.status, 409, snapAgain.body);
    const noNonce = JSON.stringify({ v: 1, type: 'digest', from: 'S1', digest: '0'.repeat(64) });
    assert.equal((await post(s2.ip, semPort, '/p2p/sem/digest', noNonce, SECRET, undefined, s1)).status, 400);
  });

  it('attack 3: a flood of 3000 unauthenticated requests is summarised in the SEM log, which keeps its useful lines', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    const useful = await edit(s1, 'available-od, Add, ODD1, 127.0.2.25, RS1');
    assert.equal(useful.status, 200);
    // Logged `applied` (the diff brought it) or `synced` (an anti-entropy exchange won the race).
    const usefulLine = /(?:applied|synced) available-od, Add, ODD1/;
    await waitFor(() => usefulLine.test(semLog(s2)), { what: 'the useful line', timeoutMs: 30_000 });
    const sizeBefore = semLog(s2).length;
    const flooder = attackers[7];
    const body = encodeDiff({ file: 'group', op: 'Del', record: ['S1', s1.ip, 'RS1', '-'], origin: 'S1', seq: 99, lamport: 99 });
    let sent = 0;
    for (let round = 0; round < 60; round++) {
      // 50 at once: over the per-address connection cap, so some are refused at connection time.
      await Promise.all(Array.from({ length: 50 }, () => post(s2.ip, semPort, '/p2p/sem/diff', body, 'wrong-secret-wrong-secret', flooder).then(() => sent++, () => undefined)));
    }
    assert.ok(sent > 1000, `only ${sent} requests were answered`);
    // One summary per 10 s window (a slow machine spreads the flood over more than one).
    const re = new RegExp(`refused (\\d+) refused from ${flooder.replace(/\./g, '\\.')} in the last 10 s \\(\\d+ not logged one by one; last: (?:forged|connection refused)`, 'g');
    const summarised = () => Array.from(semLog(s2).matchAll(re), (m) => Number(m[1])).reduce((a, b) => a + b, 0);
    await waitFor(() => summarised() >= 1000, { what: 'summary lines standing for 1000 refusals', timeoutMs: 40_000 });
    const log = semLog(s2);
    assert.match(log, usefulLine, 'the useful line was rotated away');
    assert.ok(log.length - sizeBefore < 20_000, `the flood added ${log.length - sizeBefore} bytes to the log`);
    assert.ok(!has(s2, 'group', /^$/) && groupCount(s2) === 2);
  });

  it('attack 5 (identity): the secret alone, or another VM\'s key, does not speak for S1; keys are 0600 and published; rotation keeps the cluster working', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    for (const vm of [s1, s2]) {
      const keyFile = path.join(filesOf(vm), '.keys', `${vm.name}.pem`);
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600, `${vm.name}'s key file mode`);
      // Its X25519 key (answers by pair key, docs/security.md rule 11) beside it, 0600 too.
      assert.equal(fs.statSync(path.join(filesOf(vm), '.keys', `${vm.name}.x25519.pem`)).mode & 0o777, 0o600, `${vm.name}'s X25519 key file mode`);
      assert.equal(fs.statSync(path.dirname(keyFile)).mode & 0o777, 0o700);
      for (const other of [s1, s2]) {
        assert.match(fs.readFileSync(path.join(filesOf(other), 'group'), 'utf8'), new RegExp(`^${vm.name}, .*, member, [A-Za-z0-9+/]{43}=(?:, [A-Za-z0-9+/]{43}=)?$`, 'm'), `${vm.name}'s key in ${other.name}'s group file`);
      }
    }
    const before = fs.readFileSync(path.join(filesOf(s1), 'group'), 'utf8');
    // The insider holds S2 (its key and the secret) and rewrites S1's own group record as S1.
    const forge = (seq: number) =>
      encodeDiff({ file: 'group', op: 'Mod', before: before.split('\n').find((l) => l.startsWith('S1, '))!.split(', '), record: ['S1', '127.0.0.66', 'RS9', '-'], origin: 'S1', seq, lamport: 10 });
    const unsigned = await semPost(s2.ip, semPort, '/p2p/sem/diff', forge(900_001), { secret: SECRET });
    assert.equal(unsigned.status, 401, unsigned.body);
    assert.match(unsigned.body, /without a VM signature/);
    const asS2 = await semPost(s2.ip, semPort, '/p2p/sem/diff', forge(900_002), { secret: SECRET, signer: signerOf(s2.userDir, 'S2') });
    assert.equal(asS2.status, 401, asS2.body);
    assert.match(asS2.body, /signed by S2 but claims to come from S1/);
    // A signature header that names S1 but is made with S2's key.
    const s2Key = loadOrCreateVmKey(filesOf(s2), 'S2');
    const claimed = await semPost(s2.ip, semPort, '/p2p/sem/diff', forge(900_003), { secret: SECRET, key: { ...s2Key, hostname: 'S1' } });
    assert.equal(claimed.status, 401, claimed.body);
    assert.match(claimed.body, /forged message: not signed by the key S1 publishes/);
    for (const vm of [s1, s2]) assert.doesNotMatch(fs.readFileSync(path.join(filesOf(vm), 'group'), 'utf8'), /127\.0\.0\.66/);

    // Rotation from the admin endpoint: the new key is published, edits keep flowing, the old key is refused.
    const oldKey = { ...loadOrCreateVmKey(filesOf(s1), 'S1') };
    const rot = await httpRequest(s1.url + '/p2p-ha/store/store/rotate-key', { method: 'POST', body: {}, timeoutMs: 10_000 });
    assert.equal(rot.status, 200, rot.body);
    const { publicKey } = JSON.parse(rot.body) as { publicKey: string };
    await waitFor(() => fs.readFileSync(path.join(filesOf(s2), 'group'), 'utf8').includes(publicKey), { what: 'S1\'s new key on S2', timeoutMs: 30_000 });
    const e1 = await edit(s1, 'available-od, Add, ODE1, 127.0.2.27, RS1');
    assert.deepEqual(e1.body.acked.map((a: { peer: string }) => a.peer), ['S2'], JSON.stringify(e1.body));
    // The old key is accepted for 10 s after the change (messages in flight), then never again.
    await sleep(10_500);
    const withOld = await semPost(s2.ip, semPort, '/p2p/sem/diff', encodeDiff({ file: 'available-od', op: 'Add', record: ['ODE9', '127.0.2.28', 'RS1'], origin: 'S1', seq: 950_000, lamport: 10 }), {
      secret: SECRET,
      key: oldKey,
    });
    assert.equal(withOld.status, 401, withOld.body);
    assert.match(withOld.body, /not signed by the key S1 publishes/);
    assert.ok(!fs.readFileSync(path.join(filesOf(s2), 'available-od'), 'utf8').includes('ODE9'));
  });

  it('attack 5 (authority): an insider holding S2 cannot delete S1\'s group record, confirm in another manager\'s name, or use an undated confirmation', async () => {
    const [s1, s2] = [cluster.vm('S1'), cluster.vm('S2')];
    const asS2 = (e: Parameters<typeof encodeDiff>[0]) => semPost(s1.ip, semPort, '/p2p/sem/diff', encodeDiff(e), { secret: SECRET, signer: signerOf(s2.userDir, 'S2') });
    const groupS1 = fs.readFileSync(path.join(filesOf(s1), 'group'), 'utf8').split('\n').find((l) => l.startsWith('S1, '))!.split(', ');
    const del = await asS2({ file: 'group', op: 'Del', record: groupS1, origin: 'S2', seq: 500_001, lamport: 10 });
    assert.equal(del.status, 403, del.body);
    assert.match(del.body, /S2 may not change the group record of S1 \(G2\): no problem record/);
    const forged = await asS2({ file: 'problem', op: 'Add', record: ['S1', 'S9', 'realserver', 'confirmed', '-', new Date().toISOString()], origin: 'S2', seq: 500_002, lamport: 10 });
    assert.equal(forged.status, 403, forged.body);
    assert.match(forged.body, /may not write a problem record of S1 in the name of S9 \(P1\)/);
    // A confirmation in its own name but without a date, then the Del: the Del is refused.
    const undated = await asS2({ file: 'problem', op: 'Add', record: ['S1', 'S2', 'network', 'confirmed', '-', '-'], origin: 'S2', seq: 500_003, lamport: 10 });
    assert.equal(undated.status, 200, undated.body);
    const del2 = await asS2({ file: 'group', op: 'Del', record: groupS1, origin: 'S2', seq: 500_004, lamport: 11 });
    assert.equal(del2.status, 403, del2.body);
    assert.match(del2.body, /carries no date/);
    assert.match(fs.readFileSync(path.join(filesOf(s1), 'group'), 'utf8'), /^S1, /m, 'S1 is still a member');
    await waitFor(() => /refused group, Del, S1, .* S2 may not change the group record of S1/.test(semLog(s1)), { what: 'the refusal with its reason in S1\'s log', timeoutMs: 30_000 });
    // Clean up: the problem record is deleted by its detector.
    const cleanup = await asS2({ file: 'problem', op: 'Del', record: ['S1', 'S2', 'network', 'confirmed', '-', '-'], origin: 'S2', seq: 500_005, lamport: 12 });
    assert.equal(cleanup.status, 200, cleanup.body);
  });
});
