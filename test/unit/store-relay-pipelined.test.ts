// A relay passes a diff on before its own durable write, and its acknowledgement still waits for
// that write (lib/sem/fanout.ts, acknowledgement rule; docs/scale.md). Three real stores on their
// own loopback addresses; S1 sends an edit along a tree of one relay (S2) with one child (S3), as
// it does past DIRECT_MAX peers. S2's durable save is held open by the test: S3 must receive the
// diff while S2's save is still pending (a relay that forwarded only after its own write would
// never pass it on while the write is held: the wait for S3 times out), and S1's edit must not
// resolve while S2's save is held. Released, S1's edit counts S2 and S3 as acknowledged.
// Bounded waits, no speed asserted.
import { WIRE_VERSION } from '../../lib/sem/sem-protocol';
import { strict as assert } from 'assert';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { FanoutResult, Peer, SignedDiff } from '../../lib/sem/fanout';
import type { EditResult } from '../../lib/records/cluster-api';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const SECRET = 'relay-pipelined-secret-0123456789abcdef';

/** The parts of a store this test reaches into: its fan-out and its durable files. */
interface Inside {
  fanout: { send(d: SignedDiff, peers: Peer[]): Promise<FanoutResult>; viaRelay(d: SignedDiff, chunk: Peer[]): Promise<FanoutResult> };
  disk: { save(files: Iterable<string>): Promise<void> };
}
const inside = (s: ReplicatedStore) => s as unknown as Inside;

describe('SEM: a relay passes the diff on before its own durable write; its acknowledgement waits for it', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'relay-pipelined');
    for (const i of [1, 2, 3]) {
      // No periodic rounds during the test: the diff must reach S3 through the relay only.
      const s = net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 600_000 });
      stores.push(s);
      await s.start();
    }
    await waitFor(
      async () => {
        if (stores.every((s) => s.records('group').length === 3)) return true;
        for (const s of stores) await s.syncAll();
        return false;
      },
      { what: 'three members everywhere', timeoutMs: 30_000 },
    );
    // S1 must know S2 speaks wire version 2 or later to choose it as a relay.
    await stores[0].syncAll();
    assert.equal(stores[0].peerWireVersions().S2, WIRE_VERSION);
  });

  after(async () => net?.close());

  it('S3 has the diff while relay S2 is still writing it; S1 is answered only after S2 wrote it', async () => {
    const [s1, s2, s3] = stores;
    // S1 sends every edit through the tree path: S2 relays to S3.
    const f1 = inside(s1).fanout;
    f1.send = (d, peers) => f1.viaRelay(d, [...peers].sort((a, b) => a.hostname.localeCompare(b.hostname)));
    // S2's durable writes are held until the test releases them.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let s2Saved = false;
    const disk2 = inside(s2).disk;
    const save = disk2.save.bind(disk2);
    disk2.save = (files) => save(files).then(() => gate).then(() => void (s2Saved = true));

    let result: EditResult | undefined;
    const editing = s1.edit({ file: 'realserver', op: 'Add', record: ['RS9', '0.5', '3', 'up'] }).then((r) => (result = r));
    try {
      await waitFor(() => s3.get('realserver', 'RS9') !== undefined, { what: 'S3 to receive the diff while S2 is still writing it', timeoutMs: 15_000 });
      assert.equal(s2Saved, false);
      assert.ok(s2.get('realserver', 'RS9'), 'S2 applied the diff in memory');
      // S2's write is still held: S1 must not have been answered. A short, bounded look.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(result, undefined, 'S1 was answered before relay S2 had written the diff durably');
    } finally {
      release();
    }
    await editing;
    assert.equal(s2Saved, true);
    assert.deepEqual(result!.acked.map((a) => a.peer).sort(), ['S2', 'S3']);
    assert.deepEqual(result!.failed, []);
  });
});
