// A fence is not undone by a restart (issue 12): a store whose own group record says `fenced`
// does not re-add or rewrite itself at start (autoJoin), and says why.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { freeLoopbackIp, pickFreePort } from '../../harness/net';

describe('replicated store: a fenced VM does not rejoin at start', () => {
  let dir: string;
  const stores: ReplicatedStore[] = [];
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-fenced-join-'));
  });
  after(async () => {
    for (const s of stores) await s.stop().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its fenced record as it is; an unfenced one is still brought in line', async () => {
    const ip = freeLoopbackIp();
    const identity = { hostname: 'S2', address: ip, realServer: 'RS2', services: 'tcp:80' };
    // The files as a peer left them: S2 replaced and fenced (on another address before).
    const seed = new ReplicatedStore({ identity, folder: dir, secret: 'fenced-join-secret', autoJoin: false });
    await seed.edit('group, Add, S2, 127.254.9.2, RS2, tcp:80, fenced');
    await seed.stop();
    const port = await pickFreePort(ip);
    const s = new ReplicatedStore({ identity, folder: dir, secret: 'fenced-join-secret', port, autoJoin: true });
    stores.push(s);
    const warnings: string[] = [];
    s.on('warning', (w: string) => warnings.push(w));
    await s.start();
    assert.deepEqual(s.get('group', 'S2'), ['S2', '127.254.9.2', 'RS2', 'tcp:80', 'fenced']);
    assert.ok(warnings.some((w) => /S2 is fenced in the group file \(replaced\): not rejoining/.test(w)), warnings.join('\n'));
    await s.stop();
    // Re-admitted (state member): the next start brings its record in line again.
    const again = new ReplicatedStore({ identity, folder: dir, secret: 'fenced-join-secret', autoJoin: false });
    await again.edit({ file: 'group', op: 'Mod', before: ['S2', '127.254.9.2', 'RS2', 'tcp:80', 'fenced'], record: ['S2', '127.254.9.2', 'RS2', 'tcp:80'] });
    await again.stop();
    const third = new ReplicatedStore({ identity, folder: dir, secret: 'fenced-join-secret', port, autoJoin: true });
    stores.push(third);
    await third.start();
    // Brought in line (its address), with this VM's own public key published (docs/security.md).
    assert.deepEqual(third.get('group', 'S2')!.slice(0, 5), ['S2', ip, 'RS2', 'tcp:80', 'member']);
    assert.match(third.get('group', 'S2')![5], /^[A-Za-z0-9+/]{43}=$/);
  });
});
