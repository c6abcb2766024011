// Several edits as one diff (ClusterFiles.editBatch, sem-protocol.ts WireDiff): the wire form, the
// authority of each record in order, and between real stores on loopback with the wire's security
// on (VM signatures, sealed bodies, replay guard): applied all or nothing, one journal line, one
// sequence number, a replayed batch refused, a batch relayed along the fan-out tree.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Edit } from '../../lib/records/cluster-api';
import type { RecordFields } from '../../lib/records/files';
import { batchAuthorityRefusal, type AuthorityView } from '../../lib/sem/edit-authority';
import { AuthorityError, EditError, ReplicatedStore } from '../../lib/sem/replicated-store';
import { MAX_BATCH, ProtocolError, decodeDiff, diffsOf, encodeDiff } from '../../lib/sem/sem-protocol';
import { SemClient, SemClientError } from '../../lib/sem/sem-http';
import { loadOrCreateVmKey, signMessage } from '../../lib/sem/vm-key';
import { WAL_FILE } from '../../lib/sem/durable-files';
import { DIFF_PATH, RELAY_PATH, encodeRelay } from '../../lib/sem/fanout';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../../harness/net';
import { waitFor } from '../../harness/wait';

const NOW = Date.parse('2026-12-03T03:00:00Z');
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const group: RecordFields[] = [
  ['S1', '127.0.1.1', 'RS1', '-'],
  ['S2', '127.0.1.2', 'RS2', '-'],
  ['S3', '127.0.1.3', 'RS3', '-'],
  ['S4', '127.0.1.4', 'RS1', '-'],
];
// Ring: S2 is watched by S1 (P1) and S3 (P2).
function view(problem: RecordFields[] = []): AuthorityView {
  const files: Record<string, RecordFields[]> = { group, problem };
  return { get: (f, k) => files[f].find((r) => r[0] === k), records: (f) => files[f] };
}

describe('SEM batch: the wire form', () => {
  const recs: Edit[] = [
    { file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'recovered', 'S2b', iso(0)] },
    { file: 'available-od', op: 'Del', record: ['OD3', '127.0.2.3', 'RS3'] },
    { file: 'group', op: 'Add', record: ['S2b', '127.0.2.3', 'RS3', 'tcp:80'] },
  ];

  it('one message, one sequence number, consecutive Lamport times; a single edit keeps the one-record form', () => {
    const [first, ...rest] = recs.map((e, i) => ({ ...e, origin: 'S1', seq: 7, lamport: 40 + i }));
    const body = encodeDiff({ ...first, more: rest }, NOW);
    const o = JSON.parse(body);
    assert.equal(o.file, undefined, 'no top-level record: a receiver without batches refuses it whole');
    assert.equal(o.edits.length, 3);
    const d = decodeDiff(body, NOW);
    assert.deepEqual(
      diffsOf(d).map((x) => [x.file, x.op, x.seq, x.lamport, x.origin]),
      [
        ['problem', 'Add', 7, 40, 'S1'],
        ['available-od', 'Del', 7, 41, 'S1'],
        ['group', 'Add', 7, 42, 'S1'],
      ],
    );
    assert.equal(JSON.parse(encodeDiff(first, NOW)).file, 'problem');
    assert.equal(decodeDiff(encodeDiff(first, NOW), NOW).more, undefined);
  });

  it('refuses a batch that writes a record twice, an empty or too long one, a bad record, or a mixed form', () => {
    const msg = (edits: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ v: 1, type: 'diff', origin: 'S1', seq: 1, lamport: 1, ts: NOW, edits, ...extra });
    const od = { file: 'available-od', op: 'Add', record: ['OD1', '127.0.2.1', 'RS1'] };
    const refused = (body: string, re: RegExp) => assert.throws(() => decodeDiff(body, NOW), (e: unknown) => e instanceof ProtocolError && re.test(e.message));
    refused(msg([od, { ...od, op: 'Del' }]), /each record once/);
    refused(msg([]), /at least one/);
    refused(msg(Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ ...od, record: [`OD${i}`, '127.0.2.1', 'RS1'] }))), /at most 32/);
    refused(msg([od, { file: 'operation', op: 'Add', record: ['P1', 'S1', 'S2'] }]), /derived/);
    refused(msg([od, { file: 'group', op: 'Add', record: ['bad name!', '1.2.3.4', 'RS1', '-'] }]), /invalid record/);
    refused(msg([od], { file: 'available-od', op: 'Add', record: od.record }), /in edits only/);
    refused(msg([od, 'available-od, Add, OD2, 127.0.2.2, RS1']), /not an object/);
  });
});

