// Answers by pair key between real stores (lib/sem/pair-key-answer.ts, docs/security.md "Answers
// by pair key"): every VM publishes an X25519 key and a peer's answers to it come authenticated by
// the pair key of the two; an insider holding the cluster secret and its own VM's keys (S2),
// answering at S3's address, cannot make S1 take an answer as S3's, nor can a genuine answer of S3
// to another request be replayed; a relay asks in its own name and gets its answers by its own
// pair key; after S3 rotates its keys its old pair key authenticates nothing, and after S3 is
// revoked nothing does. A rolling upgrade: a store held at wire version 2 gets no
// pair header and signs; its version-3 peer publishes no X25519 key while it is a member (a
// release before version 3 refuses such a record), and does once it was upgraded.
// Real stores on their own loopback addresses; S3's address is taken by a test server (SemServer,
// the store's own endpoint) while S3 is stopped. Rounds an hour apart: only explicit exchanges run.
import { strict as assert } from 'assert';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import { SemServer } from '../../lib/sem/sem-http';
import { SUMMARY_PATH } from '../../lib/sem/anti-entropy';
import type { FanoutResult, Peer, SignedDiff } from '../../lib/sem/fanout';
import { derivePairKey, pairRequest, pairTag, parsePairRequest, parsePairTag } from '../../lib/sem/pair-key';
import type { AnswerAuth } from '../../lib/sem/pair-key-answer';
import { loadOrCreateVmKey, parseSignature, signMessage, X25519, ED25519, type VmKey } from '../../lib/sem/vm-key';
import { managersOf } from '../../lib/sem/edit-authority';
import { fromMember } from '../../lib/records/records';
import { waitFor } from '../../harness/wait';

const SECRET = 'pair-key-secret-0123456789abcdefghijkl';

/** The fan-out of a store, reached into to send along a tree of one relay (as store-relay-pipelined.test.ts). */
interface Relaying {
  send(d: SignedDiff, peers: Peer[]): Promise<FanoutResult>;
  viaRelay(d: SignedDiff, chunk: Peer[]): Promise<FanoutResult>;
}

/** How the server at S3's address authenticates its answer to S1's request. */
type Forge = (label: string, text: string, pair: string | undefined) => string;

