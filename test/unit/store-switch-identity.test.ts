// ReplicatedStore.switchIdentity: an OD's running store takes a backup's identity in place (the
// role step, nodes/common/role-endpoint.ts), with real stores on loopback. It answers under the new
// name at once and signs with a key of that name (the member that adds it sees the key it then
// publishes); a switch that cannot be made (another address, a key that cannot be read) changes
// nothing; edits that a member makes while the OD switches all reach it, and it ends identical.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';
import { httpRequest } from '../../harness/http';
import { keyFolder, publicKeyB64 } from '../../lib/sem/vm-key';
import { createPrivateKey } from 'crypto';
import type { ReplicatedStore } from '../../lib/sem/replicated-store';

const SECRET = 'switch-identity-secret-0123456789';

describe('SEM: a running store switches its identity in place (the role step)', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  let s1: ReplicatedStore;
  let od: ReplicatedStore;

  beforeEach(async () => {
    net = await LoopbackStores.open(3, SECRET, 'switch-identity');
    s1 = net.store(1, { syncIntervalMs: 200 });
    const s2 = net.store(2, { seeds: [net.range.ip(1)], syncIntervalMs: 200 });
    od = net.store(3, { hostname: 'OD3', autoJoin: false, seeds: [net.range.ip(1)], syncIntervalMs: 100 });
    await s1.start();
    await s2.start();
    await od.start();
    await waitFor(() => od.records('group').length === 2 && od.get('group', 'S2')?.[5] === s2.publicKey, { what: 'the OD caught up with S1 and S2', timeoutMs: 20_000 });
  });
  afterEach(async () => net?.close());

  const ping = async () => JSON.parse((await httpRequest(`http://${od.identity.address}:${net.port}/p2p/ping`, { timeoutMs: 2000 })).body).hostname as string;
  const backup = () => ({ hostname: 'S2b', address: od.identity.address, realServer: 'RS3', services: 'tcp:80' });

  /** S1 recovers S2 with the OD as S2b: claim, then the commit's batch (problem recovered + group Add). */
  async function commit(): Promise<void> {
    const since = new Date().toISOString();
    await s1.edit({ file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'recovering', 'S2b', since] });
    await s1.editBatch([
      { file: 'problem', op: 'Mod', before: s1.get('problem', 'S2')!, record: ['S2', 'S1', 'network', 'recovered', 'S2b', since] },
      { file: 'group', op: 'Add', record: ['S2b', od.identity.address, 'RS3', 'tcp:80'] },
    ]);
  }

  it('answers as the backup at once, signs with its own key for that name, and is accepted as it', async () => {
    const keyOD = od.publicKey;
    const before = od.switchIdentity(backup());
    assert.equal(before.hostname, 'OD3');
    assert.deepEqual(od.identity, backup());
    assert.equal(await ping(), 'S2b');
    assert.ok(fs.existsSync(path.join(keyFolder(od.folder), 'S2b.pem')), 'a key of its own for S2b');
    assert.notEqual(od.publicKey, keyOD, 'not the OD\'s key');
    await commit();
    // The backup publishes its key in the record S1 added (its own record: G1, signed as S2b).
    await waitFor(() => s1.get('group', 'S2b')?.[5] === od.publicKey, { what: "S2b's key published at S1", timeoutMs: 20_000 });
    await waitFor(() => od.digest() === s1.digest(), { what: 'S2b identical to S1', timeoutMs: 20_000 });
    // Its checkpoint names it now (a restart of this folder is S2b's).
    await od.stop();
    const again = net.store(3, { hostname: 'S2b', folder: od.folder, autoJoin: false, seeds: [net.range.ip(1)] });
    assert.equal(again.publicKey, od.publicKey, 'the same key for S2b after a restart');
  });

  it("the new name's keys made ahead (off the event loop) change nothing; the switch then takes them and writes none", async () => {
    const keyOD = od.publicKey;
    const dir = keyFolder(od.folder);
    const withDh = fs.existsSync(path.join(dir, 'OD3.x25519.pem'));
    await assert.rejects(od.prepareIdentityKeys('S2b/../x'), /not a valid name/);
    await od.prepareIdentityKeys('S2b');
    const made = withDh ? ['S2b.pem', 'S2b.x25519.pem'] : ['S2b.pem'];
    for (const f of made) {
      assert.ok(fs.existsSync(path.join(dir, f)), `${f} made`);
      assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, `${f} readable by the runtime's user only`);
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temp file left');
    // Nothing else changed: still the OD, signing with its own key.
    assert.equal(od.identity.hostname, 'OD3');
    assert.equal(od.publicKey, keyOD);
    assert.equal(await ping(), 'OD3');
    const mtimes = made.map((f) => fs.statSync(path.join(dir, f)).mtimeMs);
    const prepared = publicKeyB64(createPrivateKey(fs.readFileSync(path.join(dir, 'S2b.pem'), 'utf8')));
    // Made again: the keys that are there are kept.
    await od.prepareIdentityKeys('S2b');
    od.switchIdentity(backup());
    assert.equal(od.publicKey, prepared, 'the switch signs with the key made ahead');
    assert.deepEqual(made.map((f) => fs.statSync(path.join(dir, f)).mtimeMs), mtimes, 'the switch wrote no key');
    assert.equal(await ping(), 'S2b');
  });

  it('a switch that cannot be made changes nothing; switching back restores the OD', async () => {
    const keyOD = od.publicKey;
    assert.throws(() => od.switchIdentity({ ...backup(), address: net.range.ip(9) }), /keeps its address/);
    assert.throws(() => od.switchIdentity({ ...backup(), hostname: 'S2b; rm -rf /' }), /not a valid name/);
    // A key for the new name that cannot be read: refused before anything changed.
    fs.mkdirSync(path.join(keyFolder(od.folder), 'S7b.pem'), { recursive: true });
    assert.throws(() => od.switchIdentity({ ...backup(), hostname: 'S7b' }), /S7b\.pem/);
    assert.equal(od.identity.hostname, 'OD3');
    assert.equal(od.publicKey, keyOD);
    assert.equal(await ping(), 'OD3');
    // The undo of a role step whose deploy failed (role-endpoint.ts): back to the OD as it was.
    const was = od.switchIdentity(backup());
    od.switchIdentity(was);
    assert.equal(od.identity.hostname, 'OD3');
    assert.equal(od.publicKey, keyOD);
    assert.equal(await ping(), 'OD3');
  });

  it('an exchange begun under the old name and finished under the new one is not refused as a mix of the two', async () => {
    const refused: string[] = [];
    s1.on('refused', (r: { reason: string }) => refused.push(r.reason));
    // Something the OD lacks: its exchange with S1 sends a summary (as OD3), then a pull for it.
    await s1.edit({ file: 'available-od', op: 'Add', record: ['X1', net.range.ip(50), 'RS1'] });
    // The summary exchange of an anti-entropy round (not the digest exchange syncAll makes with a seed).
    const round = od as unknown as { catchUpWith(t: { address: string; port: number }, name: string): Promise<boolean> };
    const exchange = round.catchUpWith({ address: net.range.ip(1), port: net.port }, 'S1');
    od.switchIdentity(backup());
    await exchange;
    await waitFor(() => od.get('available-od', 'X1') !== undefined, { what: 'X1 pulled by the OD', timeoutMs: 10_000 });
    assert.deepEqual(refused.filter((r) => /claims to come from/.test(r)), []);
  });

  it('edits made by a member while the OD switches all reach it, and it ends identical', async () => {
    const N = 40;
    let made = 0;
    const editing = (async () => {
      for (; made < N; made++) {
        await s1.edit({ file: 'available-od', op: 'Add', record: [`X${made}`, net.range.ip(50 + made), 'RS1'] });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    // Switch in the middle of the stream, while the OD's exchanges with S1 run every 100 ms.
    await waitFor(() => made >= N / 2, { what: 'half the edits made', timeoutMs: 20_000 });
    od.switchIdentity(backup());
    await editing;
    await commit();
    await waitFor(() => od.digest() === s1.digest(), { what: 'S2b identical to S1', timeoutMs: 20_000 });
    for (let i = 0; i < N; i++) assert.ok(od.get('available-od', `X${i}`), `X${i} at S2b`);
    await waitFor(() => s1.get('group', 'S2b')?.[5] === od.publicKey, { what: "S2b's key published at S1", timeoutMs: 20_000 });
  });
});
