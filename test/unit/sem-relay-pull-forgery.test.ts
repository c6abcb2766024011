// A relay, or a summary/pull partner, cannot inject or alter a record (issue 16 with issue 14).
// Four real stores on their own loopback addresses (S1..S4, ring: S2 is watched by S1 and S3, so
// S4 may not touch S2's group record). S4 plays the insider: it holds a valid VM key and the
// cluster secret, so its messages pass the MAC, the encryption and its own signature check; what
// it says in other VMs' names must still be refused:
//   - a relayed diff whose origin is forged (signed by the relay) or whose bytes were altered
//     (the origin's signature kept) is refused by the relay's receiver and passed on to nobody;
//     an unaltered one is applied and passed on, with the origin's own signature;
//   - a pull answer (and a pushed partial snapshot) carrying a record its sender may not author is
//     not merged, and the refusal is reported; the allowed entries of the same answer are merged.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { SemClient, SemClientError, SemServer } from '../../lib/sem/sem-http';
import { DIFF_PATH, RELAY_PATH, encodeRelay } from '../../lib/sem/fanout';
import { PULL_PATH, SUMMARY_PATH } from '../../lib/sem/anti-entropy';
import { encodeDiff, freshness } from '../../lib/sem/sem-protocol';
import { loadOrCreateVmKey, signMessage, VmKey } from '../../lib/sem/vm-key';
import { packSnapshot, signEntry } from '../../lib/sem/entry-proof';
import type { SnapshotEntry } from '../../lib/sem/replica';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';
import type { RefusalEvent } from '../../lib/records/cluster-api';
import type { RecordFields } from '../../lib/records/files';

const SECRET = 'relay-pull-forgery-secret-0123456789';
const NAMES = ['S1', 'S2', 'S3', 'S4'];

