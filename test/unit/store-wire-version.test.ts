// Every answer of a version-2 store announces its wire version (issue 15 with 16). A store notes
// the version each peer announces in its requests and in its answers; an answer without the header
// counts as version 1. Before the store passed its version to its server, every answer announced
// none, so after each exchange a store took its partner for a version-1 VM: its next catch-up with
// it was the full digest exchange (whole snapshots on a mismatch) and the fan-out would not make it
// a relay. Three real stores (two at version 2, one at version 1) on their own loopback addresses;
// bounded waits, no speed asserted.
import { strict as assert } from 'assert';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import { LoopbackStores } from '../support/loopback-stores';
import type { LoopbackRange } from '../../harness/net';
import { waitFor } from '../../harness/wait';

const SECRET = 'wire-version-secret-0123456789abcdef';

describe('SEM: the wire version a peer announces, in requests and in answers', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  let range: LoopbackRange;
  const stores: ReplicatedStore[] = [];

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'wire-version');
    range = net.range;
    for (const [i, version] of [[1, 2], [2, 2], [3, 1]] as const) {
      const s = net.store(i, { seeds: i === 1 ? [] : [range.ip(1)], syncIntervalMs: 200, protocolVersion: version });
      stores.push(s);
      await s.start();
    }
    await waitFor(() => stores.every((s) => s.records('group').length === 3), { what: 'three members everywhere', timeoutMs: 30_000 });
  });

  after(async () => net?.close());

  it('a version-2 store sees its version-2 peer as version 2 after its own requests were answered, and the version-1 peer as 1', async () => {
    const [s1, s2] = stores;
    // S1 asks S2 itself: what S1 knows of S2 then comes from S2's answers.
    await s1.exchange({ address: range.ip(2), port: s1.port }, 'S2');
    assert.equal(s1.peerWireVersions().S2, 2, 'S2 answered as version 2');
    await s1.syncAll();
    assert.deepEqual(s1.peerWireVersions(), { S2: 2, S3: 1 });
    await s2.syncAll();
    assert.deepEqual(s2.peerWireVersions(), { S1: 2, S3: 1 });
  });
});
