// Edit authority at the sender (lib/sem/replicated-store.ts edit, rules in lib/sem/edit-authority.ts):
// a local edit that every receiver would refuse is refused with the receivers' reason and changes
// nothing, on this VM or any other; the operator paths that legitimately edit another VM's record
// (G4 maintenance on/off and re-admission, a recovery carrying a dated confirmation) still go
// through. Two real stores on this suite's own loopback addresses.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AuthorityError, ReplicatedStore } from '../../lib/sem/replicated-store';
import { authorityRefusal } from '../../lib/sem/edit-authority';
import type { Edit } from '../../lib/records/cluster-api';
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';

const SECRET = 'local-authority-secret-0123456789';

describe('edit authority applied to local edits', function () {
  this.timeout(20_000);
  const range = allocLoopbackRange();
  let dir: string;
  let s1: ReplicatedStore;
  let s2: ReplicatedStore;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-local-authority-'));
    const port = await pickPortFreeOnAll([range.ip(1), range.ip(2)]);
    const store = (n: number) =>
      new ReplicatedStore({
        identity: { hostname: `S${n}`, address: range.ip(n), realServer: `RS${n}`, services: '-' },
        folder: path.join(dir, `S${n}`),
        port,
        secret: SECRET,
        seeds: [range.ip(3 - n)],
        syncIntervalMs: 300,
      });
    s1 = store(1);
    s2 = store(2);
    await Promise.all([s1.start(), s2.start()]);
    // Both keys of both (Ed25519, then X25519 once each heard the other: docs/security.md rule 11),
    // so that no VM changes its own record during the test.
    await waitFor(() => [s1, s2].every((s) => ['S1', 'S2'].every((h) => s.get('group', h)?.[6] !== undefined)), { what: 'both members with their keys on both', timeoutMs: 10_000 });
  });

  after(async () => {
    await Promise.all([s1?.stop(), s2?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
    range.release();
  });

  const view = (s: ReplicatedStore) => ({ get: (f: 'group' | 'problem', k: string) => s.get(f, k), records: (f: 'group' | 'problem') => s.records(f) });

  /** The edit is refused at S2 with exactly the reason a receiver gives, and nothing changes anywhere. */
  async function refusedLocally(edit: Edit, re: RegExp) {
    const before = [s1.digest(), s2.digest()];
    const reason = authorityRefusal('S2', edit, view(s1));
    assert.ok(reason && re.test(reason), `a receiver refuses it: ${reason}`);
    await assert.rejects(s2.edit(edit), (e: unknown) => e instanceof AuthorityError && e.message.endsWith(reason!));
    assert.deepEqual([s1.digest(), s2.digest()], before, 'nothing changed on either VM');
  }

  it('refuses at the sender what every receiver refuses, with the same reason, changing nothing', async () => {
    const g1 = s1.get('group', 'S1')!;
    await refusedLocally({ file: 'group', op: 'Del', record: g1 }, /may not change the group record of S1 \(G2\): no problem record/);
    await refusedLocally({ file: 'group', op: 'Mod', before: g1, record: [g1[0], g1[1], g1[2], 'tcp:22', ...g1.slice(4)] }, /\(G2\)/);
    await refusedLocally({ file: 'group', op: 'Add', record: ['S7', range.ip(7), 'RS1', '-'] }, /may not add the group record of S7 \(G3\)/);
    await refusedLocally({ file: 'problem', op: 'Add', record: ['S1', 'S9', 'service', 'confirmed', '-', new Date().toISOString()] }, /in the name of S9 \(P1\)/);
  });

  it('lets the operator paths through: maintenance on/off of another VM (G4) and a recovery with a dated confirmation (G2)', async () => {
    const g1 = s1.get('group', 'S1')!;
    const maint = [...g1.slice(0, 4), 'maintenance', ...g1.slice(5)];
    await s2.edit({ file: 'group', op: 'Mod', before: g1, record: maint });
    await waitFor(() => s1.get('group', 'S1')?.[4] === 'maintenance', { what: 'S1 in maintenance on S1', timeoutMs: 15_000 });
    await s2.edit({ file: 'group', op: 'Mod', before: maint, record: g1 });
    await waitFor(() => s1.get('group', 'S1')?.join() === g1.join(), { what: 'S1 a member again', timeoutMs: 15_000 });
    // S2 is S1's manager (two members): with its own dated confirmation it may mark S1 fenced.
    const problem = ['S1', 'S2', 'service', 'confirmed', '-', new Date().toISOString()];
    await s2.edit({ file: 'problem', op: 'Add', record: problem });
    const fenced = [...g1.slice(0, 4), 'fenced', ...g1.slice(5)];
    await s2.edit({ file: 'group', op: 'Mod', before: g1, record: fenced });
    await waitFor(() => s1.get('group', 'S1')?.[4] === 'fenced', { what: 'the fence on S1', timeoutMs: 15_000 });
    // Re-admission (G4), then the problem record is closed by its detector (P2).
    await s2.edit({ file: 'group', op: 'Mod', before: fenced, record: g1 });
    await s2.edit({ file: 'problem', op: 'Del', record: problem });
    await waitFor(() => s1.digest() === s2.digest(), { what: 'identical files', timeoutMs: 15_000 });
  });
});
