// Follow-up exchanges in real stores (issue 16, ./lib/sem/anti-entropy.ts): a round whose exchange
// changed something starts a chain of exchanges at once, and a store that a pushed snapshot
// changed starts its own, so a difference travels without waiting for the next rounds. Five real
// stores on their own loopback addresses with a round interval of an hour (no periodic round
// runs during the test); S3 alone holds a record (put into its replica directly, as if every diff
// carrying it had been lost). One round on S2 (its partner in round 0: its ring successor S3)
// pulls it, and its chain brings it to another store at once. Bounded waits, no speed asserted.
import { strict as assert } from 'assert';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import { LoopbackStores } from '../support/loopback-stores';
import type { Replica } from '../../lib/sem/replica';
import { signEntry } from '../../lib/sem/entry-proof';
import { loadOrCreateVmKey } from '../../lib/sem/vm-key';
import { waitFor } from '../../harness/wait';

const SECRET = 'follow-up-secret-0123456789abcdefgh';
const N = 5;

describe('SEM: a change found by a round travels on at once (follow-up exchanges)', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];

  before(async () => {
    net = await LoopbackStores.open(N, SECRET, 'follow-up');
    for (let i = 1; i <= N; i++) {
      const s = net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });
      stores.push(s);
      await s.start();
    }
    // Joined by their start-up exchanges (a small cluster: a full exchange with every peer).
    for (const s of stores) await s.syncAll();
    await waitFor(() => stores.every((s) => s.records('group').length === N && s.digest() === stores[0].digest()), { what: 'five identical members', timeoutMs: 30_000 });
  });

  after(async () => net?.close());

  it("one round on S2 pulls S3's record; without any further round a follow-up brings it to a third store; rounds complete it", async () => {
    const [, s2, s3] = stores;
    const replica = (s3 as unknown as { replica: Replica }).replica;
    const record = ['RS-ONLY-S3', '0.5', '1', 'up'];
    // With S3's proof (an entry signature), as S3's own entries carry: peers take only proven entries.
    const lamport = replica.clock + 1;
    const proof = signEntry(loadOrCreateVmKey(s3.folder, 'S3'), 'realserver', 'RS-ONLY-S3', record, lamport);
    replica.apply({ file: 'realserver', op: 'Add', record, origin: 'S3', seq: 0, lamport }, proof);
    assert.deepEqual(
      stores.map((s) => !!s.get('realserver', 'RS-ONLY-S3')),
      [false, false, true, false, false],
    );
    await s2.round();
    assert.deepEqual(s2.get('realserver', 'RS-ONLY-S3'), record, "S2's round pulled it from its ring successor S3");
    // S2's first follow-up asks one of S1, S4, S5 (none holds it yet): it changes that store.
    await waitFor(() => stores.filter((s) => s.get('realserver', 'RS-ONLY-S3')).length >= 3, {
      what: 'the record on a third store, carried by a follow-up alone (rounds are an hour apart)',
      timeoutMs: 20_000,
    });
    // The rounds complete what the chains missed (each store's even rounds reach its successor).
    for (let k = 0; k < 2 * N && !stores.every((s) => s.digest() === s3.digest()); k++) for (const s of stores) await s.round();
    assert.ok(stores.every((s) => s.get('realserver', 'RS-ONLY-S3')));
    await waitFor(() => stores.every((s) => s.digest() === s3.digest()), { what: 'identical files', timeoutMs: 20_000 });
  });
});
