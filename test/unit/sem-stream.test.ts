// The SEM stream (lib/sem/sem-stream.ts, sem-stream-frame.ts): frames cut from any byte
// boundaries, the bounds before authentication (oversized frame refused on its declared length,
// partial frame and silent stream closed on their deadlines, forged frame answered 401 and the
// stream closed with nothing handled, streams counted in the connection caps), several requests in
// flight answered in any order, a peer without streams spoken to over HTTP, and the client's and
// server's close. A real SemServer and SemClient on a loopback address of their own; raw sockets
// play the attacker. Bounded waits, no speed asserted.
import { strict as assert } from 'assert';
import * as net from 'net';
import { ByteBudget } from '../../lib/net/bounded-body';
import { SemClient, SemClientError, SemServer, type Route, type ServerLimits } from '../../lib/sem/sem-http';
import { mac, MAC_HEADER } from '../../lib/sem/sem-protocol';
import { STREAM_PATH, STREAM_PROTOCOL } from '../../lib/sem/sem-stream';
import { bodyKey, ENC_HEADER, seal } from '../../lib/sem/wire-crypto';
import { encodeFrame, Frame, FrameError, FrameReader, FRAME_PREFIX_BYTES, HeadText } from '../../lib/sem/sem-stream-frame';
import { allocLoopbackRange, pickFreePort, type LoopbackRange } from '../../harness/net';
import { waitFor } from '../../harness/wait';

const SECRET = 'stream-secret-0123456789abcdef0123';
const DIFF = '/p2p/sem/diff';

describe('SEM stream frames', () => {
  it('cuts frames from any split of the bytes, and gives the reserved bytes back', () => {
    const budget = new ByteBudget(1000);
    const got: Frame[] = [];
    const r = new FrameReader({ limitOf: () => 100, budgets: [budget], onFrame: (f) => got.push(f) });
    const bytes = Buffer.concat([encodeFrame(1, { path: DIFF }, 'one'), encodeFrame(7, { status: '200', a: 'b' }, ''), encodeFrame(3, {}, 'three ü')]);
    for (let i = 0; i < bytes.length; i += 3) r.push(bytes.subarray(i, i + 3));
    assert.deepEqual(
      got.map((f) => [f.id, f.head, f.body.toString()]),
      [
        [1, { path: DIFF }, 'one'],
        [7, { status: '200', a: 'b' }, ''],
        [3, {}, 'three ü'],
      ],
    );
    assert.equal(r.partial, false);
    assert.equal(budget.inUse, 0);
  });

  it('reads at an offset into its chunks: every split size, frames whole or across chunks, each body exactly its own bytes', () => {
    // The reader keeps an offset into its first chunk instead of cutting views per field: a frame's
    // body must be its own bytes whatever the split, never a neighbour's (a longer body before it,
    // a shorter one after).
    const frames: [number, Record<string, string>, string][] = [
      [1, { path: DIFF, 'x-p2p-mac': 'a'.repeat(64) }, 'é'.repeat(40)],
      [2, { status: '200' }, 'x'],
      [3, {}, ''],
      [4, { path: DIFF }, 'ü"\\'.repeat(25)],
      [5, { status: '409', n: 'ß' }, 'short'],
    ];
    const bytes = Buffer.concat(frames.map(([id, head, body]) => encodeFrame(id, head, body)));
    for (let split = 1; split <= bytes.length; split += split < 24 ? 1 : 37) {
      const budget = new ByteBudget(10_000);
      const got: [number, Record<string, string>, string][] = [];
      const r = new FrameReader({ limitOf: () => 1000, budgets: [budget], onFrame: (f) => got.push([f.id, f.head, f.body.toString('utf8')]) });
      for (let i = 0; i < bytes.length; i += split) r.push(Buffer.from(bytes.subarray(i, i + split)));
      assert.deepEqual(got, frames, `split every ${split} bytes`);
      assert.equal(r.partial, false);
      assert.equal(budget.inUse, 0);
    }
  });

  it('a head serialised ahead (HeadText) gives the very bytes of the whole head, each frame its own fields', () => {
    const shared = { path: DIFF, 'x-p2p-mac': 'm'.repeat(64), 'x-p2p-sig': 'S1 sïg"\\', 'x-p2p-enc': '1' };
    const text = HeadText.sharedOf(shared);
    const frames: Buffer[] = [];
    for (const [pair, body] of [['S1 ' + 'A'.repeat(22), 'é'.repeat(30)], ['S1 B', ''], ['S1 ü"', 'x']]) {
      const ahead = encodeFrame(9, new HeadText(text, HeadText.field('x-p2p-pair', pair)), body);
      assert.deepEqual(ahead, encodeFrame(9, { ...shared, 'x-p2p-pair': pair }, body));
      frames.push(ahead);
    }
    assert.deepEqual(encodeFrame(3, new HeadText(text, ''), 'b'), encodeFrame(3, shared, 'b'));
    const got: Frame[] = [];
    const r = new FrameReader({ limitOf: () => 1000, onFrame: (f) => got.push(f) });
    r.push(Buffer.concat(frames));
    assert.deepEqual(
      got.map((f) => f.head['x-p2p-pair']),
      ['S1 ' + 'A'.repeat(22), 'S1 B', 'S1 ü"'],
    );
  });

  it('refuses a body over its cap on the declared length, before any of it is kept', () => {
    const budget = new ByteBudget(1 << 20);
    const r = new FrameReader({ limitOf: () => 16, budgets: [budget], onFrame: () => assert.fail('no frame') });
    const frame = encodeFrame(5, { path: DIFF }, 'x'.repeat(17));
    const headEnd = frame.length - 17;
    assert.throws(
      () => r.push(frame.subarray(0, headEnd)),
      (e: unknown) => e instanceof FrameError && e.kind === 'too-large' && e.id === 5 && e.status === 413,
    );
    assert.equal(budget.inUse, 0);
  });

  it('refuses a head over its cap or not an object of strings, and a frame over the byte budget', () => {
    const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
    prefix.writeUInt16BE(4096, 4);
    const r1 = new FrameReader({ limitOf: () => 16, onFrame: () => undefined });
    assert.throws(() => r1.push(prefix), (e: unknown) => e instanceof FrameError && e.kind === 'malformed');
    const r2 = new FrameReader({ limitOf: () => 16, onFrame: () => undefined });
    const bad = encodeFrame(1, { path: DIFF }, '');
    const head = Buffer.from('{"n":1}');
    bad.writeUInt16BE(head.length, 4);
    assert.throws(() => r2.push(Buffer.concat([bad.subarray(0, FRAME_PREFIX_BYTES), head])), (e: unknown) => e instanceof FrameError && e.kind === 'malformed');
    const budget = new ByteBudget(10);
    const r3 = new FrameReader({ limitOf: () => 100, budgets: [budget], onFrame: () => undefined });
    assert.throws(() => r3.push(encodeFrame(1, {}, 'x'.repeat(11))), (e: unknown) => e instanceof FrameError && e.kind === 'over-budget');
    assert.equal(budget.inUse, 0);
  });
});

