// ReplicatedStore.listening(): what a VM that took a role waits for before it answers the manager
// (nodes/common/role-endpoint.ts): true once the SEM server listens, false when it cannot or the
// store was stopped first. The start's checkpoint is written while the server already listens;
// start() still resolves only once it is durable (the text files are there).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import { freeLoopbackIp, pickFreePort } from '../../harness/net';

const SECRET = 'store-listening-secret-0123456789';

function ping(address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address, port, path: '/p2p/ping', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(String((JSON.parse(body) as { hostname?: string }).hostname)));
    });
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
  });
}

describe('replicated store: listening()', () => {
  let dir: string;
  const stores: ReplicatedStore[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-listening-'));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.stop().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is true once the server listens (it answers as this VM); start() resolves with the files written', async () => {
    const ip = freeLoopbackIp();
    const port = await pickFreePort(ip);
    const s = new ReplicatedStore({ identity: { hostname: 'S2b', address: ip, realServer: 'RS3', services: '-' }, folder: path.join(dir, 'S2b'), port, secret: SECRET, autoJoin: false });
    stores.push(s);
    const started = s.start();
    assert.equal(await s.listening(), true);
    assert.equal(await ping(ip, port), 'S2b');
    await started;
    for (const f of ['group', 'operation', 'problem', 'realserver', 'available-od', 'reservation']) assert.ok(fs.existsSync(path.join(dir, 'S2b', f)), `${f} written at start`);
  });

  it('is false when the store cannot listen (start fails) or is stopped before it started', async () => {
    const ip = freeLoopbackIp();
    const port = await pickFreePort(ip);
    const identity = { hostname: 'S2', address: ip, realServer: 'RS2', services: '-' };
    const first = new ReplicatedStore({ identity, folder: path.join(dir, 'a'), port, secret: SECRET, autoJoin: false });
    stores.push(first);
    await first.start();
    const second = new ReplicatedStore({ identity, folder: path.join(dir, 'b'), port, secret: SECRET, autoJoin: false });
    stores.push(second);
    await assert.rejects(second.start(), /cannot listen/);
    assert.equal(await second.listening(), false);
    const never = new ReplicatedStore({ identity, folder: path.join(dir, 'c'), port, secret: SECRET, autoJoin: false });
    await never.stop();
    assert.equal(await never.listening(), false);
  });
});
