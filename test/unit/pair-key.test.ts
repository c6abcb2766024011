// Pair keys (lib/sem/pair-key.ts): both VMs of a pair agree on the same key, the key is bound to
// both hostnames, both public keys and its purpose, a bad published key agrees on nothing, and the
// answer tag is bound to who asked, who answers and the request (its label). Key files made in a
// temporary folder (vm-key.ts, 0600), removed after.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { derivePairKey, PairKeyError, PairKeys, pairId, pairTag, parsePairRequest, parsePairTag, pairRequest, verifyPairTag } from '../../lib/sem/pair-key';
import { loadOrCreateVmKey, prepareRotation, commitRotation, X25519, type VmKey } from '../../lib/sem/vm-key';

describe('pair keys (X25519 + HKDF-SHA256)', () => {
  let dir: string;
  let s1: VmKey;
  let s3: VmKey;
  let s2: VmKey;
  const party = (k: VmKey) => ({ hostname: k.hostname, dhKey: k.publicKey });

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-pair-key-'));
    [s1, s2, s3] = ['S1', 'S2', 'S3'].map((h) => loadOrCreateVmKey(dir, h, X25519));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps each X25519 key in a 0600 file beside the Ed25519 key, the same one at the next load', () => {
    const file = path.join(dir, '.keys', 'S1.x25519.pem');
    assert.equal(s1.file, file);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(s1.privateKey.asymmetricKeyType, 'x25519');
    assert.equal(loadOrCreateVmKey(dir, 'S1', X25519).publicKey, s1.publicKey);
    assert.notEqual(loadOrCreateVmKey(dir, 'S1').publicKey, s1.publicKey, 'the Ed25519 key is another file');
  });

  it('gives both VMs of a pair the same key, whichever computes it', () => {
    const a = derivePairKey(s1, 'S1', party(s3));
    const b = derivePairKey(s3, 'S3', party(s1));
    assert.equal(a.length, 32);
    assert.deepEqual(a, b);
    assert.equal(pairId(party(s1), party(s3)), pairId(party(s3), party(s1)));
  });

  it('binds the key to both public keys and both hostnames', () => {
    const k = derivePairKey(s1, 'S1', party(s3));
    // Another key published for S3 (S2's, as an insider might wish): another key.
    assert.notDeepEqual(derivePairKey(s1, 'S1', { hostname: 'S3', dhKey: s2.publicKey }), k);
    // The same keys under another name of the peer, or of this VM: another key.
    assert.notDeepEqual(derivePairKey(s1, 'S1', { hostname: 'S4', dhKey: s3.publicKey }), k);
    assert.notDeepEqual(derivePairKey(s1, 'S9', party(s3)), k);
    // And another pair id, so the VM asked never answers under a key the asker does not hold.
    assert.notEqual(pairId(party(s1), { hostname: 'S3', dhKey: s2.publicKey }), pairId(party(s1), party(s3)));
  });

  it('agrees on nothing with a low-order or malformed published key', () => {
    assert.throws(() => derivePairKey(s1, 'S1', { hostname: 'S3', dhKey: Buffer.alloc(32).toString('base64') }), PairKeyError);
    assert.throws(() => derivePairKey(s1, 'S1', { hostname: 'S3', dhKey: 'AAAA' }), PairKeyError);
    const keys = new PairKeys();
    assert.equal(keys.get(s1, 'S1', { hostname: 'S3', dhKey: Buffer.alloc(32).toString('base64') }), null);
  });

  it('caches a key per (peer, its key, this VM\'s key) and derives again when either changes', () => {
    const keys = new PairKeys();
    const first = keys.get(s1, 'S1', party(s3))!;
    assert.deepEqual(first.key, derivePairKey(s1, 'S1', party(s3)));
    assert.equal(keys.get(s1, 'S1', party(s3))!.key, first.key, 'the same Buffer: cached');
    const other = keys.get(s1, 'S1', { hostname: 'S3', dhKey: s2.publicKey })!;
    assert.notDeepEqual(other.key, first.key);
    assert.equal(keys.size, 1, 'one entry per peer');
    keys.forget('S3');
    assert.equal(keys.size, 0);
  });

  it('tags an answer for one requester, one answerer and one request only', () => {
    const k = derivePairKey(s3, 'S3', party(s1));
    const tag = parsePairTag(pairTag(k, 'S1', 'S3', 'answer mac1 200', '{"ok":true}'))!;
    assert.equal(tag.signer, 'S3');
    assert.ok(verifyPairTag(k, 'S1', 'S3', 'answer mac1 200', '{"ok":true}', tag.mac));
    assert.ok(!verifyPairTag(k, 'S1', 'S3', 'answer mac2 200', '{"ok":true}', tag.mac), 'another request');
    assert.ok(!verifyPairTag(k, 'S1', 'S3', 'answer mac1 200', '{"ok":false}', tag.mac), 'another body');
    assert.ok(!verifyPairTag(k, 'S2', 'S3', 'answer mac1 200', '{"ok":true}', tag.mac), 'another requester');
    assert.equal(parsePairTag('S3 AAAA'), null);
    assert.equal(parsePairTag(undefined), null);
    assert.deepEqual(parsePairRequest(pairRequest('S1', pairId(party(s1), party(s3)))), { requester: 'S1', id: pairId(party(s1), party(s3)) });
    assert.equal(parsePairRequest('S1 x'), null);
  });

  it('rotates the X25519 key like the Ed25519 key (.next, then in place): another key, another pair key', () => {
    const before = derivePairKey(s1, 'S1', party(s3));
    const next = prepareRotation(dir, 'S3', X25519);
    assert.equal(next.file, path.join(dir, '.keys', 'S3.x25519.pem.next'));
    const rotated = commitRotation(dir, 'S3', X25519);
    assert.equal(rotated.publicKey, next.publicKey);
    assert.notEqual(rotated.publicKey, s3.publicKey);
    assert.notDeepEqual(derivePairKey(s1, 'S1', party(rotated)), before);
    assert.equal(fs.existsSync(next.file), false);
  });
});
