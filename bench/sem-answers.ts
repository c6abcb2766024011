// What answers by pair key save (issue 14 with 16, docs/security.md rule 11), measured two ways in
// one process, so that the machine's load weighs on both sides alike:
//  1. per answer: the CPU of authenticating one answer (the receiver) and of checking it (the
//     sender), Ed25519 signature against pair-key HMAC, on the same label and body, interleaved;
//  2. per edit, A/B interleaved: two clusters of VMS stores (default 6: a sender and five
//     receivers) in this one Node.js thread, A held at wire version 2 (signed answers), B at
//     version 3 (answers by pair key), blocks of BLOCK edits in turn (A, B, A, B, ...), the CPU time
//     of the whole process per edit (sender and receivers together: what six VMs on two cores
//     compete for), and the sender's answers by kind.
// Knobs: EDITS (per side, default 600), BLOCK (default 50), VMS (default 6), DIR (the stores'
// folder, default the temporary folder). Prints one JSON object as its last line.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generateKeyPairSync } from 'crypto';
import { ReplicatedStore } from '../lib/sem/replicated-store';
import type { Edit } from '../lib/records/cluster-api';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../harness/net';
import { derivePairKey, pairTag, parsePairTag, verifyPairTag } from '../lib/sem/pair-key';
import { parseSignature, publicKeyB64, signMessage, verifyMessage, type VmKey } from '../lib/sem/vm-key';
import { loadAverage, summarize } from './stats';

const EDITS = Number(process.env.EDITS ?? 600);
const BLOCK = Number(process.env.BLOCK ?? 50);
const VMS = Number(process.env.VMS ?? 6);
const SECRET = 'sem-answers-bench-secret-0123456789';

/** CPU microseconds of `n` calls of `f`, per call. */
function cpuPerCall(n: number, f: () => unknown): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

/** Part 1: one answer's authentication and check, signature against pair key. */
function perAnswer() {
  const key = (type: 'ed25519' | 'x25519', hostname: string): VmKey => {
    const privateKey = type === 'ed25519' ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('x25519').privateKey;
    return { hostname, privateKey, publicKey: publicKeyB64(privateKey), file: '-' };
  };
  const s3sig = key('ed25519', 'S3');
  const [s1dh, s3dh] = [key('x25519', 'S1'), key('x25519', 'S3')];
  const k = derivePairKey(s3dh, 'S3', { hostname: 'S1', dhKey: s1dh.publicKey });
  const label = `answer ${'x'.repeat(44)} 200`;
  const body = JSON.stringify({ ok: true, applied: true });
  const sigHeader = signMessage(s3sig, label, body);
  const tagHeader = pairTag(k, 'S1', 'S3', label, body);
  const rounds = { sign: [] as number[], verify: [] as number[], tag: [] as number[], check: [] as number[], derive: [] as number[] };
  for (let r = 0; r < 10; r++) {
    rounds.sign.push(cpuPerCall(200, () => signMessage(s3sig, label, body)));
    rounds.tag.push(cpuPerCall(200, () => pairTag(k, 'S1', 'S3', label, body)));
    rounds.verify.push(cpuPerCall(200, () => verifyMessage(s3sig.publicKey, label, body, parseSignature(sigHeader)!.sig)));
    rounds.check.push(cpuPerCall(200, () => verifyPairTag(k, 'S1', 'S3', label, body, parsePairTag(tagHeader)!.mac)));
    rounds.derive.push(cpuPerCall(20, () => derivePairKey(s1dh, 'S1', { hostname: 'S3', dhKey: s3dh.publicKey })));
  }
  const med = (xs: number[]) => Math.round(xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)] * 10) / 10;
  return {
    receiver_us: { ed25519_sign: med(rounds.sign), pair_hmac: med(rounds.tag) },
    sender_us: { ed25519_verify: med(rounds.verify), pair_hmac_check: med(rounds.check) },
    pair_key_derivation_us: med(rounds.derive),
  };
}

interface Cluster {
  name: string;
  stores: ReplicatedStore[];
  range: LoopbackRange;
  prev: string[] | null;
  next: number;
  cpuUs: number;
  edits: number;
  acks: number[];
}