describe('SEM batch: authority of each record, in order', () => {
  const claim: RecordFields = ['S2', 'S1', 'network', 'fencing', 'S2b', iso(5000)];
  const fence: Edit = { file: 'group', op: 'Mod', before: group[1], record: ['S2', '127.0.1.2', 'RS2', '-', 'fenced'] };

  it('a record is judged with the earlier records of its batch applied, as separate diffs in that order would be', () => {
    // The claim and the group change it supports travel together: allowed in this order...
    assert.equal(batchAuthorityRefusal('S1', [{ file: 'problem', op: 'Add', record: claim }, fence], view(), NOW), null);
    // ...refused in the other (the group change comes before any claim), at its index.
    assert.deepEqual(batchAuthorityRefusal('S1', [fence, { file: 'problem', op: 'Add', record: claim }], view(), NOW)?.index, 0);
    // G3: the backup's record after the problem record that names it.
    const named: Edit = { file: 'problem', op: 'Mod', before: claim, record: ['S2', 'S1', 'network', 'recovering', 'S2b', claim[5]] };
    assert.equal(batchAuthorityRefusal('S1', [named, { file: 'group', op: 'Add', record: ['S2b', '127.0.2.3', 'RS3', '-'] }], view([claim]), NOW), null);
    assert.match(batchAuthorityRefusal('S1', [{ file: 'group', op: 'Add', record: ['S9b', '127.0.2.9', 'RS3', '-'] }], view([claim]), NOW)?.reason ?? '', /G3/);
  });

  it('one refused record refuses the batch, with that record named', () => {
    const ok: Edit = { file: 'available-od', op: 'Add', record: ['OD9', '127.0.2.9', 'RS1'] };
    const delS3: Edit = { file: 'group', op: 'Del', record: group[2] };
    const r = batchAuthorityRefusal('S4', [ok, delS3], view(), NOW);
    assert.equal(r?.index, 1);
    assert.match(r!.reason, /S4 may not change the group record of S3 \(G2\)/);
    // In another's name (P1), whatever comes before it.
    const forged: Edit = { file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'confirmed', '-', iso(0)] };
    assert.equal(batchAuthorityRefusal('S4', [ok, forged], view(), NOW)?.index, 1);
  });
});

