// The sentinel connection against a real local server: a crash (connections closed) is reported
// at once; a refused port is retried quietly; stop() closes everything.
import * as assert from 'assert';
import * as net from 'net';
import { AddressInfo } from 'net';
import { Sentinel } from '../../lib/monitor/sentinel';

const HOST = '127.0.31.8';

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('monitor: sentinel connection', () => {
  let server: net.Server | undefined;
  let sentinel: Sentinel | undefined;
  const sockets = new Set<net.Socket>();
  afterEach(async () => {
    sentinel?.stop();
    for (const s of sockets) s.destroy();
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
  });

  function listen(port = 0): Promise<number> {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    return new Promise((resolve) => server!.listen(port, HOST, () => resolve((server!.address() as AddressInfo).port)));
  }

  it('reports the loss of an established connection, and reconnects', async () => {
    const port = await listen();
    let lost = 0;
    sentinel = new Sentinel({ host: HOST, port, retryMs: 50, onLost: () => (lost += 1) });
    sentinel.start();
    await until(() => sockets.size === 1);
    for (const s of sockets) s.destroy(); // what the kernel does when the process dies
    await until(() => lost === 1);
    await until(() => sockets.size === 1);
    assert.strictEqual(sentinel.connected, true);
  });

  it('a refused port is retried without reporting anything; stop() leaves no connection', async () => {
    const port = await listen();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    let lost = 0;
    sentinel = new Sentinel({ host: HOST, port, retryMs: 20, onLost: () => lost++ });
    sentinel.start();
    await new Promise((r) => setTimeout(r, 150));
    assert.strictEqual(lost, 0);
    await listen(port);
    await until(() => sockets.size === 1);
    sentinel.stop();
    await until(() => sockets.size === 0);
    assert.strictEqual(lost, 0);
  });
});
