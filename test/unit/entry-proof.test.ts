// Per-entry origin proofs (issue 14, docs/security.md rule 10): the packing of proofs beside a
// snapshot's entries, the verifier of one entry (d proofs: the origin's signed diff; e proofs: the
// origin's signature over the entry) and the choice of keys (K1 own records, K2 everything else),
// and the upgrade path of a state written before proofs existed.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generateKeyPairSync } from 'crypto';
import { attachProofs, EntryProof, packSnapshot, signEntry } from '../../lib/sem/entry-proof';
import { GroupEntry, keysFor, ownRecordKeys, proofRefusal, provenEntries } from '../../lib/sem/entry-verify';
import { encodeDiff, validateSnapshot, WireDiff } from '../../lib/sem/sem-protocol';
import { Replica, SnapshotEntry } from '../../lib/sem/replica';
import { publicKeyB64, signMessage, VmKey } from '../../lib/sem/vm-key';
import { DIFF_PATH } from '../../lib/sem/fanout';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { DurableFiles } from '../../lib/sem/durable-files';
import type { RecordFields } from '../../lib/records/files';

const newKey = (hostname: string): VmKey => {
  const privateKey = generateKeyPairSync('ed25519').privateKey;
  return { hostname, privateKey, publicKey: publicKeyB64(privateKey), file: '-' };
};
/** The key of `holder` used to sign in the name of `hostname` (a forgery when they differ). */
const as = (holder: VmKey, hostname: string): VmKey => ({ ...holder, hostname });
const member = (h: string, k: VmKey | string, address = '10.0.0.1'): RecordFields => [h, address, 'RS1', 'tcp:80', 'member', typeof k === 'string' ? k : k.publicKey];
/** A diff as its origin sends it, and its proof. */
const signedDiff = (key: VmKey, d: WireDiff): EntryProof => {
  const body = encodeDiff(d);
  return { d: body, s: signMessage(key, `POST ${DIFF_PATH}`, body) };
};
const entry = (file: SnapshotEntry[0], key: string, value: RecordFields | null, lamport: number, origin: string, proof?: EntryProof): SnapshotEntry =>
  proof ? [file, key, value, lamport, origin, proof] : [file, key, value, lamport, origin];

