// The probes against real servers on loopback addresses of their own (127.0.x.y), started and
// stopped by the tests.
import * as assert from 'assert';
import * as http from 'http';
import * as net from 'net';
import { AddressInfo } from 'net';
import { parseServiceCheck, pingManager, probeService } from '../../lib/monitor/probes';

const HOST = '127.0.31.7';

function listen(server: net.Server, host = HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}
function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
/** A port that was free a moment ago and is now closed: connecting to it is refused. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

describe('monitor: probes against real local servers', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function pingServer(handler: http.RequestListener): Promise<{ port: number; server: http.Server; sockets: Set<net.Socket> }> {
    const server = http.createServer(handler);
    const sockets = new Set<net.Socket>();
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    const port = await listen(server);
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await close(server);
    });
    return { port, server, sockets };
  }

  it('ping: a manager answering 200 {hostname} is ok', async () => {
    const { port } = await pingServer((req, res) => {
      assert.strictEqual(req.url, '/p2p/ping');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ hostname: 'S2' }));
    });
    const r = await pingManager(HOST, port, 5000, 'S2');
    assert.strictEqual(r.outcome, 'ok', r.detail);
  });

  it('ping: another host answering at the address is manager-not-answering', async () => {
    const { port } = await pingServer((_req, res) => res.end(JSON.stringify({ hostname: 'S9' })));
    const r = await pingManager(HOST, port, 5000, 'S2');
    assert.strictEqual(r.outcome, 'manager-not-answering');
    assert.match(r.detail, /S9/);
  });

  it('ping: an HTTP error is manager-not-answering (host up, manager down)', async () => {
    const { port } = await pingServer((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const r = await pingManager(HOST, port, 5000);
    assert.strictEqual(r.outcome, 'manager-not-answering');
    assert.strictEqual(r.detail, 'HTTP 503');
  });

  it('ping: connection refused is manager-not-answering', async () => {
    const r = await pingManager(HOST, await closedPort(), 5000);
    assert.strictEqual(r.outcome, 'manager-not-answering');
    assert.strictEqual(r.detail, 'ECONNREFUSED');
  });

  it('ping: a peer that accepts but never answers is host-unreachable after the timeout, and its socket is closed', async () => {
    const { port, sockets } = await pingServer(() => {
      /* frozen: never answers */
    });
    const t0 = Date.now();
    const r = await pingManager(HOST, port, 200);
    const ms = Date.now() - t0;
    assert.strictEqual(r.outcome, 'host-unreachable');
    assert.strictEqual(r.detail, 'timeout');
    // Not declared before the timeout (how much later is for the benchmarks, not a unit test).
    assert.ok(ms >= 190, `took ${ms} ms`);
    // The watcher destroyed its socket: the server sees the connection close.
    const deadline = Date.now() + 10_000;
    while (sockets.size > 0 && Date.now() < deadline) await new Promise((r2) => setTimeout(r2, 10));
    assert.strictEqual(sockets.size, 0);
  });

  it('ping: probes use no keep-alive: every probe opens and closes its own connection', async () => {
    let connections = 0;
    const { server, sockets } = await pingServer((_req, res) => res.end('{"hostname":"S2"}'));
    server.on('connection', () => connections++);
    const port = (server.address() as AddressInfo).port;
    for (let i = 0; i < 5; i++) assert.strictEqual((await pingManager(HOST, port, 5000)).outcome, 'ok');
    assert.strictEqual(connections, 5);
    const deadline = Date.now() + 10_000;
    while (sockets.size > 0 && Date.now() < deadline) await new Promise((r2) => setTimeout(r2, 10));
    assert.strictEqual(sockets.size, 0);
  });

  it('tcp service: open port ok, closed port service-down', async () => {
    const server = net.createServer((s) => s.destroy());
    const port = await listen(server);
    cleanups.push(() => close(server));
    assert.strictEqual((await probeService(HOST, parseServiceCheck(`tcp:${port}`), 5000)).outcome, 'ok');
    const r = await probeService(HOST, parseServiceCheck(`tcp:${await closedPort()}`), 5000);
    assert.strictEqual(r.outcome, 'service-down');
    assert.strictEqual(r.check.startsWith('tcp:'), true);
  });

  it('http service: 2xx ok, 500 service-down, path is sent', async () => {
    const paths: string[] = [];
    const { port } = await pingServer((req, res) => {
      paths.push(req.url!);
      res.statusCode = req.url === '/health' ? 204 : 500;
      res.end();
    });
    assert.strictEqual((await probeService(HOST, parseServiceCheck(`http:${port}/health`), 5000)).outcome, 'ok');
    const bad = await probeService(HOST, parseServiceCheck(`http:${port}/broken`), 5000);
    assert.strictEqual(bad.outcome, 'service-down');
    assert.strictEqual(bad.detail, 'HTTP 500');
    assert.deepStrictEqual(paths, ['/health', '/broken']);
  });

  it('refuses malformed service checks with a clear error', () => {
    assert.throws(() => parseServiceCheck('udp:53'), /expected tcp:PORT or http:PORT\/PATH/);
    assert.throws(() => parseServiceCheck('tcp:99999'), /port out of range/);
    assert.throws(() => parseServiceCheck('http:80/a b'), /expected/);
    assert.deepStrictEqual(parseServiceCheck('http:8080'), { type: 'http', port: 8080, path: '/', text: 'http:8080' });
  });
});
