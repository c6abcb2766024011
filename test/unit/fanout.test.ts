// Edit fan-out (issue 16): direct posts up to DIRECT_MAX peers, a tree past it; the sender's
// requests per edit stay at BRANCH whatever N is; every live peer is acknowledged exactly once;
// a dead relay costs only itself; a relay cannot acknowledge for peers outside its subtree.
import { strict as assert } from 'assert';
import { BRANCH, DIFF_PATH, DIRECT_MAX, Fanout, Peer, RELAY_PATH, chunks, decodeRelay, ringAfter } from '../../lib/sem/fanout';

class Down extends Error {}
class NoRoute extends Error {}

const ORIGIN_DIFF = { body: '{"diff":1}', signature: 'S1 origin-signature' };

/** n simulated VMs whose fan-outs call each other in memory (the store's onRelay in miniature). */
function simCluster(n: number, opts: { dead?: Set<string>; liar?: string; v1?: Set<string>; staleVersions?: boolean } = {}) {
  const relayed: string[] = [];
  const peers: Peer[] = Array.from({ length: n }, (_, i) => ({ hostname: `S${i + 1}`, address: `127.0.9.${i + 1}` }));
  const byAddress = new Map(peers.map((p) => [p.address, p]));
  const received = new Map<string, number>();
  const requests = new Map<string, number>();
  const fanouts = new Map<string, Fanout>();
  const notRelays = new Set<string>();
  for (const me of peers) {
    fanouts.set(
      me.hostname,
      new Fanout({
        self: me.hostname,
        port: 1,
        timeoutMs: 100,
        isContained: () => false,
        peerOk: () => undefined,
        peerFailed: () => undefined,
        knownDown: () => undefined,
        // Version-1 peers are known as such, unless the sender's knowledge is stale (it believes
        // every peer speaks version 2 until one answers "no route").
        canRelay: (name) => (opts.staleVersions ? !notRelays.has(name) : !opts.v1?.has(name)),
        isNoRoute: (e) => e instanceof NoRoute,
        cannotRelay: (name) => notRelays.add(name),
        post: async (target, path, body, o) => {
          requests.set(me.hostname, (requests.get(me.hostname) ?? 0) + 1);
          const to = byAddress.get(target.address)!;
          if (opts.dead?.has(to.hostname)) throw new Down(`${to.hostname} is down`);
          if (path === DIFF_PATH) {
            // Every hop posts the origin's bytes with the origin's signature, never its own.
            assert.equal(body, ORIGIN_DIFF.body);
            assert.equal(o.signature, ORIGIN_DIFF.signature);
            received.set(to.hostname, (received.get(to.hostname) ?? 0) + 1);
            return { ok: true };
          }
          assert.equal(path, RELAY_PATH);
          if (opts.v1?.has(to.hostname)) throw new NoRoute('HTTP 404: no route POST /p2p/sem/relay');
          relayed.push(to.hostname);
          const msg = decodeRelay(body);
          assert.equal(o.signature, undefined, 'a relay message is signed by its sender (the client), not with a given signature');
          assert.deepEqual({ body: msg.diff, signature: msg.signature }, ORIGIN_DIFF);
          received.set(to.hostname, (received.get(to.hostname) ?? 0) + 1);
          const sub = msg.subtree.map((h) => peers.find((p) => p.hostname === h)!);
          const r = await fanouts.get(to.hostname)!.send({ body: msg.diff, signature: msg.signature }, sub);
          const acked = r.acked.map((a) => ({ peer: a.peer }));
          if (to.hostname === opts.liar) acked.push({ peer: 'S1' }, { peer: 'S99999' });
          return { acked, failed: r.failed };
        },
      }),
    );
  }
  const send = (members = peers.slice(1), direct: Peer[] = []) => fanouts.get('S1')!.send(ORIGIN_DIFF, members, direct);
  return { send, received, requests, peers, relayed };
}