/** Open a stream by hand (an attacker's client): the socket after the 101, or the status line refused. */
function upgrade(ip: string, port: number, localAddress?: string): Promise<{ socket: net.Socket; status: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ip, port, localAddress });
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const status = got.subarray(0, got.indexOf('\r\n')).toString();
      if (got.length > end + 4) socket.unshift(got.subarray(end + 4));
      resolve({ socket, status });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('close', () => resolve({ socket, status: 'closed' }));
    socket.write(`GET ${STREAM_PATH} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\n\r\n`);
  });
}

/** Frames that come back on a raw stream, and when it closes. */
function collect(socket: net.Socket): { frames: Frame[]; closed: Promise<void> } {
  const frames: Frame[] = [];
  const r = new FrameReader({ limitOf: () => 1 << 20, onFrame: (f) => frames.push(f) });
  socket.on('data', (c: Buffer) => r.push(c));
  return { frames, closed: new Promise((res) => socket.once('close', () => res())) };
}

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

describe('SEM stream: server bounds and client behaviour', function () {
  this.timeout(60_000);
  let range: LoopbackRange;
  let ip: string;
  let port: number;
  let server: SemServer | undefined;
  const clients: SemClient[] = [];
  const sockets: net.Socket[] = [];
  let refused: string[];
  let handled: string[];

  const echo: Route = (ctx) => {
    handled.push(ctx.body);
    return { status: 200, body: { echo: ctx.body } };
  };

  async function serve(routes: Record<string, Route>, limits: Partial<ServerLimits> = {}, streams = true): Promise<void> {
    server = new SemServer({
      host: ip,
      port,
      secret: SECRET,
      routes: Object.fromEntries(Object.entries(routes).map(([p, handler]) => [p, { limit: 1024, handler }])),
      ping: () => ({}),
      onRefused: (_remote, reason) => refused.push(reason),
      limits,
      version: 2,
      encrypt: true,
      streamRoutes: streams ? Object.keys(routes) : undefined,
    });
    await server.listen();
  }

  const client = () => {
    const c = new SemClient(SECRET, 5000, undefined, undefined, undefined, true, undefined, { version: 2 }, [DIFF]);
    clients.push(c);
    return c;
  };

  /** A raw frame for DIFF, MAC'd with `secret`. */
  const frame = (id: number, body: string, secret = SECRET) => encodeFrame(id, { path: DIFF, [MAC_HEADER]: mac(secret, `POST ${DIFF}`, body) }, body);
  /** A raw frame for DIFF as a client of this cluster sends it: sealed, then MAC'd. */
  const sealedFrame = (id: number, plain: string) => {
    const body = seal(bodyKey(SECRET), `POST ${DIFF}`, plain);
    return encodeFrame(id, { path: DIFF, [MAC_HEADER]: mac(SECRET, `POST ${DIFF}`, body), [ENC_HEADER]: '1' }, body);
  };

  before(async () => {
    range = allocLoopbackRange();
    ip = range.ip(1);
    port = await pickFreePort(ip);
  });

  beforeEach(() => {
    refused = [];
    handled = [];
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const c of clients.splice(0)) c.close();
    await server?.close();
    server = undefined;
  });

  after(() => range?.release());

  it('opens a stream ahead (warm): the first request travels on it, not as a POST on a fresh connection', async () => {
    await serve({ [DIFF]: echo });
    const c = client();
    const target = { address: ip, port };
    assert.equal(c.warm(target), false, 'opening, not open yet');
    await waitFor(() => c.streamOpen(target), { what: 'the warmed stream open', timeoutMs: 10_000 });
    assert.deepEqual(handled, [], 'opening a stream sends nothing');
    assert.equal(c.warm(target), true, 'the open stream is kept, not opened again');
    assert.deepEqual(await c.post(target, DIFF, 'first'), { echo: 'first' });
    // No HTTP request at all: the client's keep-alive agent never opened a socket.
    assert.equal(c.retained().sockets, 0);
    assert.equal(server!.load.streams, 1);
    // Without the warm-up, the first request is a POST (while the stream opens beside it).
    const cold = client();
    assert.deepEqual(await cold.post(target, DIFF, 'cold'), { echo: 'cold' });
    assert.equal(cold.retained().sockets, 1);
  });

  it('a warmed stream that carries nothing is closed by the server quietly, and warmed again later', async () => {
    await serve({ [DIFF]: echo }, { headersTimeoutMs: 150, bodyTimeoutMs: 150 });
    const c = client();
    const target = { address: ip, port };
    c.warm(target);
    await waitFor(() => c.streamOpen(target), { what: 'the warmed stream open', timeoutMs: 10_000 });
    await waitFor(() => !c.streamOpen(target) && server!.load.streams === 0, { what: 'the unused stream closed by the server', timeoutMs: 10_000 });
    assert.deepEqual(refused, [], 'an idle stream is no refusal');
    // No backoff: the next warm-up opens one at once.
    c.warm(target);
    await waitFor(() => c.streamOpen(target), { what: 'warmed again', timeoutMs: 10_000 });
    assert.deepEqual(await c.post(target, DIFF, 'later'), { echo: 'later' });
    assert.equal(c.retained().sockets, 0);
  });

  it('keeps a stream that carries a request more often than its idle time, and closes it once idle', async () => {
    // The idle timer is armed once and re-armed for what is left when it fires early
    // (sem-stream.ts idleCheck): a stream in use must never be closed under its requests.
    await serve({ [DIFF]: echo }, { idleTimeoutMs: 400 });
    const c = client();
    const target = { address: ip, port };
    await c.post(target, DIFF, 'open');
    await waitFor(() => c.streamOpen(target) && server!.load.streams === 1, { what: 'a stream open', timeoutMs: 10_000 });
    // The client's stream object: a stream closed and opened again would be another one.
    const streamOf = () => (c as unknown as { streams: Map<string, unknown> }).streams.get(`${ip}:${port}`);
    const first = streamOf();
    const until = Date.now() + 1500;
    let n = 0;
    while (Date.now() < until) {
      assert.deepEqual(await c.post(target, DIFF, `r${++n}`), { echo: `r${n}` });
      assert.ok(streamOf() === first && c.streamOpen(target) && server!.load.streams === 1, `still the one stream after ${n} requests`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => server!.load.streams === 0 && !c.streamOpen(target), { what: 'the idle stream closed by the server', timeoutMs: 10_000 });
    assert.deepEqual(refused, []);
  });

  it('carries several requests at once on one stream, answered in any order, through the route handler', async () => {
    const held: (() => void)[] = [];
    await serve({
      [DIFF]: (ctx) => {
        handled.push(ctx.body);
        let release!: () => void;
        const ready = new Promise<void>((r) => (release = r));
        held.push(release);
        return { status: 200, body: { echo: ctx.body }, ready };
      },
    }, {}, true);
    const c = client();
    const target = { address: ip, port };
    // The first request goes over HTTP while the stream opens.
    const first = c.post(target, DIFF, 'warm');
    await waitFor(() => held.length === 1, { what: 'first request handled', timeoutMs: 10_000 });
    held.shift()!();
    assert.deepEqual(await first, { echo: 'warm' });
    await waitFor(() => c.streamOpen(target), { what: 'the stream to open', timeoutMs: 10_000 });
    assert.equal(server!.load.streams, 1);
    const answers = [1, 2, 3, 4, 5].map((i) => c.post(target, DIFF, `m${i}`));
    await waitFor(() => held.length === 5, { what: 'five frames handled', timeoutMs: 10_000 });
    assert.equal(c.retained().inFlight, 5, 'five requests in flight on the stream');
    // Answered last to first.
    for (const r of held.splice(0).reverse()) r();
    assert.deepEqual(await Promise.all(answers), [1, 2, 3, 4, 5].map((i) => ({ echo: `m${i}` })));
    assert.equal(server!.load.streams, 1, 'still one stream');
    assert.equal(c.retained().inFlight, 0);
  });

  it('refuses a frame over its route cap before buffering it: answered 413, stream closed, refusal counted', async () => {
    await serve({ [DIFF]: echo });
    const { socket, status } = await upgrade(ip, port);
    sockets.push(socket);
    assert.match(status, / 101 /);
    const { frames, closed } = collect(socket);
    // Declares 1 MiB (the route's cap is 1 KiB) and sends only the prefix and head.
    const big = encodeFrame(9, { path: DIFF, [MAC_HEADER]: '0'.repeat(64) }, '');
    big.writeUInt32BE(1 << 20, 0);
    socket.write(big);
    await deadline(closed, 10_000, 'the stream closed');
    assert.equal(frames.length, 1);
    assert.equal(frames[0].id, 9);
    assert.equal(frames[0].head.status, '413');
    assert.equal(server!.load.preAuthBytes, 0);
    assert.ok(refused.some((r) => /too large/.test(r)), refused.join('; '));
    assert.deepEqual(handled, []);
  });

  it('closes a stream whose frame does not complete, one that brings two bytes, and a silent one, within their deadlines', async () => {
    await serve({ [DIFF]: echo }, { headersTimeoutMs: 300, bodyTimeoutMs: 300 });
    const closedOf = (x: { socket: net.Socket }) => new Promise<void>((r) => (x.socket.destroyed ? r() : x.socket.once('close', () => r())));
    const a = await upgrade(ip, port);
    sockets.push(a.socket);
    const aClosed = closedOf(a);
    const f = frame(1, 'a body that stops half-way');
    a.socket.write(f.subarray(0, f.length - 5));
    const b = await upgrade(ip, port);
    sockets.push(b.socket);
    const bClosed = closedOf(b);
    b.socket.write(Buffer.from([0, 0]));
    const c = await upgrade(ip, port);
    sockets.push(c.socket);
    const cClosed = closedOf(c);
    await deadline(aClosed, 10_000, 'the partial frame closed');
    await deadline(bClosed, 10_000, 'the two bytes closed');
    await deadline(cClosed, 10_000, 'the silent stream closed');
    // The two that sent bytes are refusals; the silent one is closed quietly (an idle connection).
    assert.equal(refused.length, 2, refused.join('; '));
    assert.ok(refused.every((r) => /frame not complete/.test(r)), refused.join('; '));
    assert.equal(server!.load.preAuthBytes, 0);
    await waitFor(() => server!.load.streams === 0, { what: 'no stream left', timeoutMs: 5_000 });
    assert.deepEqual(handled, []);
  });

  it('gives each frame its own deadline: a busy stream whose chunks all end mid-frame is not refused', async () => {
    await serve({ [DIFF]: echo }, { headersTimeoutMs: 300, bodyTimeoutMs: 300 });
    const a = await upgrade(ip, port);
    sockets.push(a.socket);
    const { frames } = collect(a.socket);
    // Ten frames over ~1.5 s (five times the frame deadline), each chunk the rest of one frame and
    // the first half of the next: a frame is always partial between chunks, none takes long.
    const all = Array.from({ length: 10 }, (_, i) => sealedFrame(i + 1, `frame ${i + 1}`));
    let rest: Buffer = Buffer.alloc(0);
    for (const f of all) {
      const half = Math.floor(f.length / 2);
      a.socket.write(Buffer.concat([rest, f.subarray(0, half)]));
      rest = f.subarray(half);
      await new Promise((r) => setTimeout(r, 150));
    }
    a.socket.write(rest);
    await waitFor(() => frames.length === 10, { what: `ten answers (got ${frames.length}; refused: ${refused.join('; ')})`, timeoutMs: 10_000 });
    assert.deepEqual(frames.map((f) => f.head.status), Array(10).fill('200'));
    assert.deepEqual(refused, []);
    assert.equal(a.socket.destroyed, false, 'the stream is still open');
  });

  it('answers a forged frame 401 unauthenticated and closes the stream; nothing is handled', async () => {
    await serve({ [DIFF]: echo });
    const { socket } = await upgrade(ip, port);
    sockets.push(socket);
    const { frames, closed } = collect(socket);
    socket.write(Buffer.concat([frame(1, '{"forged":true}', 'not-the-secret-0123456789abcdef'), frame(2, 'after the forged one')]));
    await deadline(closed, 10_000, 'the stream closed');
    assert.deepEqual(frames.map((f) => [f.id, f.head.status]), [[1, '401']]);
    assert.equal(frames[0].head[MAC_HEADER], undefined, 'a refusal before authentication carries no MAC');
    assert.ok(refused.some((r) => /HMAC does not match/.test(r)), refused.join('; '));
    assert.deepEqual(handled, [], 'neither the forged frame nor the one after it was handled');
  });

  it('counts streams in the per-address connection cap', async () => {
    await serve({ [DIFF]: echo }, { maxConnectionsPerPeer: 2 });
    const one = await upgrade(ip, port);
    const two = await upgrade(ip, port);
    sockets.push(one.socket, two.socket);
    assert.match(one.status, / 101 /);
    assert.match(two.status, / 101 /);
    assert.equal(server!.load.streams, 2);
    const three = await upgrade(ip, port).catch(() => ({ socket: undefined, status: 'closed' }));
    if (three.socket) sockets.push(three.socket);
    assert.equal(three.status, 'closed');
    assert.ok(refused.some((r) => /2 open from this address/.test(r)), refused.join('; '));
    assert.equal(server!.load.streams, 2);
  });

  it('posts over HTTP to a peer without streams (an older release answers the upgrade 404)', async () => {
    await serve({ [DIFF]: echo }, {}, false);
    const c = client();
    const target = { address: ip, port };
    for (let i = 0; i < 5; i++) assert.deepEqual(await c.post(target, DIFF, `m${i}`), { echo: `m${i}` });
    assert.equal(c.streamOpen(target), false);
    assert.equal(c.retained().streams, 0, 'no stream kept after the refusal');
    // Not asked again for a while (NO_STREAM_RETRY_MS), not at every post.
    const backoff = (c as unknown as { streamBackoff: Map<string, { until: number }> }).streamBackoff.get(`${ip}:${port}`);
    assert.ok(backoff && backoff.until - Date.now() > 30_000, JSON.stringify(backoff));
    assert.deepEqual(handled, ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.equal(server!.load.streams, 0);
  });

  it('fails requests in flight as a network error when the stream breaks, retried once over HTTP', async () => {
    let hold = true;
    const held: (() => void)[] = [];
    await serve({
      [DIFF]: (ctx) => {
        handled.push(ctx.body);
        if (!hold) return { status: 200, body: { echo: ctx.body } };
        let release!: () => void;
        const ready = new Promise<void>((r) => (release = r));
        held.push(release);
        return { status: 200, body: { echo: ctx.body }, ready };
      },
    });
    const c = client();
    const target = { address: ip, port };
    hold = false;
    await c.post(target, DIFF, 'warm');
    await waitFor(() => c.streamOpen(target), { what: 'the stream to open', timeoutMs: 10_000 });
    hold = true;
    const p = c.post(target, DIFF, 'in flight');
    await waitFor(() => held.length === 1, { what: 'the frame handled', timeoutMs: 10_000 });
    hold = false;
    // The server's end of the stream breaks with the request in flight.
    (server as unknown as { streams: Set<{ destroy(): void }> }).streams.forEach((s) => s.destroy());
    // Retried once over HTTP (the stream is in its backoff): answered there.
    assert.deepEqual(await p, { echo: 'in flight' });
    assert.deepEqual(handled, ['warm', 'in flight', 'in flight']);
    assert.equal(c.streamOpen(target), false);
    held.forEach((r) => r());
  });

  it('a client that closes fails its requests in flight at once and leaves no stream on either side', async () => {
    await serve({ [DIFF]: () => ({ status: 200, body: {}, ready: new Promise<void>(() => undefined) }) });
    const c = client();
    const target = { address: ip, port };
    void c.post(target, DIFF, 'warm').catch(() => undefined);
    await waitFor(() => c.streamOpen(target), { what: 'the stream to open', timeoutMs: 10_000 });
    const p = c.post(target, DIFF, 'never answered');
    await waitFor(() => c.retained().inFlight === 1, { what: 'in flight', timeoutMs: 10_000 });
    c.close();
    await assert.rejects(deadline(p, 2_000, 'the request failed'), (e: unknown) => e instanceof SemClientError);
    assert.deepEqual({ ...c.retained(), sockets: 0 }, { sockets: 0, queued: 0, streams: 0, inFlight: 0 });
    await waitFor(() => c.retained().sockets === 0, { what: 'no HTTP socket left', timeoutMs: 5_000 });
    await waitFor(() => server!.load.streams === 0, { what: 'the server side closed', timeoutMs: 5_000 });
  });

  it('a client gives a stream up when its peer stops reading (bytes not buffered without end)', async () => {
    // A peer that accepts the stream and then reads nothing (a stopped VM); any other connection
    // is closed at once, so the requests retried over HTTP fail fast.
    const conns: net.Socket[] = [];
    const fake = net.createServer((sock) => {
      conns.push(sock);
      sock.on('error', () => undefined);
      sock.once('data', (c: Buffer) => {
        if (!c.toString().startsWith(`GET ${STREAM_PATH}`)) return void sock.destroy();
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${STREAM_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
        sock.pause();
      });
    });
    await new Promise<void>((r) => fake.listen(port, ip, () => r()));
    try {
      const c = client();
      const target = { address: ip, port };
      await c.post(target, DIFF, 'opens the stream').catch(() => undefined);
      await waitFor(() => c.streamOpen(target), { what: 'the stream to open', timeoutMs: 10_000 });
      const body = 'x'.repeat(15 * 1024);
      const posts = Array.from({ length: 1500 }, (_, i) => c.post(target, DIFF, body + i, { timeoutMs: 60_000 }).then(() => 'answered', () => 'failed'));
      // Far before the requests' own deadline: the stream is given up and every request fails.
      const outcomes = await deadline(Promise.all(posts), 20_000, 'every request settled');
      assert.ok(outcomes.every((o) => o === 'failed'));
      assert.equal(c.streamOpen(target), false);
      assert.equal(c.retained().streams, 0);
    } finally {
      conns.forEach((s) => s.destroy());
      await new Promise<void>((r) => fake.close(() => r()));
    }
  });

  it('the server closes its streams when it closes', async () => {
    await serve({ [DIFF]: echo });
    const { socket } = await upgrade(ip, port);
    sockets.push(socket);
    const closed = new Promise((r) => socket.once('close', r));
    const s = server!;
    server = undefined;
    // Both within a deadline shorter than the stream's own first-frame deadline (10 s).
    await deadline(Promise.all([s.close(), closed]), 2_000, 'the server closed with its stream');
  });
});
