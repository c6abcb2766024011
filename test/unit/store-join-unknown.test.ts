// A VM whose join diff reached nobody still becomes a member (the cause of bench:scale's 50 VMs
// that did not form, issue 16). When many VMs start at once, a VM may sync with its seeds while
// their group file is still empty: its own group record (with its key) is then sent to no peer,
// and no peer knows its key, so everything else it signs is refused and nobody pulls from a VM
// that is not in their group file. It makes itself known by pushing a snapshot signed by the key
// its own group record offers; of such a snapshot only that record is merged (the join rule, as
// for a join diff). Without the rule, 50 light VMs started at once stayed at 15-24 members each.
// Real stores on their own loopback addresses; every wait has a deadline, no speed is asserted.
import { strict as assert } from 'assert';
import * as path from 'path';
import { LoopbackStores } from '../support/loopback-stores';
import { SemClient, SemClientError } from '../../lib/sem/sem-http';
import { freshness } from '../../lib/sem/sem-protocol';
import { loadOrCreateVmKey, signMessage } from '../../lib/sem/vm-key';
import { packSnapshot, signEntry } from '../../lib/sem/entry-proof';
import type { SnapshotEntry } from '../../lib/sem/replica';
import { toMember } from '../../lib/records/records';
import type { LoopbackRange } from '../../harness/net';
import { waitFor } from '../../harness/wait';

const SECRET = 'join-unknown-secret-0123456789abcdef';

describe('SEM: a VM whose join diff reached nobody is still admitted', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  let range: LoopbackRange;
  let base: string;
  let port: number;
  let client: SemClient | undefined;

  const store = (hostname: string, host: number, seeds: string[]) => net.store(host, { hostname, seeds, syncIntervalMs: 300 });

  before(async () => {
    net = await LoopbackStores.open(3, SECRET, 'join-unknown');
    ({ range, base, port } = net);
  });

  after(async () => {
    client?.close();
    await net?.close();
  });

  it('S2 starts while its seed S1 is down (its join diff goes nowhere); once S1 is up, each lists the other and the files converge', async () => {
    const s2 = store('S2', 2, [range.ip(1)]);
    await s2.start();
    // Its own record, sent to nobody: the group file it got from its (absent) seed was empty.
    assert.deepEqual(s2.records('group').map((r) => r[0]), ['S2']);
    const s1 = store('S1', 1, []);
    await s1.start();
    assert.deepEqual(s1.records('group').map((r) => r[0]), ['S1'], 'S1 started alone');
    await waitFor(() => s1.get('group', 'S2')?.[5] === s2.publicKey && s2.get('group', 'S1')?.[5] === s1.publicKey, {
      what: 'S1 and S2 listing each other with their published keys',
      timeoutMs: 30_000,
    });
    await waitFor(() => s1.digest() === s2.digest(), { what: 'identical files on S1 and S2', timeoutMs: 30_000 });
  });

  it('a snapshot pushed by a VM whose key is not published: only its own group record, signed by the key it offers, is merged', async () => {
    const s1 = net.made.find((s) => s.identity.hostname === 'S1')!;
    const key = loadOrCreateVmKey(path.join(base, 'S3'), 'S3');
    const own = toMember({ hostname: 'S3', address: range.ip(3), realServer: 'RS1', services: '-', state: 'member', publicKey: key.publicKey });
    const other = ['RS-FROM-S3', '0.1', '1', 'up'];
    // Each entry with its origin's proof (an entry signature: docs/security.md, rule 10).
    const snapshot = (entries: SnapshotEntry[]) => JSON.stringify({ v: 1, type: 'snapshot', from: 'S3', snapshot: packSnapshot({ clock: 10, seqs: { S3: 5 }, entries }), ...freshness() });
    const entries: SnapshotEntry[] = [
      ['group', 'S3', own, 9, 'S3', signEntry(key, 'group', 'S3', own, 9)],
      ['realserver', 'RS-FROM-S3', other, 10, 'S3', signEntry(key, 'realserver', 'RS-FROM-S3', other, 10)],
    ];
    // Signed by another key than the one the record offers: refused, nothing merged.
    const stranger = loadOrCreateVmKey(path.join(base, 'stranger'), 'S3');
    const forged = new SemClient(SECRET, 5000, range.ip(3), (label, body) => signMessage(stranger, label, body), undefined, true);
    try {
      await assert.rejects(forged.post({ address: range.ip(1), port }, '/p2p/sem/snapshot', snapshot(entries)), (e: unknown) => e instanceof SemClientError && e.status === 401);
    } finally {
      forged.close();
    }
    assert.equal(s1.get('group', 'S3'), undefined);
    // Signed by the offered key: its own record is merged, the rest of the snapshot is not.
    client = new SemClient(SECRET, 5000, range.ip(3), (label, body) => signMessage(key, label, body), undefined, true);
    await client.post({ address: range.ip(1), port }, '/p2p/sem/snapshot', snapshot(entries));
    assert.deepEqual(s1.get('group', 'S3'), own);
    assert.equal(s1.get('realserver', 'RS-FROM-S3'), undefined, 'only the joining VM’s own group record is taken');
  });
});
