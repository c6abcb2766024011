// Operator-given key anchors for a newcomer (lib/sem/key-anchors.ts, docs/security.md rule 10,
// "Bootstrap"): a newcomer whose only seed is an insider (S2: its own key and the cluster secret)
// is handed a record of S1 with a key of the insider's making, self-signed, as anti-entropy would
// carry it. Without anchors it takes it (trust on first use, the documented residual); with the
// members' keys copied from a member's group file into its `.keys/anchors`, it refuses that
// record (merged or sent live) and takes S1's true one from S1. Real stores on loopback; the
// insider's seed is a SemServer at S2's address signing with S2's key.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import { semPost } from '../support/sem-wire';
import { waitFor } from '../../harness/wait';
import { SemServer } from '../../lib/sem/sem-http';
import { DIFF_PATH } from '../../lib/sem/fanout';
import { encodeDiff } from '../../lib/sem/sem-protocol';
import { packSnapshot } from '../../lib/sem/entry-proof';
import { anchorsFile, anchorsText } from '../../lib/sem/key-anchors';
import { loadOrCreateVmKey, signMessage, type VmKey } from '../../lib/sem/vm-key';
import type { SnapshotEntry } from '../../lib/sem/replica';
import type { RecordFields } from '../../lib/records/files';
import type { RefusalEvent } from '../../lib/records/cluster-api';

const SECRET = 'key-anchors-secret-0123456789abcdefgh';

describe('SEM: a newcomer with the members\' keys from its operator is not fooled by an insider seed', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  let fake: SemServer | undefined;

  before(async () => (net = await LoopbackStores.open(5, SECRET, 'anchors')));
  after(async () => {
    await fake?.close();
    await net?.close();
  });

  /** A self-signed join diff of `record`'s VM, signed by `key`, as an entry with its proof. */
  const joinEntry = (record: RecordFields, key: VmKey, lamport: number): SnapshotEntry => {
    const body = encodeDiff({ file: 'group', op: 'Add', record, origin: record[0], seq: 1, lamport });
    return ['group', record[0], record, lamport, record[0], { d: body, s: signMessage(key, `POST ${DIFF_PATH}`, body) }];
  };

  it('S3 (anchored) refuses the forged record of S1 and takes the true one; S4 (not anchored) is fooled', async () => {
    const s1 = net.store(1, { syncIntervalMs: 3_600_000 });
    const s2 = net.store(2, { seeds: [net.range.ip(1)], syncIntervalMs: 3_600_000 });
    await s1.start();
    await s2.start();
    await s2.syncAll();
    await waitFor(() => s1.records('group').length === 2 && s1.digest() === s2.digest(), { what: 'S1 and S2 identical', timeoutMs: 20_000 });
    const trueS1 = s1.get('group', 'S1')!;
    const s2Record = s2.get('group', 'S2')!;
    // The operator copies a member's group file to the newcomer (p2p-ha init --trust-group).
    await s1.textsWritten();
    const anchors = anchorsText(fs.readFileSync(path.join(net.base, 'S1', 'group'), 'utf8'));

    // S2 turns insider: it answers at its address with its own true record and a false one of S1.
    await s2.stop();
    const s2Key = loadOrCreateVmKey(path.join(net.base, 'S2'), 'S2');
    const forger = loadOrCreateVmKey(path.join(net.base, 'forger'), 'S1');
    const forgedS1: RecordFields = ['S1', net.range.ip(1), 'RS1', '-', 'member', forger.publicKey];
    let entries = [joinEntry(s2Record, s2Key, 5), joinEntry(forgedS1, forger, 6)];
    fake = new SemServer({
      host: net.range.ip(2),
      port: net.port,
      secret: SECRET,
      encrypt: true,
      sign: (label, text) => signMessage(s2Key, label, text),
      ping: () => ({}),
      onRefused: () => undefined,
      routes: {
        '/p2p/sem/digest': { limit: 1 << 20, handler: () => ({ status: 200, body: { digest: 'f'.repeat(64), snapshot: packSnapshot({ clock: 6, seqs: {}, entries }) } }) },
        '/p2p/sem/snapshot': { limit: 1 << 20, handler: () => ({ status: 200, body: { digest: 'f'.repeat(64) } }) },
      },
    });
    await fake.listen();

    const refused: string[] = [];
    const anchored = (i: number) => {
      fs.mkdirSync(path.dirname(anchorsFile(path.join(net.base, `S${i}`))), { recursive: true, mode: 0o700 });
      fs.writeFileSync(anchorsFile(path.join(net.base, `S${i}`)), anchors, { mode: 0o600 });
      return net.store(i, { seeds: [net.range.ip(2)], syncIntervalMs: 3_600_000 });
    };
    const s3 = anchored(3);
    s3.on('refused', (e: RefusalEvent) => refused.push(e.reason));
    const s4 = net.store(4, { seeds: [net.range.ip(2)], syncIntervalMs: 3_600_000 });
    await s3.start();
    await s4.start();
    // Not anchored: trust on first use, the insider's key is taken (the residual anchors close).
    assert.equal(s4.get('group', 'S1')?.[5], forger.publicKey, 'S4 took the forged record (no anchors)');
    // Anchored: the forged record is refused, S2's true one (signed by the anchored key) taken.
    assert.deepEqual(s3.get('group', 'S2'), s2Record);
    assert.equal(s3.get('group', 'S1'), undefined, 'S3 took the forged record of S1');
    assert.match(refused.join('\n'), /not merged: group S1 \(origin S1, Lamport 6\): not signed by the key S1 publishes/);
    // The same record sent live as S1's join diff: refused too.
    const live = encodeDiff({ file: 'group', op: 'Add', record: forgedS1, origin: 'S1', seq: 7, lamport: 7 });
    const r = await semPost(net.range.ip(3), net.port, DIFF_PATH, live, { secret: SECRET, key: forger });
    assert.equal(r.status, 401, r.body);
    assert.match(r.body, /not signed by the key the anchors file gives/);
    // From S1 itself, S3 takes S1's true record.
    await s3.syncWith({ address: net.range.ip(1), port: net.port }, 'S1');
    assert.deepEqual(s3.get('group', 'S1'), trueS1);

    // The insider's other way: a record of S1 in its own name, shaped as an operator's state
    // change (G4, which a VM holding nothing of S1 takes), carrying the false key. Refused too.
    const before: RecordFields = [...forgedS1];
    const after: RecordFields = ['S1', net.range.ip(1), 'RS1', '-', 'maintenance', forger.publicKey];
    const body = encodeDiff({ file: 'group', op: 'Mod', before, record: after, origin: 'S2', seq: 2, lamport: 6 });
    entries = [joinEntry(s2Record, s2Key, 5), ['group', 'S1', after, 6, 'S2', { d: body, s: signMessage(s2Key, `POST ${DIFF_PATH}`, body) }]];
    const s5 = anchored(5);
    const refused5: string[] = [];
    s5.on('refused', (e: RefusalEvent) => refused5.push(e.reason));
    await s5.start();
    assert.deepEqual(s5.get('group', 'S2'), s2Record);
    assert.equal(s5.get('group', 'S1'), undefined, 'S5 took a record of S1 with the forged key');
    assert.match(refused5.join('\n'), /not merged: group S1 \(origin S2, Lamport 6\): it gives S1 another key than the anchors file does/);
  });
});
