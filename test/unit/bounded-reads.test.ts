// Reading before authentication (issue 14): a body within a byte cap, a deadline and shared
// budgets; the admin API's answers read the same way; refusals reported at a bounded rate; bodies
// sealed on the wire.
import { strict as assert } from 'assert';
import * as http from 'http';
import { PassThrough } from 'stream';
import type { AddressInfo } from 'net';
import { BodyError, ByteBudget, readBounded } from '../../lib/net/bounded-body';
import { deployIdentity, RoleError } from '../../lib/recovery/role';
import { RefusalLimiter, RefusalReport } from '../../lib/sem/refusal-limiter';
import { bodyKey, open, seal, SealError } from '../../lib/sem/wire-crypto';
import { SemClient, SemClientError } from '../../lib/sem/sem-http';

const kindOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    assert.ok(e instanceof BodyError, String(e));
    return e.kind;
  }
};

describe('bounded body reads', () => {
  it('reads a body within the cap', async () => {
    const s = new PassThrough();
    const p = readBounded(s, { limit: 10, timeoutMs: 1000 });
    s.end('0123456789');
    assert.equal((await p).toString(), '0123456789');
  });

  it('refuses a declared length over the cap before reading, and a body that grows past it', async () => {
    const declared = new PassThrough();
    assert.equal(await kindOf(readBounded(declared, { limit: 10, timeoutMs: 1000, declared: 11 })), 'too-large');
    const s = new PassThrough();
    const p = readBounded(s, { limit: 10, timeoutMs: 1000 });
    s.write('012345');
    s.write('6789ab');
    assert.equal(await kindOf(p), 'too-large');
    assert.ok(s.destroyed, 'the stream is destroyed');
  });

  it('refuses a body that does not end in time', async () => {
    const s = new PassThrough();
    const p = readBounded(s, { limit: 100, timeoutMs: 50 });
    s.write('slow');
    assert.equal(await kindOf(p), 'timeout');
  });

  it('takes bytes from every budget while held and gives them back after', async () => {
    const all = new ByteBudget(10);
    const one = new ByteBudget(6);
    const a = new PassThrough();
    const pa = readBounded(a, { limit: 100, timeoutMs: 1000, budgets: [all, one] });
    a.write('12345');
    await new Promise((r) => setImmediate(r));
    assert.equal(all.inUse, 5);
    a.write('67');
    assert.equal(await kindOf(pa), 'over-budget');
    assert.equal(all.inUse, 0, 'given back to the global budget');
    assert.equal(one.inUse, 0, 'given back to the per-peer budget');
    const b = new PassThrough();
    const pb = readBounded(b, { limit: 100, timeoutMs: 1000, budgets: [all] });
    b.end('0123456789');
    assert.equal((await pb).length, 10);
    assert.equal(all.inUse, 0);
  });

  it('reserves a declared length from the budgets before reading: a request without room is refused unread', async () => {
    const all = new ByteBudget(100);
    const a = new PassThrough();
    const pa = readBounded(a, { limit: 1000, timeoutMs: 1000, declared: 80, budgets: [all] });
    assert.equal(all.inUse, 80);
    const b = new PassThrough();
    assert.equal(await kindOf(readBounded(b, { limit: 1000, timeoutMs: 1000, declared: 30, budgets: [all] })), 'over-budget');
    a.end(Buffer.alloc(80));
    assert.equal((await pa).length, 80);
    assert.equal(all.inUse, 0);
  });

  it('the role call client cuts an endless answer at its cap', async () => {
    let written = 0;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const block = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && written < 1024 * 1024 * 1024) {
          written += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      await assert.rejects(
        deployIdentity(
          { hostname: 'S2b', address: '127.0.0.1', realServer: 'RS1', services: '-', autoJoin: false },
          { url: `http://127.0.0.1:${port}`, signer: { sealAdminCall: () => ({ body: 'x', headers: {} }) }, maxAnswerBytes: 1024 * 1024, timeoutMs: 5000 },
        ),
        (e: unknown) => e instanceof RoleError && /answer refused: message too large/.test(e.message),
      );
      assert.ok(written < 64 * 1024 * 1024, `${written} bytes were sent before the client closed`);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('SEM client deadline', () => {
  // The client reads an answer without a timer of its own: the request's deadline covers the
  // answer's body too (one timer per request). An answer that starts and never ends must still be
  // given up at that deadline, and its connection closed.
  it('gives up an answer whose body never ends at the request deadline, and closes its connection', async () => {
    let closed = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"ok":');
      res.socket?.once('close', () => (closed = true));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const client = new SemClient('a-secret-of-enough-length', 300);
    try {
      await assert.rejects(client.post({ address: '127.0.0.1', port }, '/p2p/sem/diff', '{}'), (e: unknown) => e instanceof SemClientError);
      const deadline = Date.now() + 5000;
      while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(closed, 'the connection of the unfinished answer is closed');
      assert.deepEqual(client.retained(), { sockets: 0, queued: 0, streams: 0, inFlight: 0 });
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('refusal limiter', () => {
  it('reports the first refusals of a window in full and summarises the rest', () => {
    const out: RefusalReport[] = [];
    const l = new RefusalLimiter((r) => out.push(r), { fullPerWindow: 3, windowMs: 60_000 });
    for (let i = 0; i < 1234; i++) l.refused('10.0.0.9', `bad MAC ${i}`);
    l.refused('10.0.0.8', 'once');
    assert.equal(out.length, 4);
    l.endWindow();
    const summary = out.find((r) => r.count !== undefined);
    assert.ok(summary);
    assert.equal(summary.count, 1234);
    assert.match(summary.reason, /^1234 refused from 10\.0\.0\.9 in the last 60 s \(1231 not logged one by one; last: bad MAC 1233\)$/);
    assert.equal(out.filter((r) => r.from === '10.0.0.8').length, 1, 'no summary for an address reported in full');
    l.close();
  });

  it('bounds full reports across addresses and the addresses tracked', () => {
    const out: RefusalReport[] = [];
    const l = new RefusalLimiter((r) => out.push(r), { fullPerWindow: 5, fullPerWindowInAll: 10, maxAddresses: 4, windowMs: 60_000 });
    for (let i = 0; i < 100; i++) l.refused(`10.0.1.${i}`, 'x');
    assert.equal(out.length, 4, 'four addresses tracked, the rest counted together');
    l.endWindow();
    const others = out.find((r) => r.from === 'other addresses');
    assert.equal(others?.count, 96);
    l.close();
  });
});

describe('wire encryption (AES-256-GCM, key by HKDF from the cluster secret)', () => {
  it('opens what it sealed, only with the same key and label', () => {
    const k = bodyKey('a-cluster-secret-of-128-bits');
    const sealed = seal(k, 'POST /p2p/sem/diff', '{"file":"group"}');
    assert.doesNotMatch(sealed, /group/);
    assert.equal(open(k, 'POST /p2p/sem/diff', sealed), '{"file":"group"}');
    assert.throws(() => open(k, 'POST /p2p/sem/snapshot', sealed), SealError);
    assert.throws(() => open(bodyKey('another-secret-entirely-x'), 'POST /p2p/sem/diff', sealed), SealError);
    const flipped = sealed.slice(0, -3) + (sealed.at(-3) === 'A' ? 'B' : 'A') + sealed.slice(-2);
    assert.throws(() => open(k, 'POST /p2p/sem/diff', flipped), SealError);
    assert.notEqual(seal(k, 'x', 'same'), seal(k, 'x', 'same'), 'a fresh IV each time');
  });
});
