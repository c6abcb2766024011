// The sender's order of work for an edit (issue 16, docs/performance.md "sender"): once its own
// save is done, the frames to every peer are written before the edit's own `change` event and its
// listeners run, so their time is not added to every peer's acknowledgement. Over HTTP (no stream
// yet) the same holds: the requests are out before the listeners run. The store's own bookkeeping
// of a group change (keys, pair keys) still happens before the frames are made.
import { strict as assert } from 'assert';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { ChangeEvent } from '../../lib/records/cluster-api';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const SECRET = 'send-order-secret-0123456789abcdef';

interface Inside {
  client: { streamOpen(t: { address: string; port: number }): boolean; retained(): { inFlight: number } };
}
const inside = (s: ReplicatedStore) => s as unknown as Inside;

describe('SEM sender: frames out before the edit’s own change listeners', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'send-order');
    for (const i of [1, 2, 3]) stores.push(net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 600_000 }));
    await net.formIdentical(stores);
  });

  after(async () => net?.close());

  it('a local edit’s change event sees both requests already in flight on the streams', async () => {
    const [s1, s2, s3] = stores;
    const target = (s: ReplicatedStore) => ({ address: s.identity.address, port: net.port });
    let n = 0;
    await waitFor(
      async () => {
        await s1.edit({ file: 'realserver', op: 'Add', record: [`RS${n++}`, '0.1', '1', 'up'] });
        return [s2, s3].every((p) => inside(s1).client.streamOpen(target(p)));
      },
      { what: 'streams from S1 to S2 and S3', timeoutMs: 15_000, intervalMs: 200 },
    );
    const seen: { line: string; inFlight: number }[] = [];
    const listener = (c: ChangeEvent) => {
      if (c.local) seen.push({ line: c.line, inFlight: inside(s1).client.retained().inFlight });
    };
    s1.on('change', listener);
    try {
      const r = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS-order', '0.2', '1', 'up'] });
      assert.equal(r.acked.length, 2, JSON.stringify(r.failed));
    } finally {
      s1.off('change', listener);
    }
    assert.equal(seen.length, 1);
    assert.equal(seen[0].inFlight, 2, 'the frames to both peers were written before the change listeners ran');
    // And the edit is on both peers, as before.
    for (const p of [s2, s3]) assert.ok(p.get('realserver', 'RS-order'));
  });
});