async function cluster(name: string, dir: string, version: 2 | 3): Promise<Cluster> {
  const range = allocLoopbackRange();
  const ips = range.ips(VMS);
  const port = await pickPortFreeOnAll(ips);
  const stores = ips.map(
    (ip, i) =>
      new ReplicatedStore({
        identity: { hostname: `S${i + 1}`, address: ip, realServer: 'RS1', services: '-' },
        folder: path.join(dir, name, `S${i + 1}`),
        port,
        secret: SECRET,
        seeds: [ips[0]],
        syncIntervalMs: 600_000,
        protocolVersion: version,
      }),
  );
  for (const s of stores) s.on('warning', () => undefined);
  for (const s of stores) await s.start();
  // Until every VM holds every member (and, at version 3, every X25519 key).
  for (let k = 0; k < 20; k++) {
    const done = stores.every((s) => s.records('group').length === VMS && (version === 2 || s.records('group').every((r) => r.length > 6)));
    if (done) break;
    for (const s of stores) await s.round();
    for (const s of stores) await s.syncAll();
  }
  return { name, stores, range, prev: null, next: 0, cpuUs: 0, edits: 0, acks: [] };
}

async function edits(c: Cluster, n: number, measure: boolean): Promise<void> {
  const c0 = process.cpuUsage();
  for (let j = 0; j < n; j++) {
    const i = c.next++;
    const record = ['RS1', (i / 1000).toFixed(3), String(i % 50), 'up'];
    const e: Edit = c.prev ? { file: 'realserver', op: 'Mod', before: c.prev, record } : { file: 'realserver', op: 'Add', record };
    const r = await c.stores[0].edit(e);
    if (r.failed.length || r.acked.length !== VMS - 1) throw new Error(`${c.name} edit ${i}: ${JSON.stringify(r.failed)}`);
    c.prev = record;
    if (measure) for (const a of r.acked) c.acks.push(a.ms);
  }
  if (!measure) return;
  const cpu = process.cpuUsage(c0);
  c.cpuUs += cpu.user + cpu.system;
  c.edits += n;
}

(async () => {
  const micro = perAnswer();
  const dir = fs.mkdtempSync(path.join(process.env.DIR ?? os.tmpdir(), 'sem-answers-'));
  const clusters: Cluster[] = [];
  try {
    clusters.push(await cluster('A-signed', dir, 2), await cluster('B-pair', dir, 3));
    for (const c of clusters) await edits(c, 50, false); // warm-up
    const before = clusters.map((c) => c.stores[0].answersAccepted());
    const load0 = loadAverage();
    for (let done = 0; done < EDITS; done += BLOCK) for (const c of clusters) await edits(c, Math.min(BLOCK, EDITS - done), true);
    const perEdit = clusters.map((c) => Math.round(c.cpuUs / c.edits) / 1000);
    const kinds = clusters.map((c, i) => {
      const a = c.stores[0].answersAccepted();
      return { pair: a.pair - before[i].pair, signed: a.signed - before[i].signed };
    });
    console.log(
      JSON.stringify({
        bench: 'sem-answers',
        vms: VMS,
        edits_per_side: EDITS,
        block: BLOCK,
        per_answer: micro,
        cpu_ms_per_edit_all_vms: { signed: perEdit[0], pair: perEdit[1], difference: Math.round((perEdit[1] - perEdit[0]) * 1000) / 1000, ratio: Math.round((perEdit[1] / perEdit[0]) * 1000) / 1000 },
        expected_from_note: { sender_ms_per_edit: -0.58, each_receiver_ms_per_edit: -0.04, verify_us: 116, hmac_us: 6 },
        sender_answers: { signed_side: kinds[0], pair_side: kinds[1] },
        ack_ms: { signed: summarize(clusters[0].acks), pair: summarize(clusters[1].acks) },
        load_average: { start: load0, end: loadAverage() },
      }),
    );
  } finally {
    for (const c of clusters) {
      await Promise.all(c.stores.map((s) => s.stop().catch(() => undefined)));
      c.range.release();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