describe('SEM: a relay or an anti-entropy partner cannot inject or alter records', function () {
  this.timeout(60_000);
  let range: LoopbackRange;
  let base: string;
  let port: number;
  const stores = new Map<string, ReplicatedStore>();
  const refusals = new Map<string, RefusalEvent[]>();
  let fake: SemServer | undefined;
  let client: SemClient | undefined;

  const folder = (h: string) => path.join(base, h);
  const ip = (h: string) => range.ip(NAMES.indexOf(h) + 1);
  const key = (h: string): VmKey => loadOrCreateVmKey(folder(h), h);
  /** A client at S4's address that signs with S4's key (or sends the signature it is given). */
  const insider = () => (client ??= new SemClient(SECRET, 5000, ip('S4'), (label, body) => signMessage(key('S4'), label, body), undefined, true));
  const internals = (s: ReplicatedStore) => s as unknown as { disk: { ownSeq: number }; replica: { clock: number } };

  before(async () => {
    range = allocLoopbackRange();
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-forgery-'));
    port = await pickPortFreeOnAll(NAMES.map(ip));
    for (const h of NAMES) {
      const s = new ReplicatedStore({
        identity: { hostname: h, address: ip(h), realServer: `RS${h.slice(1)}`, services: 'tcp:80' },
        folder: folder(h),
        secret: SECRET,
        port,
        seeds: [ip('S1')],
        syncIntervalMs: 500,
      });
      refusals.set(h, []);
      s.on('refused', (e: RefusalEvent) => refusals.get(h)!.push(e));
      s.on('warning', () => undefined);
      stores.set(h, s);
      await s.start();
    }
    // Every store lists the four members, each with its published key.
    await waitFor(
      () => Array.from(stores.values()).every((s) => NAMES.every((h) => /^[A-Za-z0-9+/]{43}=$/.test(s.get('group', h)?.[5] ?? ''))),
      { what: 'four members with keys everywhere', timeoutMs: 30_000 },
    );
  });

  after(async () => {
    client?.close();
    await fake?.close();
    for (const s of stores.values()) await s.stop().catch(() => undefined);
    range?.release();
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  /** A diff S1 would send: its next sequence number, above its clock. */
  const s1Diff = (record: RecordFields) => {
    const s1 = internals(stores.get('S1')!);
    return encodeDiff({ file: 'realserver', op: 'Add', record, origin: 'S1', seq: s1.disk.ownSeq + 1, lamport: s1.replica.clock + 1 });
  };
  const relayTo = (to: string, diff: { body: string; signature?: string }, subtree: string[]) =>
    insider().post({ address: ip(to), port }, RELAY_PATH, encodeRelay('S4', diff, subtree.map((h) => ({ hostname: h, address: ip(h) }))), { timeoutMs: 5000 });
  const refusedStatus = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      assert.ok(e instanceof SemClientError, String(e));
      return { status: e.status, message: e.message };
    }
    assert.fail('the message was accepted');
  };

  it('a relayed diff with a forged origin is refused and passed on to nobody', async () => {
    const body = s1Diff(['RS-FORGED', '0.5', '1', 'up']);
    // Signed by the relay itself, in S1's name.
    const r = await refusedStatus(relayTo('S2', { body, signature: signMessage(key('S4'), `POST ${DIFF_PATH}`, body) }, ['S3']));
    assert.equal(r.status, 401);
    assert.match(r.message, /signed by S4 but claims to come from S1/);
    // No signature at all.
    const r2 = await refusedStatus(relayTo('S2', { body }, ['S3']));
    assert.equal(r2.status, 401);
    await new Promise((res) => setTimeout(res, 300));
    for (const h of ['S2', 'S3']) assert.equal(stores.get(h)!.get('realserver', 'RS-FORGED'), undefined, h);
  });

  it("a relayed diff whose bytes were altered (the origin's signature kept) is refused", async () => {
    const genuine = s1Diff(['RS-TRUE', '0.5', '1', 'up']);
    const signature = signMessage(key('S1'), `POST ${DIFF_PATH}`, genuine);
    const altered = genuine.replace('RS-TRUE', 'RS-ALTERED');
    const r = await refusedStatus(relayTo('S2', { body: altered, signature }, ['S3']));
    assert.equal(r.status, 401);
    assert.match(r.message, /not signed by the key S1 publishes/);
    await new Promise((res) => setTimeout(res, 300));
    for (const h of ['S2', 'S3']) assert.equal(stores.get(h)!.get('realserver', 'RS-ALTERED'), undefined, h);
  });

  it("an unaltered diff is applied by the relay and passed on with its origin's signature; the relay signs its answer", async () => {
    const genuine = s1Diff(['RS-RELAYED', '0.5', '1', 'up']);
    const signature = signMessage(key('S1'), `POST ${DIFF_PATH}`, genuine);
    // SemClient checks that the answer is signed by the key S2 publishes (it would refuse it otherwise).
    const reply = (await relayTo('S2', { body: genuine, signature }, ['S3'])) as { acked: { peer: string }[] };
    assert.deepEqual(reply.acked.map((a) => a.peer), ['S3']);
    for (const h of ['S2', 'S3']) assert.deepEqual(stores.get(h)!.get('realserver', 'RS-RELAYED'), ['RS-RELAYED', '0.5', '1', 'up'], h);
  });

  it('a pull answer or a pushed snapshot carrying records its sender may not author: those entries are not merged', async () => {
    const s1 = stores.get('S1')!;
    // S1 holds a problem record of S2 that S1 itself detected (detected: no recovery claimed yet).
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'service', 'detected', '-', new Date().toISOString()] });
    const s2Record = s1.get('group', 'S2')!;
    const lamport = internals(s1).replica.clock + 10;
    const evilGroup: RecordFields = ['S2', '127.254.254.254', 'RS2', 'tcp:80', 'member', s2Record[5]];
    const evilProblem: RecordFields = ['S2', 'S3', 'service', 'confirmed', '-', new Date().toISOString()];
    const shared: RecordFields = ['RS-SHARED', '0.1', '2', 'up'];
    // Each entry carries S4's own proof (its origin is S4, truthfully): what is refused here is
    // the authority, not the signature (sem-entry-forgery.test.ts forges the origin).
    const entries = ([
      ['group', 'S2', evilGroup, lamport, 'S4'],
      ['problem', 'S2', evilProblem, lamport, 'S4'],
      ['realserver', 'RS-SHARED', shared, lamport, 'S4'],
    ] as SnapshotEntry[]).map((e): SnapshotEntry => [e[0], e[1], e[2], e[3], e[4], signEntry(key('S4'), e[0], e[1], e[2], e[3])]);
    const packed = (list: SnapshotEntry[]) => packSnapshot({ clock: lamport, seqs: {}, entries: list });
    // S4's store is stopped; an impostor answers at its address and port with S4's key.
    await stores.get('S4')!.stop();
    fake = new SemServer({
      host: ip('S4'),
      port,
      secret: SECRET,
      encrypt: true,
      sign: (label, text) => signMessage(key('S4'), label, text),
      ping: () => ({}),
      onRefused: () => undefined,
      routes: {
        [SUMMARY_PATH]: {
          limit: 1 << 20,
          handler: () => ({
            status: 200,
            body: { digest: 'f'.repeat(64), versions: { group: [['S2', lamport, 'S4']], problem: [['S2', lamport, 'S4']], realserver: [['RS-SHARED', lamport, 'S4'], ['RS-UNSIGNED', lamport, 'S4']] } },
          }),
        },
        [PULL_PATH]: { limit: 1 << 20, handler: () => ({ status: 200, body: { snapshot: packed([...entries, ['realserver', 'RS-UNSIGNED', ['RS-UNSIGNED', '0.1', '2', 'up'], lamport, 'S4']]) } }) },
        '/p2p/sem/snapshot': { limit: 1 << 20, handler: () => ({ status: 200, body: { digest: 'f'.repeat(64) } }) },
      },
    });
    await fake.listen();
    await s1.exchange({ address: ip('S4'), port }, 'S4');
    assert.deepEqual(s1.get('group', 'S2'), s2Record, "S2's group record altered through a pull answer");
    assert.equal(s1.get('problem', 'S2')![1], 'S1', 'a problem record written in the name of S3 through a pull answer');
    assert.deepEqual(s1.get('realserver', 'RS-SHARED'), shared, 'the allowed entry of the same answer is merged');
    assert.equal(s1.get('realserver', 'RS-UNSIGNED'), undefined, 'an entry without its origin\'s proof is not merged');
    const said = refusals.get('S1')!.map((e) => e.reason).join('\n');
    assert.match(said, /S4 may not change the group record of S2/);
    assert.match(said, /S4 may not write a problem record of S2 in the name of S3 \(P1\)/);
    assert.match(said, /not merged: realserver RS-UNSIGNED \(origin S4, Lamport \d+\): it carries no signature of its origin/);

    // The same entries pushed as a snapshot by the insider (signed by S4, fresh): not merged either.
    const s3 = stores.get('S3')!;
    const s3Before = s3.get('group', 'S2');
    const snap = { v: 1, type: 'snapshot', from: 'S4', snapshot: packed(entries.slice(0, 1)), ...freshness() };
    await insider().post({ address: ip('S3'), port }, '/p2p/sem/snapshot', JSON.stringify(snap), { maxAnswerBytes: 1 << 20 }).catch((e: SemClientError) => {
      // The answer is signed by S3 and checked against S3's key: only a refusal would land here.
      throw e;
    });
    assert.deepEqual(s3.get('group', 'S2'), s3Before, "S2's group record altered through a pushed snapshot");
    assert.match(refusals.get('S3')!.map((e) => e.reason).join('\n'), /S4 may not change the group record of S2/);
  });

  it("a snapshot's sequence numbers of another origin are taken only as far as a proof shows them: an insider cannot make S1's next diffs replays", async () => {
    const s1 = stores.get('S1')!;
    const s3 = stores.get('S3')!;
    const floor = () => (s3 as unknown as { guard: { max(o: string): number } }).guard.max('S1');
    const before = floor();
    // A full snapshot pushed by the insider (signed by S4, fresh) claiming S1 is 999,000 diffs further.
    const snap = { v: 1, type: 'snapshot', from: 'S4', snapshot: { clock: internals(s1).replica.clock, seqs: { S1: before + 999_000 }, entries: [] }, ...freshness() };
    await insider().post({ address: ip('S3'), port }, '/p2p/sem/snapshot', JSON.stringify(snap), { maxAnswerBytes: 1 << 20 });
    assert.equal(floor(), before, "S1's sequence floor on S3 is not raised by the insider's word");
    assert.ok((internals(s3).replica as unknown as { seqs: Record<string, number> }).seqs.S1 < before + 999_000);
  });
});
