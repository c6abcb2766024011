// The test harness's own helpers: bounded waiting with a clear error, loopback ranges that
// parallel suites do not share, and ports chosen free on every given address.
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { allocLoopbackRange, freeLoopbackIp, isPortFree, pickPortFreeOnAll } from '../../harness/net';
import { waitFor, WaitTimeoutError } from '../../harness/wait';

describe('harness: waitFor', function () {
  it('returns the first truthy value', async function () {
    let n = 0;
    assert.strictEqual(await waitFor(() => (++n >= 3 ? `after ${n}` : false), { intervalMs: 1 }), 'after 3');
  });

  it('treats a throw as not yet, and names what it waited for and the last error on timeout', async function () {
    const err = await waitFor(
      () => {
        throw new Error('connect ECONNREFUSED');
      },
      { timeoutMs: 50, intervalMs: 10, what: 'the admin API of S9' },
    ).catch((e: unknown) => e);
    assert.ok(err instanceof WaitTimeoutError);
    assert.match(err.message, /waiting for the admin API of S9; last error: connect ECONNREFUSED/);
  });

  it('says when the condition simply stayed false', async function () {
    await assert.rejects(waitFor(() => false, { timeoutMs: 30, intervalMs: 5, what: 'x' }), /waiting for x; it stayed false/);
  });
});

describe('harness: loopback ranges and ports', function () {
  const lockDir = path.join(os.tmpdir(), 'p2p-ha-loopback-locks');

  it('gives each caller its own /24, never 127.0.0.x or 127.0.1.x, and frees it on release', function () {
    const a = allocLoopbackRange();
    const b = allocLoopbackRange();
    try {
      assert.notStrictEqual(a.prefix, b.prefix);
      for (const r of [a, b]) assert.ok(!['127.0.0', '127.0.1'].includes(r.prefix));
      assert.deepStrictEqual(a.ips(2), [`${a.prefix}.1`, `${a.prefix}.2`]);
      assert.throws(() => a.ip(255), /not in 1\.\.254/);
      assert.strictEqual(fs.readFileSync(path.join(lockDir, `${a.prefix}.lock`), 'utf8'), String(process.pid));
    } finally {
      a.release();
      b.release();
    }
    assert.ok(!fs.existsSync(path.join(lockDir, `${a.prefix}.lock`)));
  });

  it("takes over a range whose owner died, but not a live owner's", function () {
    const dead = spawnSync(process.execPath, ['-e', '0']);
    assert.strictEqual(dead.status, 0);
    // Only ever rewrite a lock this process holds, so a suite running beside this one is never disturbed.
    const held = allocLoopbackRange();
    const lock = path.join(lockDir, `${held.prefix}.lock`);
    try {
      fs.writeFileSync(lock, String(dead.pid));
      const taken = allocLoopbackRange();
      assert.strictEqual(taken.prefix, held.prefix, 'a lock of a dead pid was not taken over');
      fs.writeFileSync(lock, '1'); // pid 1 is always alive
      const other = allocLoopbackRange();
      other.release();
      assert.notStrictEqual(other.prefix, held.prefix, "a live owner's range was taken");
    } finally {
      held.release();
    }
  });

  it('freeLoopbackIp hands out successive addresses of one owned range', function () {
    const a = freeLoopbackIp();
    const b = freeLoopbackIp();
    assert.match(a, /^127\.\d+\.\d+\.1$/);
    assert.strictEqual(b, a.replace(/\.1$/, '.2'));
  });

  it('pickPortFreeOnAll returns a port bindable on every address, never one in use', async function () {
    const r = allocLoopbackRange();
    const ips = r.ips(3);
    const held = net.createServer();
    try {
      const port = await pickPortFreeOnAll(ips);
      assert.ok(port >= 20000 && port < 32000);
      for (const ip of ips) assert.ok(await isPortFree(ip, port));
      await new Promise<void>((resolve) => held.listen(port, ips[1], resolve));
      assert.strictEqual(await isPortFree(ips[1], port), false);
      const again = await pickPortFreeOnAll(ips);
      assert.notStrictEqual(again, port);
    } finally {
      held.close();
      r.release();
    }
  });
});
