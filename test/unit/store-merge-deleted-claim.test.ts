// A VM that was down while a manager replaced a member and then deleted the claim behind it (the
// problem record) must still converge when it comes back: it merges the group deletion after the
// claim is gone, and rule G2 at merge finds the claim in the deletion's signed diff
// (lib/sem/edit-authority.ts deletedProblem). Before, it refused the deletion for good and stayed
// diverged (found by bench:failover's re-arm). Four real stores on loopback; rounds an hour apart,
// so only the explicit exchanges run.
import { strict as assert } from 'assert';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const SECRET = 'merge-deleted-claim-secret-0123456789';

describe('SEM: a group deletion merged after its claim was deleted (G2 at merge)', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });

  before(async () => (net = await LoopbackStores.open(4, SECRET, 'deleted-claim')));
  after(async () => net?.close());

  it('S4, down while S1 fenced out S2 and cleared its claim, ends identical without S2', async () => {
    const stores = [1, 2, 3, 4].map(make);
    await net.formIdentical(stores);
    const [s1, s2, s3, s4] = stores;
    await s4.stop();
    await s2.stop();
    // S1, S2's P1 in the ring S1..S4: claim, delete S2's group record, then delete the claim.
    const claim = ['S2', 'S1', 'network', 'confirmed', '-', new Date().toISOString()];
    await s1.edit({ file: 'problem', op: 'Add', record: claim });
    await s1.edit({ file: 'group', op: 'Del', record: s1.get('group', 'S2')! });
    await s1.edit({ file: 'problem', op: 'Del', record: claim });
    await waitFor(() => s3.get('group', 'S2') === undefined && s3.get('problem', 'S2') === undefined, { what: "S3 without S2's record and claim", timeoutMs: 10_000 });
    // S4 comes back (same folder, new process state) and catches up by exchanges.
    const back = make(4);
    await back.start();
    for (let k = 0; k < 5 && back.digest() !== s1.digest(); k++) {
      await back.syncAll();
      await s1.syncAll();
    }
    assert.equal(back.get('group', 'S2'), undefined, "S4 merged S2's deletion");
    assert.equal(back.get('problem', 'S2'), undefined);
    assert.equal(back.digest(), s1.digest(), 'S4 identical to S1');
    assert.equal(s3.digest(), s1.digest());
  });
});

// The same for a backup's group record (G3): S1 added S2b's record on its claim naming S2b as S2's
// backup, then deleted the claim. Before, a VM that merged S2b's record after that refused it for
// good (G3 read only the claims held now) and stayed diverged.
describe("SEM: a backup's group record merged after the claim naming it was deleted (G3 at merge)", function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });

  before(async () => (net = await LoopbackStores.open(4, SECRET, 'deleted-claim-g3')));
  after(async () => net?.close());

  it("S4, down while S1 added S2's backup and cleared its claim, ends identical with the backup", async () => {
    const stores = [1, 2, 3, 4].map(make);
    await net.formIdentical(stores);
    const [s1, s2, s3, s4] = stores;
    await s4.stop();
    await s2.stop();
    const backup = ['S2b', '127.254.0.21', 'RS1', '-'];
    const claim = ['S2', 'S1', 'network', 'recovering', 'S2b', new Date().toISOString()];
    await s1.edit({ file: 'problem', op: 'Add', record: claim });
    await s1.edit({ file: 'group', op: 'Add', record: backup });
    await s1.edit({ file: 'problem', op: 'Del', record: claim });
    await waitFor(() => s3.get('group', 'S2b') !== undefined && s3.get('problem', 'S2') === undefined, { what: "S3 with S2b's record and without the claim", timeoutMs: 10_000 });
    const back = make(4);
    await back.start();
    for (let k = 0; k < 5 && back.digest() !== s1.digest(); k++) {
      await back.syncAll();
      await s1.syncAll();
    }
    assert.deepEqual(back.get('group', 'S2b'), backup, "S4 merged S2b's record");
    assert.equal(back.get('problem', 'S2'), undefined);
    assert.equal(back.digest(), s1.digest(), 'S4 identical to S1');
  });
});
