// At merge, a recovery's confirmation is judged at the time of the origin's signed diff that wrote
// the group change (the `ts` its entry proof carries), as a live receiver of that diff judged it
// (docs/security.md rule 7, "at merge"): an expired claim supports no change, whichever path the
// change comes by. Before, confirmations did not expire at merge: an insider that is a manager of
// S2 (S3 here) could not delete S2's group record live with a two-hour-old claim (G2: expired), but
// could by pushing the same two entries as a snapshot; any member could add a backup's group
// record with an expired claim naming it (G3) the same way. Four real stores on loopback; the
// insider holds its own key and the cluster secret, and signs truthfully as itself.
import { strict as assert } from 'assert';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import { semPost } from '../support/sem-wire';
import { encodeDiff, freshness } from '../../lib/sem/sem-protocol';
import { DIFF_PATH } from '../../lib/sem/fanout';
import { packSnapshot } from '../../lib/sem/entry-proof';
import { loadOrCreateVmKey, signMessage } from '../../lib/sem/vm-key';
import type { Diff, SnapshotEntry } from '../../lib/sem/replica';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { RefusalEvent } from '../../lib/records/cluster-api';
import type { RecordFields } from '../../lib/records/files';

const SECRET = 'merge-claim-time-secret-0123456789abc';
const HOUR = 3_600_000;

describe('SEM: confirmations expire at merge too (judged at the time of the signed diff)', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  let stores: ReplicatedStore[];
  const refusals: string[] = [];
  let seq = 1000;
  const internals = (s: ReplicatedStore) => s as unknown as { replica: { clock: number } };

  before(async () => {
    net = await LoopbackStores.open(4, SECRET, 'claim-time');
    stores = [1, 2, 3, 4].map((i) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 }));
    stores[0].on('refused', (e: RefusalEvent) => refusals.push(e.reason));
    await net.formIdentical(stores);
  });
  after(async () => net?.close());

  /** Entries written by `origin`'s own signed diffs (one diff per entry, sent now), as anti-entropy ships them. */
  const signed = (origin: string, edits: Omit<Diff, 'origin' | 'seq' | 'lamport'>[]): SnapshotEntry[] => {
    const key = loadOrCreateVmKey(path.join(net.base, origin), origin);
    let lamport = Math.max(...stores.map((s) => internals(s).replica.clock)) + 10;
    return edits.map((e) => {
      const d = { ...e, origin, seq: ++seq, lamport: ++lamport } as Diff;
      const body = encodeDiff(d);
      return [d.file, d.record[0], d.op === 'Del' ? null : d.record, d.lamport, origin, { d: body, s: signMessage(key, `POST ${DIFF_PATH}`, body) }];
    });
  };
  /** `from` pushes the entries to S1 as a snapshot (signed by `from`, fresh). */
  const push = async (from: string, entries: SnapshotEntry[]) => {
    const clock = Math.max(...entries.map((e) => e[3]));
    const msg = { v: 1, type: 'snapshot', from, snapshot: packSnapshot({ clock, seqs: {}, entries }), ...freshness() };
    const key = loadOrCreateVmKey(path.join(net.base, from), from);
    const r = await semPost(net.range.ip(1), net.port, '/p2p/sem/snapshot', JSON.stringify(msg), { secret: SECRET, key });
    assert.equal(r.status, 200, r.body);
  };
  const claim = (target: string, by: string, backup: string, since: number): RecordFields => [target, by, 'network', 'confirmed', backup, new Date(since).toISOString()];

  it('G2: a manager of S2 deleting S2 with a two-hour-old claim, pushed as a snapshot, is not merged', async () => {
    const s1 = stores[0];
    const s2Record = s1.get('group', 'S2')!;
    // S3 is S2's P2 in the ring S1..S4: the claim is in its own name (P1 allows it), only old.
    const entries = signed('S3', [
      { file: 'problem', op: 'Add', record: claim('S2', 'S3', '-', Date.now() - 2 * HOUR) },
      { file: 'group', op: 'Del', record: s2Record },
    ]);
    await push('S3', entries);
    assert.deepEqual(s1.get('group', 'S2'), s2Record, "S2's group record deleted on an expired claim");
    assert.match(refusals.join('\n'), /entry from S3 not merged: S3 may not delete the group record of S2: no claimed problem record of S2 .* fresh at the time of its diff/);
  });

  it('G3: a backup\'s group record added on an expired claim naming it is not merged; on a fresh one it is', async () => {
    const s1 = stores[0];
    const stale = signed('S4', [
      { file: 'problem', op: 'Add', record: claim('S1', 'S4', 'BK8', Date.now() - 2 * HOUR) },
      { file: 'group', op: 'Add', record: ['BK8', '127.254.0.8', 'RS1', '-'] },
    ]);
    await push('S4', stale);
    assert.equal(s1.get('group', 'BK8'), undefined, 'BK8 added on an expired claim');
    assert.match(refusals.join('\n'), /S4 may not change the group record of BK8: .* fresh at the time of its diff/);
    // The same with a claim dated when the diff was sent: what a live receiver takes, merged too.
    const fresh = signed('S4', [
      { file: 'problem', op: 'Add', record: claim('S1', 'S4', 'BK9', Date.now() - 60_000) },
      { file: 'group', op: 'Add', record: ['BK9', '127.254.0.9', 'RS1', '-'] },
    ]);
    await push('S4', fresh);
    assert.deepEqual(s1.get('group', 'BK9'), ['BK9', '127.254.0.9', 'RS1', '-']);
  });

  it("P1: a manager writing a confirmation in the other manager's name is not merged; keeping the detector in a Mod it is", async () => {
    const s1 = stores[0];
    // S1 and S3 manage S2. S3 (the insider) writes a fresh claim of S2 in S1's name: an Add, as
    // its own signed diff shows, which no live receiver takes (P1).
    const forged = claim('S2', 'S1', '-', Date.now());
    await push('S3', signed('S3', [{ file: 'problem', op: 'Add', record: forged }]));
    assert.notDeepEqual(s1.get('problem', 'S2'), forged, "a confirmation merged in S1's name");
    assert.match(refusals.join('\n'), /S3 may not write a problem record of S2 in the name of S1 \(P1\)/);
    // A status update by a manager that keeps the detector it had (S3 updates S1's claim): merged.
    const held = claim('S2', 'S1', '-', Date.now() - 60_000);
    const update: RecordFields = ['S2', 'S1', 'network', 'recovering', '-', held[5]];
    await push('S3', signed('S3', [{ file: 'problem', op: 'Mod', before: held, record: update }]));
    assert.deepEqual(s1.get('problem', 'S2'), update);
  });

  it('a claim dated in the future supports nothing, live or at merge', async () => {
    const s1 = stores[0];
    const s2Record = s1.get('group', 'S2')!;
    const entries = signed('S3', [
      { file: 'problem', op: 'Add', record: claim('S2', 'S3', '-', Date.now() + 24 * HOUR) },
      { file: 'group', op: 'Del', record: s2Record },
    ]);
    await push('S3', entries);
    assert.deepEqual(s1.get('group', 'S2'), s2Record, "S2's group record deleted on a claim dated tomorrow");
  });
});
