// Diffs on the SEM stream between real stores (lib/sem/sem-stream.ts): once the stores have talked,
// S1's diffs to S2 and S3 travel on one stream per peer; when those streams break in the middle of
// a burst of edits, no edit that a peer acknowledged is missing from that peer at the moment of the
// acknowledgement, the next edits go on (over HTTP, then a reopened stream), and after an exchange
// the three stores hold identical files. Bounded waits, no speed asserted.
import { strict as assert } from 'assert';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { EditResult } from '../../lib/records/cluster-api';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const SECRET = 'stream-break-secret-0123456789abcdef';

interface Inside {
  client: { streamOpen(t: { address: string; port: number }): boolean };
  server: { load: { streams: number }; streams: Set<{ destroy(): void }> };
}
const inside = (s: ReplicatedStore) => s as unknown as Inside;

describe('SEM stream between stores: broken mid-burst, nothing acknowledged is lost', function () {
  this.timeout(90_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'stream-break');
    for (const i of [1, 2, 3]) stores.push(net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 600_000 }));
    await net.formIdentical(stores);
  });

  after(async () => net?.close());

  it('diffs travel on streams; a burst survives their breaking; files identical after', async () => {
    const [s1, s2, s3] = stores;
    const peers = [s2, s3];
    const target = (s: ReplicatedStore) => ({ address: s.identity.address, port: net.port });
    await s1.edit({ file: 'realserver', op: 'Add', record: ['RS0', '0.1', '1', 'up'] });
    await waitFor(() => peers.every((p) => inside(s1).client.streamOpen(target(p))), { what: 'streams from S1 to S2 and S3', timeoutMs: 15_000 });
    assert.ok(inside(s2).server.load.streams >= 1);

    const missing: string[] = [];
    let done = 0;
    let broken = false;
    const check = (name: string) => (r: EditResult) => {
      // Acknowledged means durable at that peer: it must hold the record now.
      for (const a of r.acked) {
        const p = stores.find((s) => s.identity.hostname === a.peer)!;
        if (!p.get('realserver', name)) missing.push(`${name} at ${a.peer}`);
      }
      done += 1;
      if (done === 10 && !broken) {
        broken = true;
        for (const p of peers) inside(p).server.streams.forEach((s) => s.destroy());
      }
      return r;
    };
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => s1.edit({ file: 'realserver', op: 'Add', record: [`RS${i + 1}`, '0.5', '2', 'up'] }).then(check(`RS${i + 1}`))),
    );
    assert.ok(broken, 'the streams were broken mid-burst');
    assert.deepEqual(missing, [], 'acknowledged but not held by the peer');
    // Most edits are acknowledged by both (a request in flight on a broken stream is retried once).
    const acked = results.reduce((n, r) => n + r.acked.length, 0);
    assert.ok(acked >= 100, `acknowledgements: ${acked} of 120`);
    for (const s of stores) await s.syncAll();
    await waitFor(() => stores.every((s) => s.digest() === s1.digest()), { what: 'identical files after the exchange', timeoutMs: 30_000 });
    assert.equal(s2.records('realserver').length, 61);
  });

  it('stop closes every stream, client and server side', async () => {
    const [s1, s2, s3] = stores;
    // After the break S1 waits out its backoff (1 s, HTTP meanwhile); an edit after it reopens the stream.
    let n = 100;
    await waitFor(
      async () => {
        await s1.edit({ file: 'realserver', op: 'Add', record: [`RS${n++}`, '0.1', '1', 'up'] });
        return inside(s1).client.streamOpen({ address: s2.identity.address, port: net.port });
      },
      { what: 'a stream from S1 to S2 again', timeoutMs: 20_000, intervalMs: 300 },
    );
    const before = inside(s2).server.load.streams;
    await s1.stop();
    await waitFor(() => inside(s2).server.load.streams === before - 1, { what: "S1's stream gone at S2", timeoutMs: 5_000 });
    await s3.stop();
    await waitFor(() => inside(s2).server.load.streams === 0, { what: "S3's stream gone at S2", timeoutMs: 5_000 });
    await s2.stop();
  });
});