describe('SEM: answers by pair key between real stores', function () {
  this.timeout(120_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];
  const make = (i: number) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000 });
  const folder = (h: string) => path.join(net.base, h);
  const keyOf = (h: string, kind = X25519): VmKey => loadOrCreateVmKey(folder(h), h, kind);
  const dhOf = (s: ReplicatedStore, h: string) => fromMember(s.get('group', h)!).dhKey;

  /** Rounds and full exchanges until every store holds every member's X25519 key and the same files. */
  const settle = async (list: ReplicatedStore[], members: number) =>
    waitFor(
      async () => {
        if (list.every((s) => s.records('group').length === members && s.records('group').every((r) => fromMember(r).dhKey !== '-') && s.digest() === list[0].digest())) return true;
        for (const s of list) await s.round();
        for (const s of list) await s.syncAll();
        return false;
      },
      { what: 'every member publishing its X25519 key, identical files', timeoutMs: 60_000 },
    );

  /** A server at S3's address answering S1's summaries, its answers authenticated by `forge`. */
  let fake: SemServer | undefined;
  let forge: Forge = () => '';
  const pairHeaders: (string | undefined)[] = [];
  const takeS3Address = async (s1: ReplicatedStore) => {
    fake = new SemServer({
      host: net.range.ip(3),
      port: net.port,
      secret: SECRET,
      encrypt: true,
      version: 3,
      ping: () => ({}),
      onRefused: () => undefined,
      sign: (label, text, pair) => {
        pairHeaders.push(pair);
        return forge(label, text, pair);
      },
      routes: { [SUMMARY_PATH]: { limit: 16 * 1024, handler: () => ({ status: 200, body: { digest: s1.digest() } }) } },
    });
    await fake.listen();
  };
  const askS3 = (s1: ReplicatedStore) => s1.exchange({ address: net.range.ip(3), port: net.port }, 'S3');

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'pair-key');
    stores.push(...[1, 2, 3].map(make));
    await net.formIdentical(stores);
    await settle(stores, 3);
  });
  after(async () => {
    await fake?.close();
    await net?.close();
  });

  it('every VM publishes its X25519 key (a 0600 file beside its Ed25519 key); an edit is acknowledged by pair key', async () => {
    const [s1] = stores;
    for (const h of ['S1', 'S2', 'S3']) assert.equal(dhOf(s1, h), keyOf(h).publicKey, `${h}'s published key is the one in its key file`);
    const before = s1.answersAccepted();
    const r = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS-PAIR', '0.1', '1', 'up'] });
    assert.deepEqual(r.acked.map((a) => a.peer).sort(), ['S2', 'S3'], JSON.stringify(r.failed));
    const after = s1.answersAccepted();
    assert.equal(after.pair - before.pair, 2, `both answers by pair key (${JSON.stringify({ before, after })})`);
    assert.equal(after.signed, before.signed, 'no answer needed a signature');
  });

  it('a diff sent through a relay: the relay asks in its own name, and each answer comes by the pair key of who asked', async () => {
    const [s1, s2] = stores;
    // S1 sends through the tree path (as past DIRECT_MAX peers): relay S2 passes the diff to S3.
    const f1 = (s1 as unknown as { fanout: Relaying }).fanout;
    const send = f1.send;
    f1.send = (d, peers) => f1.viaRelay(d, [...peers].sort((a, b) => a.hostname.localeCompare(b.hostname)));
    try {
      const [b1, b2] = [s1.answersAccepted(), s2.answersAccepted()];
      const r = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS-RELAYED', '0.1', '1', 'up'] });
      assert.deepEqual(r.acked.map((a) => a.peer).sort(), ['S2', 'S3'], JSON.stringify(r.failed));
      // S1 got one answer (the relay's, for its subtree) by the pair key of S1 and S2; S2 got
      // S3's by the pair key of S2 and S3 (S2 asked, not the diff's origin S1).
      assert.equal(s1.answersAccepted().pair - b1.pair, 1, "the relay's answer to S1");
      assert.equal(s2.answersAccepted().pair - b2.pair, 1, "S3's answer to the relay S2");
      assert.equal(s2.answersAccepted().signed, b2.signed);
    } finally {
      f1.send = send;
    }
  });

  it('a pair header naming other keys (stale, or changed on the way) gets a signed answer, which the asker takes', () => {
    const [s1, , s3] = stores;
    const auth = (s: ReplicatedStore) => (s as unknown as { answers: AnswerAuth }).answers;
    const header = auth(s1).requestHeader(net.range.ip(3))!;
    assert.equal(parsePairRequest(header)?.requester, 'S1');
    const label = 'answer some-request-mac 200';
    const text = JSON.stringify({ ok: true, applied: true });
    // The header as S1 sends it: a tag under the pair key, taken by S1.
    const tag = auth(s3).sign(label, text, header);
    assert.ok(parsePairTag(tag), tag);
    assert.equal(auth(s1).check(net.range.ip(3), label, text, tag), null);
    // Another pair id (keys S3 does not hold as S1's), or another requester: S3 signs instead.
    const other = auth(s3).sign(label, text, pairRequest('S1', 'A'.repeat(22)));
    assert.equal(parsePairTag(other), null);
    assert.equal(parseSignature(other)?.signer, 'S3');
    assert.equal(auth(s1).check(net.range.ip(3), label, text, other), null, "S3's signature is taken");
    assert.equal(parseSignature(auth(s3).sign(label, text, pairRequest('S2', parsePairRequest(header)!.id)))?.signer, 'S3');
    // What S1 never takes from a member that publishes keys: the MAC alone, or a tag for another label.
    assert.match(auth(s1).check(net.range.ip(3), label, text, undefined) ?? '', /carries no VM signature/);
    assert.match(auth(s1).check(net.range.ip(3), 'answer another-mac 200', text, tag) ?? '', /not authenticated by the pair key/);
  });

  it("an insider (S2: the cluster secret and its own keys) at S3's address cannot forge S3's answer to S1", async () => {
    const [s1, s2, s3] = stores;
    await s3.stop();
    await takeS3Address(s1);
    const s1Party = { hostname: 'S1', dhKey: dhOf(s2, 'S1') };
    const s3Party = { hostname: 'S3', dhKey: dhOf(s2, 'S3') };
    const insiderDh = keyOf('S2');
    const insiderSig = keyOf('S2', ED25519);
    const forgeries: [string, Forge, RegExp][] = [
      ["S2's pair key with S3", (l, t) => pairTag(derivePairKey(insiderDh, 'S2', s3Party), 'S1', 'S3', l, t), /not authenticated by the pair key of S1 and S3/],
      ["S2's pair key with S1", (l, t) => pairTag(derivePairKey(insiderDh, 'S2', s1Party), 'S1', 'S3', l, t), /not authenticated by the pair key of S1 and S3/],
      ["S2's pair key with S1, as S2", (l, t) => pairTag(derivePairKey(insiderDh, 'S2', s1Party), 'S1', 'S2', l, t), /answered by S2, whose address is/],
      ["S2's signature in S3's name", (l, t) => signMessage({ ...insiderSig, hostname: 'S3' }, l, t), /not signed by the key S3 publishes/],
      // A name outside the group file (the bootstrap case of a seed) is not taken at S3's address.
      ["S2's signature under a name no VM has", (l, t) => signMessage({ ...insiderSig, hostname: 'NOBODY9' }, l, t), /NOBODY9, which is not in the group file, at .* where S3 answers/],
    ];
    for (const [what, f, why] of forgeries) {
      forge = f;
      await assert.rejects(askS3(s1), why, what);
    }
    assert.deepEqual(parsePairRequest(pairHeaders[0])?.requester, 'S1', 'S1 names itself in its request');
    // The same server with S3's own key is taken: the forgeries fail for their key, nothing else.
    const genuine = derivePairKey(keyOf('S3'), 'S3', s1Party);
    forge = (l, t) => pairTag(genuine, 'S1', 'S3', l, t);
    await askS3(s1);
  });

  it("a genuine answer of S3 to one request is refused as the answer to another", async () => {
    const [s1] = stores;
    const genuine = derivePairKey(keyOf('S3'), 'S3', { hostname: 'S1', dhKey: dhOf(s1, 'S1') });
    let captured: string | undefined;
    forge = (l, t) => (captured ??= pairTag(genuine, 'S1', 'S3', l, t));
    await askS3(s1);
    assert.ok(captured, 'an answer was captured');
    await assert.rejects(askS3(s1), /not authenticated by the pair key of S1 and S3/);
  });

  it("after S3 rotates its keys, its old pair key authenticates nothing; the new one does", async () => {
    const [s1] = stores;
    await fake!.close();
    fake = undefined;
    const s3 = make(3);
    await s3.start();
    stores[2] = s3;
    await settle(stores, 3);
    const old = keyOf('S3');
    const oldParty = { hostname: 'S1', dhKey: dhOf(s1, 'S1') };
    await s3.rotateKey();
    assert.notEqual(dhOf(s1, 'S3'), old.publicKey, 'S1 holds the rotated key');
    assert.equal(dhOf(s1, 'S3'), keyOf('S3').publicKey);
    const before = s1.answersAccepted();
    const r = await s1.edit({ file: 'realserver', op: 'Add', record: ['RS-ROTATED', '0.1', '1', 'up'] });
    assert.deepEqual(r.acked.map((a) => a.peer).sort(), ['S2', 'S3'], JSON.stringify(r.failed));
    assert.equal(s1.answersAccepted().pair - before.pair, 2, 'answers by pair key after the rotation');
    await s3.stop();
    await takeS3Address(s1);
    forge = (l, t) => pairTag(derivePairKey(old, 'S3', oldParty), 'S1', 'S3', l, t);
    await assert.rejects(askS3(s1), /not authenticated by the pair key of S1 and S3/);
    forge = (l, t) => pairTag(derivePairKey(keyOf('S3'), 'S3', oldParty), 'S1', 'S3', l, t);
    await askS3(s1);
  });

  it('after S3 is revoked, an answer by its pair key is refused', async () => {
    const [s1, s2] = stores;
    const manager = managersOf(s1.records('group'), 'S3').includes('S1') ? s1 : s2;
    await manager.revoke('S3');
    await waitFor(() => !s1.get('group', 'S3') && !s2.get('group', 'S3'), { what: "S3's record gone", timeoutMs: 20_000 });
    const genuine = derivePairKey(keyOf('S3'), 'S3', { hostname: 'S1', dhKey: dhOf(s1, 'S1') });
    forge = (l, t) => pairTag(genuine, 'S1', 'S3', l, t);
    await assert.rejects(askS3(s1), /an answer by pair key from S3, which is not in the group file/);
  });
});

