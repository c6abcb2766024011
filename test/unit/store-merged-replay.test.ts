// A diff that a VM learned by anti-entropy (a summary/pull exchange: a partial snapshot, which
// carries no sequence numbers) is a replay when it comes again live: the replay guard refuses it
// (409), exactly as it refuses a diff received live, also after a restart (docs/security.md rule 3).
// Before, the merged entry's (origin, seq) was not marked as seen: the replayed diff passed the
// guard and was judged by the later rules (applied as a no-op for a shared file, 403 for another
// VM's record), depending on which path the original had come by.
// Three real stores on loopback; rounds an hour apart, so only the explicit exchanges run. S1's
// diff reaches S2 alone (as when S3 is cut off from S1): it is made with S1's own key and posted
// to S2, as S1's store would post it.
import { strict as assert } from 'assert';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import { semPost } from '../support/sem-wire';
import { encodeDiff, type WireDiff } from '../../lib/sem/sem-protocol';
import { DIFF_PATH } from '../../lib/sem/fanout';
import { loadOrCreateVmKey } from '../../lib/sem/vm-key';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { Diff } from '../../lib/sem/replica';

const SECRET = 'merged-replay-secret-0123456789abcdef';

describe('SEM: a diff learned by anti-entropy is a replay when it comes again live', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });
  const internals = (s: ReplicatedStore) => s as unknown as { disk: { ownSeq: number }; replica: { clock: number } };

  beforeEach(async () => (net = await LoopbackStores.open(3, SECRET, 'merged-replay')));
  afterEach(async () => net?.close());

  /**
   * Three stores formed; S1's next diff (made by `diff` with S1's next seq and a Lamport above all
   * three) signed with S1's key reaches S2 only; S1 then stops (it sends nothing more). `post`
   * sends that diff again, to an address.
   */
  async function s1DiffToS2Only(diff: (seq: number, lamport: number) => WireDiff) {
    const stores = [1, 2, 3].map(make);
    await net.formIdentical(stores);
    const [s1, s2, s3] = stores;
    const seq = internals(s1).disk.ownSeq + 1;
    const lamport = Math.max(internals(s1).replica.clock, internals(s2).replica.clock, internals(s3).replica.clock) + 1;
    await s1.stop();
    const body = encodeDiff(diff(seq, lamport));
    const key = loadOrCreateVmKey(path.join(net.base, 'S1'), 'S1');
    const post = (ip: string) => semPost(ip, net.port, DIFF_PATH, body, { secret: SECRET, key });
    assert.equal((await post(net.range.ip(2))).status, 200, 'S2 takes S1 #n live');
    return { s2, s3, seq, post };
  }

  it('S3 pulled S1 #n from S2: S1 #n replayed to S3 is refused 409, also after S3 restarts', async () => {
    const { s2, s3, seq, post } = await s1DiffToS2Only((seq, lamport) => ({ file: 'realserver', op: 'Add', record: ['RS-PULLED', '0.5', '1', 'up'], origin: 'S1', seq, lamport }));
    assert.equal(s3.get('realserver', 'RS-PULLED'), undefined);
    // S3 learns it from S2 by a summary/pull exchange (no sequence numbers travel).
    await s3.exchange({ address: net.range.ip(2), port: net.port }, 'S2');
    assert.deepEqual(s3.get('realserver', 'RS-PULLED'), ['RS-PULLED', '0.5', '1', 'up'], 'S3 merged the entry');
    const replay = await post(net.range.ip(3));
    assert.equal(replay.status, 409, `replayed to S3: ${replay.body}`);
    assert.match(replay.body, new RegExp(`replayed diff: S1 #${seq} was already received`));
    // Durable: S3 restarts while S2 is down (so its join learns nothing anew) and still refuses it.
    await s2.stop();
    await s3.stop();
    const back = make(3);
    await back.start();
    const again = await post(net.range.ip(3));
    assert.equal(again.status, 409, `replayed to S3 after its restart: ${again.body}`);
  });

  // A pull carries the keys that differed at the summary, valued as at the pull: one record of a
  // batch made in between, not the rest (bench:failover, two at once: a backup pulled the other
  // manager's `recovered` without the same commit's group Add, then refused that commit live).
  it('S3 merged one record of S1 #n (a batch of two): S1 #n live is applied, not refused as a replay', async () => {
    const rec = (key: string, seq: number, lamport: number): Diff => ({ file: 'realserver', op: 'Add', record: [key, '0.5', '1', 'up'], origin: 'S1', seq, lamport });
    const { s2, s3, post } = await s1DiffToS2Only((seq, lamport) => ({ ...rec('RS-HALF-A', seq, lamport), more: [rec('RS-HALF-B', seq, lamport + 1)] }));
    // S3 merges S2's entry of the first record only (with its proof, S1's signed batch), as a pull
    // planned before the batch and answered after it would bring it.
    const half = (s2 as unknown as { replica: { entries(keys: [string, string][]): unknown[] } }).replica.entries([['realserver', 'RS-HALF-A']]);
    await (s3 as unknown as { mergeSnapshot(s: unknown, from: string): Promise<number> }).mergeSnapshot({ clock: internals(s2).replica.clock, seqs: {}, entries: half }, 'S2');
    assert.ok(s3.get('realserver', 'RS-HALF-A'), 'S3 merged the first record');
    assert.equal(s3.get('realserver', 'RS-HALF-B'), undefined);
    const live = await post(net.range.ip(3));
    assert.equal(live.status, 200, `S1 #n live to S3: ${live.body}`);
    assert.ok(s3.get('realserver', 'RS-HALF-B'), 'S3 holds the whole batch');
    // Now held whole: a replay is refused (and its effect is held).
    const replay = await post(net.range.ip(3));
    assert.equal(replay.status, 409, `replayed to S3: ${replay.body}`);
  });
});