describe('SEM batch: between real stores (signed, sealed, replay-guarded)', function () {
  this.timeout(60_000);
  const SECRET = 'sem-batch-test-secret-0123456789';
  let range: LoopbackRange;
  let port: number;
  let dirs: string[] = [];
  const stores: ReplicatedStore[] = [];
  const ips: string[] = [];
  let s1: ReplicatedStore;
  let s2: ReplicatedStore;
  let s3: ReplicatedStore;

  before(async () => {
    range = allocLoopbackRange();
    ips.push(range.ip(1), range.ip(2), range.ip(3));
    port = await pickPortFreeOnAll(ips);
    const make = (i: number) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `p2p-batch-S${i + 1}-`));
      dirs.push(dir);
      const s = new ReplicatedStore({
        identity: { hostname: `S${i + 1}`, address: ips[i], realServer: `RS${i + 1}`, services: '-' },
        folder: dir,
        secret: SECRET,
        port,
        seeds: [ips[0]],
        syncIntervalMs: 60_000, // no anti-entropy during the test: what arrives, arrives as a diff
      });
      stores.push(s);
      return s;
    };
    s1 = make(0);
    await s1.start();
    s2 = make(1);
    await s2.start();
    s3 = make(2);
    await s3.start();
    // Three members with their keys published (Ed25519 and X25519: a VM publishes the latter once it
    // heard every member, a group edit that must not fall into a test's journal count), on every store.
    await waitFor(() => [s1, s2, s3].every((s) => s.records('group').length === 3 && s.records('group').every((r) => (r[5] ?? '-') !== '-' && (r[6] ?? '-') !== '-')), {
      what: 'three members with both keys on every store',
      timeoutMs: 20_000,
    });
  });

  after(async () => {
    for (const s of stores) await s.stop().catch(() => undefined);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    dirs = [];
    range?.release();
  });

  const walLines = (dir: string) => fs.readFileSync(path.join(dir, WAL_FILE), 'utf8').split('\n').filter(Boolean).length;

  it('a batch is applied by the sender in one journal line and by the peer all together, as one sequence number', async () => {
    const changes: string[] = [];
    const onChange = (ev: { line: string; seq: number; via: string }) => changes.push(`${ev.via} #${ev.seq} ${ev.line}`);
    s2.on('change', onChange);
    const before = walLines(dirs[0]);
    const r = await s1.editBatch([
      'available-od, Add, OD1, 127.0.2.1, RS1',
      'available-od, Add, OD2, 127.0.2.2, RS2',
      { file: 'realserver', op: 'Add', record: ['RS1', '0.5', '1', 'up'] },
    ]);
    s2.off('change', onChange);
    assert.equal(walLines(dirs[0]) - before, 1, 'one journal line (one fdatasync) for the whole batch');
    assert.deepEqual(r.acked.map((a) => a.peer).sort(), ['S2', 'S3']);
    assert.deepEqual(r.failed, []);
    assert.equal(r.lines.length, 3);
    assert.deepEqual(s2.records('available-od'), [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2']]);
    assert.deepEqual(s2.get('realserver', 'RS1')?.slice(0, 4), ['RS1', '0.5', '1', 'up']);
    assert.equal(changes.length, 3);
    assert.ok(changes.every((c) => c.startsWith(`diff #${r.seq} `)), changes.join('\n'));
    assert.equal(s1.digest(), s2.digest());
    assert.equal(s1.digest(), s3.digest());
    // The next single edit takes the next sequence number.
    const next = await s1.edit('available-od, Del, OD2, 127.0.2.2, RS2');
    assert.equal(next.seq, r.seq + 1);
    assert.equal(s2.get('available-od', 'OD2'), undefined);
  });

  it('refused at the sender when one edit is (a stale Mod, a record twice): nothing changes there', async () => {
    const d = s1.digest();
    await assert.rejects(
      s1.editBatch(['available-od, Add, OD5, 127.0.2.5, RS1', { file: 'realserver', op: 'Mod', before: ['RS1', '0.9', '1', 'up'], record: ['RS1', '0.1', '1', 'up'] }]),
      (e: unknown) => e instanceof EditError && /before does not match/.test(e.message),
    );
    await assert.rejects(s1.editBatch(['available-od, Add, OD5, 127.0.2.5, RS1', 'available-od, Del, OD1, 127.0.2.1, RS1', 'available-od, Del, OD5, 127.0.2.5, RS1']), /each record once/);
    assert.equal(s1.digest(), d);
    assert.equal(s1.get('available-od', 'OD5'), undefined);
  });

  it('one record the receivers refuse by authority: refused at the sender, and a peer sent it anyway applies none of it', async () => {
    // S2 changes S1's group record without any claim (G2) in the same batch as a harmless record.
    const s1rec = s2.get('group', 'S1')!;
    const changed = [...s1rec.slice(0, 3), 'tcp:99', ...s1rec.slice(4)];
    const d2 = s2.digest();
    await assert.rejects(
      s2.editBatch(['available-od, Add, OD7, 127.0.2.7, RS2', { file: 'group', op: 'Mod', before: s1rec, record: changed }]),
      (e: unknown) => e instanceof AuthorityError && /S2 may not change the group record of S1 \(G2\)/.test(e.message),
    );
    assert.equal(s2.digest(), d2, 'nothing changed at the sender');
    // The same batch signed by S2 and posted to S1 by hand: refused whole, the record named.
    const key2 = loadOrCreateVmKey(dirs[1], 'S2');
    const client = new SemClient(SECRET, 5000, ips[1], (label, b) => signMessage(key2, label, b), undefined, true);
    try {
      const body = encodeDiff({
        file: 'available-od',
        op: 'Add',
        record: ['OD7', '127.0.2.7', 'RS2'],
        origin: 'S2',
        seq: 40_000,
        lamport: 9000,
        more: [{ file: 'group', op: 'Mod', before: s1rec, record: changed, origin: 'S2', seq: 40_000, lamport: 9001 }],
      });
      await assert.rejects(
        client.post({ address: ips[0], port }, '/p2p/sem/diff', body),
        (e: unknown) => e instanceof SemClientError && e.status === 403 && /record 2 of 2: S2 may not change the group record of S1 \(G2\)/.test(e.message),
      );
    } finally {
      client.close();
    }
    assert.equal(s1.get('available-od', 'OD7'), undefined, 'the harmless record was not applied alone');
    assert.deepEqual(s1.get('group', 'S1'), s1rec);
  });

  it('a replayed batch is refused as a whole, even sent again by its own signer', async () => {
    // S1's batch as S1 signs it, posted by hand: applied once, refused as a replay the second time.
    const key = loadOrCreateVmKey(dirs[0], 'S1');
    const client = new SemClient(SECRET, 5000, ips[0], (label, body) => signMessage(key, label, body), undefined, true);
    try {
      const seq = 10_000;
      const body = encodeDiff({
        file: 'available-od',
        op: 'Add',
        record: ['OD8', '127.0.2.8', 'RS1'],
        origin: 'S1',
        seq,
        lamport: 5000,
        more: [{ file: 'available-od', op: 'Add', record: ['OD9', '127.0.2.9', 'RS1'], origin: 'S1', seq, lamport: 5001 }],
      });
      const first = (await client.post({ address: ips[1], port }, '/p2p/sem/diff', body)) as { applied?: boolean };
      assert.equal(first.applied, true);
      assert.ok(s2.get('available-od', 'OD8') && s2.get('available-od', 'OD9'));
      await assert.rejects(client.post({ address: ips[1], port }, '/p2p/sem/diff', body), (e: unknown) => e instanceof SemClientError && e.status === 409 && /replayed diff: S1 #10000/.test(e.message));
      // A batch that reuses the sequence number of an accepted diff with other content: refused too.
      const other = encodeDiff({ file: 'available-od', op: 'Add', record: ['OD6', '127.0.2.6', 'RS1'], origin: 'S1', seq, lamport: 5002, more: [{ file: 'available-od', op: 'Del', record: ['OD8', '127.0.2.8', 'RS1'], origin: 'S1', seq, lamport: 5003 }] });
      await assert.rejects(client.post({ address: ips[1], port }, '/p2p/sem/diff', other), (e: unknown) => e instanceof SemClientError && e.status === 409);
      assert.equal(s2.get('available-od', 'OD6'), undefined);
      assert.ok(s2.get('available-od', 'OD8'));
    } finally {
      client.close();
    }
  });

  it('a batch travels along the fan-out tree: a relay applies it and passes the origin\'s bytes and signature on', async () => {
    // S1's batch, relayed by S3 (its relay message signed by S3) to its subtree [S2] (S2 made refused
    // edits above: its own fan-out holds the others as failing for a while).
    const body = encodeDiff({
      file: 'available-od',
      op: 'Add',
      record: ['OD10', '127.0.2.10', 'RS1'],
      origin: 'S1',
      seq: 30_000,
      lamport: 7000,
      more: [{ file: 'realserver', op: 'Add', record: ['RS9', '0.1', '1', 'up'], origin: 'S1', seq: 30_000, lamport: 7001 }],
    });
    const signature = signMessage(loadOrCreateVmKey(dirs[0], 'S1'), `POST ${DIFF_PATH}`, body);
    const key3 = loadOrCreateVmKey(dirs[2], 'S3');
    const client = new SemClient(SECRET, 5000, ips[2], (label, b) => signMessage(key3, label, b), undefined, true);
    try {
      const reply = (await client.post({ address: ips[2], port }, RELAY_PATH, encodeRelay('S3', { body, signature }, [{ hostname: 'S2', address: ips[1] }]))) as { acked: { peer: string }[] };
      assert.deepEqual(reply.acked.map((a) => a.peer), ['S2'], JSON.stringify(reply));
      for (const s of [s2, s3]) {
        assert.deepEqual(s.get('available-od', 'OD10'), ['OD10', '127.0.2.10', 'RS1']);
        assert.deepEqual(s.get('realserver', 'RS9')?.slice(0, 4), ['RS9', '0.1', '1', 'up']);
      }
    } finally {
      client.close();
    }
  });

  it('a VM without a published key cannot slip other records in with its own join record', async () => {
    // S9 holds the cluster secret and a key of its own: alone, its own group record with that key
    // is accepted (a VM joining); in a batch with anything else, nothing is.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-batch-S9-'));
    dirs.push(dir);
    const key9 = loadOrCreateVmKey(dir, 'S9');
    const client = new SemClient(SECRET, 5000, ips[0], (label, b) => signMessage(key9, label, b), undefined, true);
    try {
      const join = { file: 'group' as const, op: 'Add' as const, record: ['S9', ips[0], 'RS1', '-', 'member', key9.publicKey], origin: 'S9', seq: 1, lamport: 8000 };
      const body = encodeDiff({ ...join, more: [{ file: 'available-od', op: 'Add', record: ['OD99', '127.0.2.99', 'RS1'], origin: 'S9', seq: 1, lamport: 8001 }] });
      await assert.rejects(client.post({ address: ips[2], port }, '/p2p/sem/diff', body), (e: unknown) => e instanceof SemClientError && e.status === 401 && /publishes no key/.test(e.message));
      assert.equal(s3.get('group', 'S9'), undefined);
      assert.equal(s3.get('available-od', 'OD99'), undefined);
    } finally {
      client.close();
    }
  });

  it('a batch signed by another VM\'s key than its origin\'s is refused whole', async () => {
    const key = loadOrCreateVmKey(dirs[1], 'S2'); // S2's key, claiming to be S1
    const client = new SemClient(SECRET, 5000, ips[0], (label, body) => signMessage(key, label, body), undefined, true);
    try {
      const body = encodeDiff({ file: 'available-od', op: 'Add', record: ['OD4', '127.0.2.4', 'RS1'], origin: 'S1', seq: 20_000, lamport: 6000, more: [{ file: 'available-od', op: 'Add', record: ['OD3', '127.0.2.3', 'RS1'], origin: 'S1', seq: 20_000, lamport: 6001 }] });
      await assert.rejects(client.post({ address: ips[1], port }, '/p2p/sem/diff', body), (e: unknown) => e instanceof SemClientError && e.status === 401);
      assert.equal(s2.get('available-od', 'OD4'), undefined);
      assert.equal(s2.get('available-od', 'OD3'), undefined);
    } finally {
      client.close();
    }
  });
});
