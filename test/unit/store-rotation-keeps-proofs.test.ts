// A key rotation keeps what the merge rules read: a VM that was down while a manager replaced a
// member (claim, then the member's group record deleted) and then rotated its key twice still
// merges the deletion when it comes back, and so does a newcomer seeded by the manager itself.
// The manager's copy of the deletion keeps its signed diff (its time and its edit: rule G2 at
// merge judges the claim at that time) instead of being signed again without them, and the key
// that signed it, two rotations back, is accepted for entries older than the manager's record
// because the record's diff lists it in its chain of rotations
// (lib/sem/key-chain.ts, entry-verify.ts K2; docs/security.md rule 10). Four real stores on
// loopback; rounds an hour apart, so only the explicit exchanges run.
import { strict as assert } from 'assert';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';
import type { RefusalEvent } from '../../lib/records/cluster-api';

const SECRET = 'rotation-keeps-proofs-secret-01234567';

describe('SEM: a manager\'s recovery is merged by a VM that missed it, after the manager rotated its key twice', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });

  before(async () => (net = await LoopbackStores.open(5, SECRET, 'rotation-proofs')));
  after(async () => net?.close());

  it('S4 (through S3) and a newcomer S5 (from S1 itself) end identical without S2', async () => {
    const stores = [1, 2, 3, 4].map(make);
    await net.formIdentical(stores);
    const [s1, s2, s3, s4] = stores;
    await s4.stop();
    await s2.stop();
    // S1, S2's P1 in the ring S1..S4: a dated claim, then S2's group record deleted (G2).
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'confirmed', '-', new Date().toISOString()] });
    await s1.edit({ file: 'group', op: 'Del', record: s1.get('group', 'S2')! });
    await s1.rotateKey();
    await s1.rotateKey();
    await waitFor(() => s3.get('group', 'S2') === undefined && s3.get('group', 'S1')?.[5] === s1.get('group', 'S1')?.[5], { what: "S3 without S2, with S1's newest key", timeoutMs: 10_000 });
    const back = make(4);
    const refused: string[] = [];
    back.on('refused', (e: RefusalEvent) => refused.push(e.reason));
    await back.start();
    for (let k = 0; k < 4 && back.digest() !== s1.digest(); k++) await back.exchange({ address: net.range.ip(3), port: net.port }, 'S3');
    assert.equal(back.get('group', 'S2'), undefined, `S4 merged S2's deletion (refusals: ${refused.join(' | ')})`);
    assert.equal(back.digest(), s1.digest(), 'S4 identical to S1');
    // A newcomer whose seed is S1 gets S1's own copies: the deletion still with its diff (its time).
    const s5 = net.store(5, { seeds: [net.range.ip(1)], syncIntervalMs: 3_600_000 });
    const refused5: string[] = [];
    s5.on('refused', (e: RefusalEvent) => refused5.push(e.reason));
    await s5.start();
    for (let k = 0; k < 4 && s5.digest() !== s1.digest(); k++) await s5.exchange({ address: net.range.ip(1), port: net.port }, 'S1');
    assert.equal(s5.digest(), s1.digest(), `S5 identical to S1 (refusals: ${refused5.join(' | ')})`);
  });
});
