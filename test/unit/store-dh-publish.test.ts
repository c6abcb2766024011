// A VM publishes its X25519 key as soon as it has heard every member speak wire version 3, not at
// its next anti-entropy round (lib/sem/replicated-store.ts heardVersion): until it does, every
// answer between it and its peers is signed and verified with Ed25519 instead of tagged by pair key
// (docs/performance.md, fourth pass: in bench:sem, with rounds 5 s apart, the measured edits began
// before some VMs had published, and the CPU per edit of the same code moved by half between runs).
// Three real stores, rounds an hour apart: no round runs during the test.
import { strict as assert } from 'assert';
import { LoopbackStores } from '../support/loopback-stores';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import { fromMember } from '../../lib/records/records';
import { waitFor } from '../../harness/wait';

const SECRET = 'dh-publish-secret-0123456789abcdefghijkl';

describe('SEM: the X25519 key is published once every member was heard at version 3', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  after(async () => net?.close());

  it('without waiting for a round, and the next edit is acknowledged by pair key', async () => {
    net = await LoopbackStores.open(3, SECRET, 'dh-publish');
    const stores: ReplicatedStore[] = [1, 2, 3].map((i) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 }));
    await net.formIdentical(stores);
    const published = () => stores.every((s) => s.records('group').length === 3 && s.records('group').every((r) => fromMember(r).dhKey !== '-'));
    // The exchanges of formIdentical were heard by every store; an edit from each reaches the others.
    for (const s of stores) await s.edit({ file: 'realserver', op: 'Add', record: [`RS-${s.identity.hostname}`, '0.1', '1', 'up'] });
    await waitFor(published, {
      what: `every member's X25519 key in every group file, with no round (${JSON.stringify(stores.map((s) => s.records('group').map((r) => `${r[0]}:${fromMember(r).dhKey === '-' ? '-' : 'key'}`)))})`,
      timeoutMs: 20_000,
    });
    const [s1] = stores;
    const before = s1.answersAccepted();
    const r = await s1.edit({ file: 'realserver', op: 'Mod', before: ['RS-S1', '0.1', '1', 'up'], record: ['RS-S1', '0.2', '1', 'up'] });
    assert.deepEqual(r.acked.map((a) => a.peer).sort(), ['S2', 'S3'], JSON.stringify(r.failed));
    const after = s1.answersAccepted();
    assert.equal(after.pair - before.pair, 2, `both answers by pair key (${JSON.stringify({ before, after })})`);
  });
});
