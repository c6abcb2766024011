// A VM that was away while another rotated its key several times follows the rotations when it
// comes back (lib/sem/key-chain.ts, docs/security.md rule 10): each rotation's old key endorses
// the new one, and the diffs of the VM's own group record carry the last MAX_KEY_CHAIN
// endorsements, so the returning VM walks from the key it holds to the newest. Before, it refused
// the newest record (signed by a key it never saw) until its files were moved away. Bounded: one
// that was away through more rotations than the chain holds does not follow, and says why.
// Three real stores on loopback; rounds an hour apart, so only the explicit exchanges run.
import { strict as assert } from 'assert';
import { LoopbackStores } from '../support/loopback-stores';
import { MAX_KEY_CHAIN } from '../../lib/sem/key-chain';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { RefusalEvent } from '../../lib/records/cluster-api';

const SECRET = 'key-chain-secret-0123456789abcdefghij';

describe('SEM: a VM away through several key rotations of another follows them', function () {
  this.timeout(120_000);
  let net: LoopbackStores;
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });
  const keyOf = (s: ReplicatedStore, h: string) => s.get('group', h)?.[5];
  /** S3 comes back (same folder) and catches up with S1 (whose key it holds) by exchanges. */
  const comeBack = async (s1: ReplicatedStore, refused: string[]) => {
    const s3 = make(3);
    s3.on('refused', (e: RefusalEvent) => refused.push(e.reason));
    await s3.start();
    for (let k = 0; k < 4 && s3.digest() !== s1.digest(); k++) await s3.exchange({ address: net.range.ip(1), port: net.port }, 'S1');
    return s3;
  };

  before(async () => (net = await LoopbackStores.open(3, SECRET, 'key-chain')));
  after(async () => net?.close());

  let stores: ReplicatedStore[];

  it('S3, down while S2 rotated its key three times, takes its newest record and its edits', async () => {
    stores = [1, 2, 3].map(make);
    await net.formIdentical(stores);
    const [s1, s2, s3] = stores;
    const first = keyOf(s3, 'S2');
    await s3.stop();
    for (let i = 0; i < 3; i++) await s2.rotateKey();
    const newest = keyOf(s2, 'S2');
    assert.notEqual(newest, first);
    assert.equal(keyOf(s1, 'S2'), newest, 'S1 followed each rotation live');
    await s2.edit({ file: 'realserver', op: 'Add', record: ['RS-AFTER', '0.2', '1', 'up'] });
    const refused: string[] = [];
    const back = await comeBack(s1, refused);
    assert.equal(keyOf(back, 'S2'), newest, `S3 holds S2's newest key (refusals: ${refused.join(' | ')})`);
    assert.deepEqual(back.get('realserver', 'RS-AFTER'), ['RS-AFTER', '0.2', '1', 'up'], "S2's edit signed with its newest key");
    assert.equal(back.digest(), s1.digest(), 'S3 identical to S1');
    stores[2] = back;
  });

  it(`one away through more rotations than the chain holds (${MAX_KEY_CHAIN} endorsements) does not follow, and says why`, async () => {
    const [s1, s2, s3] = stores;
    const held = keyOf(s3, 'S2');
    await s3.stop();
    for (let i = 0; i < MAX_KEY_CHAIN + 2; i++) await s2.rotateKey();
    const refused: string[] = [];
    const back = await comeBack(s1, refused);
    assert.equal(keyOf(back, 'S2'), held, 'S3 kept the key it held');
    assert.match(refused.join('\n'), /not merged: group S2 \(origin S2, Lamport \d+\): not signed by the key S2 publishes/);
  });
});