describe('SEM: answers by pair key in a rolling upgrade (a peer at wire version 2)', function () {
  this.timeout(120_000);
  let net: LoopbackStores;
  after(async () => net?.close());

  it('signed answers from the version-2 peer, no X25519 key published while it is a member; pair keys once it is upgraded', async () => {
    net = await LoopbackStores.open(2, SECRET, 'pair-key-upgrade');
    const make = (i: number, protocolVersion: 2 | 3) => net.store(i, { seeds: i === 1 ? [] : [net.range.ip(1)], syncIntervalMs: 3_600_000, protocolVersion });
    // S1, not upgraded yet, is the seed; S2 runs the new release.
    let s1 = make(1, 2);
    const s2 = make(2, 3);
    await net.formIdentical([s1, s2]);
    for (let i = 0; i < 3; i++) {
      await s2.round();
      await s1.round();
    }
    await s2.syncAll();
    const dh = (h: string) => fromMember(s2.get('group', h)!).dhKey;
    assert.equal(dh('S2'), '-', 'S2 does not publish its X25519 key while S1 speaks version 2');
    assert.equal(dh('S1'), '-');
    let before = s2.answersAccepted();
    let r = await s2.edit({ file: 'realserver', op: 'Add', record: ['RS-V2', '0.1', '1', 'up'] });
    assert.deepEqual(r.acked.map((a) => a.peer), ['S1'], JSON.stringify(r.failed));
    assert.equal(s2.answersAccepted().signed - before.signed, 1, "S1's answer signed, and taken");

    // S1 upgraded: restarted with the same files at version 3.
    await s1.stop();
    s1 = make(1, 3);
    await s1.start();
    await waitFor(
      async () => {
        if ([s1, s2].every((s) => s.records('group').every((g) => fromMember(g).dhKey !== '-') && s.digest() === s2.digest())) return true;
        await s2.round();
        await s1.round();
        await s2.syncAll();
        return false;
      },
      { what: 'both X25519 keys published after the upgrade', timeoutMs: 60_000 },
    );
    before = s2.answersAccepted();
    r = await s2.edit({ file: 'realserver', op: 'Add', record: ['RS-V3', '0.1', '1', 'up'] });
    assert.deepEqual(r.acked.map((a) => a.peer), ['S1'], JSON.stringify(r.failed));
    assert.equal(s2.answersAccepted().pair - before.pair, 1, "S1's answer by pair key");
  });
});