describe('edit fan-out', () => {
  it('chunks are contiguous, near equal, cover the list; the ring starts after the sender', () => {
    const list = Array.from({ length: 23 }, (_, i) => i);
    const c = chunks(list, BRANCH);
    assert.equal(c.length, BRANCH);
    assert.deepEqual(c.flat(), list);
    assert.ok(Math.max(...c.map((x) => x.length)) - Math.min(...c.map((x) => x.length)) <= 1);
    const ps = ['S1', 'S2', 'S10', 'S3'].map((h) => ({ hostname: h, address: '127.0.0.1' }));
    assert.deepEqual(ringAfter('S3', ps).map((p) => p.hostname), ['S10', 'S1', 'S2']);
  });

  for (const n of [6, DIRECT_MAX + 2, 25, 50, 100, 200]) {
    it(`${n} VMs: every peer acknowledged once, the sender makes at most max(${DIRECT_MAX}, ${BRANCH}) requests`, async () => {
      const c = simCluster(n);
      const r = await c.send();
      assert.equal(r.failed.length, 0, JSON.stringify(r.failed));
      assert.deepEqual(r.acked.map((a) => a.peer).sort(), c.peers.slice(1).map((p) => p.hostname).sort());
      for (const p of c.peers.slice(1)) assert.equal(c.received.get(p.hostname), 1, p.hostname);
      assert.ok((c.requests.get('S1') ?? 0) <= Math.max(DIRECT_MAX, BRANCH), `S1 made ${c.requests.get('S1')} requests`);
      if (n - 1 > DIRECT_MAX) assert.ok((c.requests.get('S1') ?? 0) <= BRANCH);
    });
  }

  it('a dead relay: only it fails, its subtree is reached from the level above', async () => {
    const first = simCluster(100);
    await first.send();
    // The first relay the sender used: a peer that received a relay and made requests of its own.
    const relay = Array.from(first.requests.keys()).find((h) => h !== 'S1')!;
    const c = simCluster(100, { dead: new Set([relay]) });
    const r = await c.send();
    assert.deepEqual(r.failed.map((f) => f.peer), [relay]);
    assert.equal(r.acked.length, 98);
  });

  // A recovery's resumed OD is no member (replicated-store.ts addEditDestinations): a relay, which
  // reaches only the members of its own group file, could not pass the diff on to it.
  for (const n of [6, 50]) {
    it(`${n} members and two VMs that are no members: those get the diff from the sender itself, once, acknowledged`, async () => {
      const c = simCluster(n + 2);
      const members = c.peers.slice(1, n);
      const ods = c.peers.slice(n);
      const r = await c.send(members, ods);
      assert.equal(r.failed.length, 0, JSON.stringify(r.failed));
      assert.deepEqual(r.acked.map((a) => a.peer).sort(), [...members, ...ods].map((p) => p.hostname).sort());
      for (const p of [...members, ...ods]) assert.equal(c.received.get(p.hostname), 1, p.hostname);
      for (const p of ods) assert.ok(!c.requests.has(p.hostname), `${p.hostname} was asked to relay`);
      if (n > DIRECT_MAX) assert.ok((c.requests.get('S1') ?? 0) <= BRANCH + ods.length);
    });
  }

  it('a relay cannot acknowledge for peers outside its subtree', async () => {
    const c = simCluster(50, { liar: 'S2' });
    const r = await c.send();
    const counts = new Map<string, number>();
    for (const a of r.acked) counts.set(a.peer, (counts.get(a.peer) ?? 0) + 1);
    assert.ok(!counts.has('S1') && !counts.has('S99999'));
    assert.ok(Array.from(counts.values()).every((v) => v === 1));
    assert.equal(r.acked.length, 49);
  });

  for (const stale of [false, true]) {
    it(`mixed wire versions (a third of 100 VMs at version 1${stale ? ', not known yet' : ''}): no version-1 VM relays, every VM gets the edit once`, async () => {
      const v1 = new Set(Array.from({ length: 100 }, (_, i) => `S${i + 1}`).filter((_, i) => i % 3 === 1));
      const c = simCluster(100, { v1, staleVersions: stale });
      const r = await c.send();
      assert.equal(r.failed.length, 0, JSON.stringify(r.failed));
      assert.deepEqual(r.acked.map((a) => a.peer).sort(), c.peers.slice(1).map((p) => p.hostname).sort());
      for (const p of c.peers.slice(1)) assert.equal(c.received.get(p.hostname), 1, p.hostname);
      assert.ok(c.relayed.length > 0, 'a tree was used');
      for (const h of c.relayed) assert.ok(!v1.has(h), `${h} (version 1) relayed`);
    });
  }
});