describe('entry proofs: packing', () => {
  it('packs each proof once (a batch shares one), keeps the entries readable by a release without proofs, and reads them back', () => {
    const s1 = newKey('S1');
    const p = signedDiff(s1, { file: 'realserver', op: 'Add', record: ['RS1', '0.1', '2', 'up'], origin: 'S1', seq: 1, lamport: 5, more: [{ file: 'realserver', op: 'Add', record: ['RS2', '0.1', '2', 'up'], origin: 'S1', seq: 1, lamport: 6 }] });
    const e = signEntry(s1, 'reservation', 'S2', null, 7);
    const snap = {
      clock: 7,
      seqs: { S1: 1 },
      entries: [entry('realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 5, 'S1', p), entry('realserver', 'RS2', ['RS2', '0.1', '2', 'up'], 6, 'S1', p), entry('reservation', 'S2', null, 7, 'S1', e), entry('problem', 'S9', null, 3, 'S1')],
    };
    const packed = JSON.parse(JSON.stringify(packSnapshot(snap)));
    assert.equal(packed.proofs.length, 2, 'the batch proof once, the entry proof once');
    assert.deepEqual(packed.proofOf, [0, 0, 1, -1]);
    for (const x of packed.entries) assert.equal(x.length, 5, 'entries stay 5-tuples on the wire');
    const back = validateSnapshot(packed);
    assert.deepEqual(back.entries.map((x) => x[5]), [p, p, e, undefined]);
    assert.strictEqual(back.entries[0][5], back.entries[1][5], 'one proof object for the batch');
    assert.equal(packSnapshot(snap, true).entries.length, 3, 'signedOnly leaves the unproven entry out');
  });

  it('a malformed proof table or proof leaves entries without a proof (then refused), never throws', () => {
    const entries: SnapshotEntry[] = [entry('realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 5, 'S1')];
    for (const raw of [{ proofs: 'x', proofOf: [0] }, { proofs: [[1, 2]], proofOf: [0] }, { proofs: [[null, 'x'.repeat(500)]], proofOf: [0] }, { proofs: [[null, 'S1 x']], proofOf: [7] }, { proofs: [[null, 'S1 x']], proofOf: [0, 0] }]) {
      const copy = entries.map((x) => x.slice() as SnapshotEntry);
      attachProofs(raw, copy);
      assert.equal(copy[0][5], undefined, JSON.stringify(raw).slice(0, 60));
    }
  });
});

describe('entry proofs: one entry', () => {
  const s1 = newKey('S1');
  const s3 = newKey('S3');
  const rec: RecordFields = ['RS1', '0.1', '2', 'up'];

  it("a d proof proves each record its origin's diff writes, a batch's records at their own Lamport times, a Mod's old key as a tombstone", () => {
    const batch = signedDiff(s1, { file: 'realserver', op: 'Add', record: rec, origin: 'S1', seq: 4, lamport: 10, more: [{ file: 'problem', op: 'Del', record: ['S2', 'S1', 'service', 'detected', '-', '-'], origin: 'S1', seq: 4, lamport: 11 }] });
    assert.equal(proofRefusal(entry('realserver', 'RS1', rec, 10, 'S1', batch), [s1.publicKey]), null);
    assert.equal(proofRefusal(entry('problem', 'S2', null, 11, 'S1', batch), [s1.publicKey]), null);
    const rename = signedDiff(s1, { file: 'realserver', op: 'Mod', before: rec, record: ['RS9', '0.1', '2', 'up'], origin: 'S1', seq: 5, lamport: 12 });
    assert.equal(proofRefusal(entry('realserver', 'RS1', null, 12, 'S1', rename), [s1.publicKey]), null);
    assert.equal(proofRefusal(entry('realserver', 'RS9', ['RS9', '0.1', '2', 'up'], 12, 'S1', rename), [s1.publicKey]), null);
  });

  it('refuses an entry its proof does not write: another value, time, key, file or origin, or an altered body', () => {
    const p = signedDiff(s1, { file: 'realserver', op: 'Add', record: rec, origin: 'S1', seq: 4, lamport: 10 });
    const bad: [SnapshotEntry, RegExp][] = [
      [entry('realserver', 'RS1', ['RS1', '0.9', '2', 'up'], 10, 'S1', p), /does not write it/],
      [entry('realserver', 'RS1', null, 10, 'S1', p), /does not write it/],
      [entry('realserver', 'RS1', rec, 11, 'S1', p), /does not write it/],
      [entry('problem', 'RS1', rec, 10, 'S1', p), /does not write it/],
      [entry('realserver', 'RS1', rec, 10, 'S3', p), /signed by S1, not by its origin S3/],
      [entry('realserver', 'RS1', ['RS1', '0.9', '2', 'up'], 10, 'S1', { d: p.d!.replace('0.1', '0.9'), s: p.s }), /not signed by the key S1 publishes/],
      [entry('realserver', 'RS1', rec, 10, 'S1', { d: '{"not":"a diff"}', s: p.s }), /not a valid diff/],
      [entry('realserver', 'RS1', rec, 10, 'S1'), /carries no signature/],
    ];
    for (const [e, why] of bad) assert.match(proofRefusal(e, [s1.publicKey]) ?? 'accepted', why);
  });

  it('refuses a proof signed by another key than the origin publishes (an insider signing in its name)', () => {
    const forged = signedDiff(as(s3, 'S1'), { file: 'realserver', op: 'Add', record: rec, origin: 'S1', seq: 4, lamport: 10 });
    assert.match(proofRefusal(entry('realserver', 'RS1', rec, 10, 'S1', forged), [s1.publicKey]) ?? '', /not signed by the key S1 publishes/);
    const e = signEntry(as(s3, 'S1'), 'realserver', 'RS1', rec, 10);
    assert.match(proofRefusal(entry('realserver', 'RS1', rec, 10, 'S1', e), [s1.publicKey]) ?? '', /not signed by the key S1 publishes/);
    assert.match(proofRefusal(entry('realserver', 'RS1', rec, 10, 'S1', signEntry(s1, 'realserver', 'RS1', rec, 10)), []) ?? '', /publishes no key/);
  });

  it('an e proof covers the whole entry: a changed value or time is refused', () => {
    const e = signEntry(s1, 'realserver', 'RS1', rec, 10);
    assert.equal(proofRefusal(entry('realserver', 'RS1', rec, 10, 'S1', e), [s1.publicKey]), null);
    assert.match(proofRefusal(entry('realserver', 'RS1', ['RS1', '0.2', '2', 'up'], 10, 'S1', e), [s1.publicKey]) ?? '', /not signed/);
    assert.match(proofRefusal(entry('realserver', 'RS1', rec, 11, 'S1', e), [s1.publicKey]) ?? '', /not signed/);
  });
});

describe('entry proofs: which keys count (K1, K2)', () => {
  const k1 = newKey('S1');
  const k2 = newKey('S1');
  const s3 = newKey('S3');

  it('K1: a key held for a VM is the only one its own record may be changed with; nothing held: the record offers its key', () => {
    const held: GroupEntry = { value: member('S1', k1), lamport: 3 };
    const mod = signedDiff(as(s3, 'S1'), { file: 'group', op: 'Mod', before: member('S1', k1), record: member('S1', s3), origin: 'S1', seq: 2, lamport: 4 });
    const e = entry('group', 'S1', member('S1', s3), 4, 'S1', mod);
    assert.deepEqual(ownRecordKeys(e, held), [k1.publicKey]);
    assert.match(proofRefusal(e, ownRecordKeys(e, held)) ?? '', /not signed by the key S1 publishes/);
    // A newcomer holding nothing takes a self-signed record (the cluster secret admits keys).
    const join = signedDiff(k1, { file: 'group', op: 'Add', record: member('S1', k1), origin: 'S1', seq: 1, lamport: 1 });
    const j = entry('group', 'S1', member('S1', k1), 1, 'S1', join);
    assert.equal(proofRefusal(j, ownRecordKeys(j, undefined)), null);
    // A held record without a key (a backup added by its manager), or a tombstone: as nothing held.
    assert.equal(proofRefusal(j, ownRecordKeys(j, { value: member('S1', '-'), lamport: 0 })), null);
    assert.equal(proofRefusal(j, ownRecordKeys(j, { value: null, lamport: 0 })), null);
  });

  it("a rotation (signed by the old key) is taken by a holder of the old key and by a newcomer; the origin's older entries stay valid under the old key, newer ones do not", () => {
    const rot = signedDiff(k1, { file: 'group', op: 'Mod', before: member('S1', k1), record: member('S1', k2), origin: 'S1', seq: 9, lamport: 20 });
    const e = entry('group', 'S1', member('S1', k2), 20, 'S1', rot);
    assert.equal(proofRefusal(e, ownRecordKeys(e, { value: member('S1', k1), lamport: 3 })), null, 'holder of the old key');
    assert.equal(proofRefusal(e, ownRecordKeys(e, undefined)), null, 'newcomer');
    const g: GroupEntry = { value: member('S1', k2), lamport: 20, proof: rot };
    const before = entry('realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 15, 'S1', signEntry(k1, 'realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 15));
    assert.equal(proofRefusal(before, keysFor('S1', 15, g)), null, 'written before the rotation, under the old key');
    const after = entry('realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 25, 'S1', signEntry(k1, 'realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 25));
    assert.match(proofRefusal(after, keysFor('S1', 25, g)) ?? '', /not signed/, 'the old key after the rotation');
  });

  it("a departed VM (its record deleted by a manager's signed Del): entries older than the deletion verify under the key the Del shows, newer ones never", () => {
    const m = newKey('S3');
    const del = signedDiff(m, { file: 'group', op: 'Del', record: member('S1', k1), origin: 'S3', seq: 4, lamport: 30 });
    const tomb: GroupEntry = { value: null, lamport: 30, proof: del };
    assert.deepEqual(keysFor('S1', 12, tomb), [k1.publicKey]);
    assert.deepEqual(keysFor('S1', 31, tomb), [], 'a revoked VM signs nothing new');
    assert.deepEqual(keysFor('S1', 12, undefined), []);
  });

  it('provenEntries: a newcomer learns the keys and the records of one snapshot together; a forged entry in a known VM\'s name is left out with its reason', () => {
    const a = newKey('S1');
    const b = newKey('S2');
    const i = newKey('S4');
    const joinA = signedDiff(a, { file: 'group', op: 'Add', record: member('S1', a), origin: 'S1', seq: 1, lamport: 1 });
    const joinB = signedDiff(b, { file: 'group', op: 'Add', record: member('S2', b, '10.0.0.2'), origin: 'S2', seq: 1, lamport: 2 });
    const conf: RecordFields = ['S2', 'S1', 'service', 'confirmed', '-', new Date().toISOString()];
    const entries: SnapshotEntry[] = [
      // Listed before the group records on purpose: group records are judged first.
      entry('problem', 'S2', conf, 9, 'S1', signEntry(as(i, 'S1'), 'problem', 'S2', conf, 9)),
      entry('realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 8, 'S1', signEntry(a, 'realserver', 'RS1', ['RS1', '0.1', '2', 'up'], 8)),
      entry('group', 'S1', member('S1', a), 1, 'S1', joinA),
      entry('group', 'S2', member('S2', b, '10.0.0.2'), 2, 'S2', joinB),
      entry('realserver', 'RS2', ['RS2', '0.1', '2', 'up'], 8, 'S9', signEntry(as(i, 'S9'), 'realserver', 'RS2', ['RS2', '0.1', '2', 'up'], 8)),
    ];
    const refused: string[] = [];
    const ok = provenEntries(entries, () => undefined, (e, why) => refused.push(`${e[0]} ${e[1]}: ${why}`));
    assert.deepEqual(ok.map((e) => `${e[0]} ${e[1]}`), ['realserver RS1', 'group S1', 'group S2']);
    assert.deepEqual(refused, ['problem S2: not signed by the key S1 publishes', 'realserver RS2: its origin S9 publishes no key here']);
  });
});

describe('entry proofs: upgrade of a state written before proofs existed', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-entry-proof-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("re-signs this VM's own entries at load (e proofs under its key); other origins' unproven entries are kept and never shipped", async () => {
    // A state as a release without proofs wrote it: S1's own record and realserver record, S2's record.
    const r = new Replica();
    r.apply({ file: 'group', op: 'Add', record: ['S1', '127.0.0.1', 'RS1', 'tcp:80'], origin: 'S1', seq: 1, lamport: 1 });
    r.apply({ file: 'realserver', op: 'Add', record: ['RS1', '0.1', '2', 'up'], origin: 'S1', seq: 2, lamport: 2 });
    r.apply({ file: 'group', op: 'Add', record: ['S2', '127.0.0.2', 'RS1', 'tcp:80'], origin: 'S2', seq: 1, lamport: 3 });
    const old = new DurableFiles(dir, 'S1', r);
    old.ownSeq = 2;
    await old.init();
    await old.close();
    const store = new ReplicatedStore({ identity: { hostname: 'S1', address: '127.0.0.1', realServer: 'RS1', services: 'tcp:80' }, folder: dir, secret: 'entry-proof-upgrade-secret-0123456789' });
    const replica = (store as unknown as { replica: Replica }).replica;
    const mine = replica.snapshot().entries.filter((e) => e[4] === 'S1');
    assert.equal(mine.length, 2);
    for (const e of mine) assert.equal(proofRefusal(e, [store.publicKey]), null, `${e[0]} ${e[1]} re-signed by S1`);
    const s2 = replica.entries([['group', 'S2']])[0];
    assert.deepEqual(s2.slice(0, 5), ['group', 'S2', ['S2', '127.0.0.2', 'RS1', 'tcp:80'], 3, 'S2'], 'kept locally');
    assert.equal(s2[5], undefined);
    const shipped = (store as unknown as { wireSnapshot(s: unknown): { entries: SnapshotEntry[] } }).wireSnapshot(replica.snapshot());
    assert.deepEqual(shipped.entries.map((e) => `${e[0]} ${e[1]}`).sort(), ['group S1', 'realserver RS1'], "S2's unproven record is not shipped");

    // A key rotation: the record's change is signed by the old key (what holders of it check), and
    // S1's other entries are signed again under the new key (what a newcomer will check).
    const oldKey = store.publicKey;
    const newKey = await store.rotateKey();
    assert.notEqual(newKey, oldKey);
    const g = replica.entries([['group', 'S1']])[0];
    assert.equal(g[2]![5], newKey);
    assert.equal(proofRefusal(g, ownRecordKeys(g, { value: ['S1', '127.0.0.1', 'RS1', 'tcp:80', 'member', oldKey], lamport: 1 })), null, 'the rotation, checked by a holder of the old key');
    assert.equal(proofRefusal(g, [newKey]) !== null, true, 'the record change is not signed by the new key');
    const rs = replica.entries([['realserver', 'RS1']])[0];
    assert.equal(proofRefusal(rs, [newKey]), null, 'RS1 re-signed under the new key');
    await store.stop();
  });
});
