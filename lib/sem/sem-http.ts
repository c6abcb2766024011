// The SEM endpoint and client. Each p2p-store listens on a port of its own at the VM's cluster
// address (not on Node-RED's HTTP server): it keeps working when httpNodeRoot is disabled, it is
// not behind the editor's adminAuth (peers authenticate by HMAC instead), and it can be bound to
// the cluster network only. GET /p2p/ping is open (the heartbeat's network probe); every other
// route needs a valid MAC.
import * as http from 'http';
import { AddressInfo } from 'net';
import { MAC_HEADER, ProtocolError, mac, responseLabel, verifyMac } from './sem-protocol';

export interface Reply {
  status: number;
  body: unknown;
}

export interface RouteContext {
  body: string;
  remote: string;
}

export type Route = (ctx: RouteContext) => Promise<Reply> | Reply;

export interface ServerOptions {
  host: string;
  port: number;
  secret: string;
  routes: Record<string, { limit: number; handler: Route }>;
  ping: () => unknown;
  /** Called for each request refused before its handler ran (bad MAC, too big, ...). */
  onRefused: (remote: string, reason: string) => void;
}

export class SemServer {
  private server?: http.Server;

  constructor(private readonly opts: ServerOptions) {}

  listen(): Promise<number> {
    const server = http.createServer((req, res) => this.handle(req, res));
    // Longer than the client's idle keep-alive, so a reused socket is rarely closed under it.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    const s = this.server;
    if (!s) return Promise.resolve();
    this.server = undefined;
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const remote = req.socket.remoteAddress ?? '?';
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: unknown, requestMac?: string) => {
      const text = JSON.stringify(body);
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (requestMac) headers[MAC_HEADER] = mac(this.opts.secret, responseLabel(requestMac, status), text);
      res.writeHead(status, headers);
      res.end(text);
    };
    if (req.method === 'GET' && path === '/p2p/ping') return send(200, this.opts.ping());
    const route = req.method === 'POST' ? this.opts.routes[path] : undefined;
    if (!route) {
      req.resume();
      return send(404, { error: `no route ${req.method} ${path}` });
    }
    const refuse = (status: number, reason: string) => {
      this.opts.onRefused(remote, reason);
      send(status, { error: reason });
    };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > route.limit) {
      req.resume();
      return refuse(413, `message too large (${declared} bytes > ${route.limit})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > route.limit && !aborted) {
        aborted = true;
        refuse(413, `message too large (over ${route.limit} bytes)`);
        req.destroy();
        return;
      }
      if (!aborted) chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (aborted) return;
      const body = Buffer.concat(chunks).toString('utf8');
      const given = req.headers[MAC_HEADER];
      if (!verifyMac(this.opts.secret, `POST ${path}`, body, given)) {
        return refuse(401, 'forged or unauthenticated message: HMAC does not match the cluster secret');
      }
      const requestMac = given as string;
      Promise.resolve()
        .then(() => route.handler({ body, remote }))
        .then(
          (reply) => send(reply.status, reply.body, requestMac),
          (err: unknown) => {
            const status = err instanceof ProtocolError ? err.status : 500;
            const reason = err instanceof Error ? err.message : String(err);
            this.opts.onRefused(remote, reason);
            send(status, { ...(err instanceof ProtocolError ? err.details : {}), error: reason }, requestMac);
          },
        );
    });
  }
}

export interface Target {
  address: string;
  port: number;
}

export class SemClientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** The peer's authenticated answer, when it refused. */
    readonly body?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Signed requests to peers over keep-alive connections (a diff costs one round trip). */
export class SemClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8, keepAliveMsecs: 10_000 });
  /** The last request's MAC: one diff is posted to every peer with the same body, MACed once. */
  private lastMac = { path: '', body: '', mac: '' };

  constructor(
    private readonly secret: string,
    private readonly timeoutMs: number,
    /** Source address of requests: this VM's cluster address, so that per-address firewall rules
     * (and the peer's log) see who is talking. */
    private readonly localAddress?: string,
  ) {}

  /** POST a signed body; `timeoutMs` overrides the client's deadline for this request (a relayed
   * diff waits for its relay's whole subtree). */
  async post(target: Target, path: string, body: string, timeoutMs = this.timeoutMs): Promise<unknown> {
    try {
      return await this.once(target, path, body, timeoutMs);
    } catch (e) {
      // A kept-alive socket closed by the peer between two requests: try once on a fresh one.
      if ((e as { reused?: boolean }).reused) return this.once(target, path, body, timeoutMs);
      throw e;
    }
  }

  close(): void {
    this.agent.destroy();
  }

  /** Open sockets (in use and idle) and requests queued for one: bounded by maxSockets per peer. */
  retained(): { sockets: number; queued: number } {
    const count = (m: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(m).reduce((n, l) => n + (l?.length ?? 0), 0);
    return { sockets: count(this.agent.sockets) + count(this.agent.freeSockets), queued: count(this.agent.requests) };
  }

  private once(target: Target, path: string, body: string, timeoutMs: number): Promise<unknown> {
    const last = this.lastMac;
    const requestMac = last.body === body && last.path === path ? last.mac : mac(this.secret, `POST ${path}`, body);
    this.lastMac = { path, body, mac: requestMac };
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: target.address,
          port: target.port,
          path,
          method: 'POST',
          agent: this.agent,
          localAddress: this.localAddress,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            [MAC_HEADER]: requestMac,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let parsed: { error?: string; [k: string]: unknown } | undefined;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            if (!verifyMac(this.secret, responseLabel(requestMac, status), text, res.headers[MAC_HEADER])) {
              const why = parsed?.error ? `: ${parsed.error}` : '';
              return reject(new SemClientError(`unauthenticated answer (HTTP ${status})${why}`, status));
            }
            if (status < 200 || status >= 300) {
              return reject(new SemClientError(parsed?.error ?? `HTTP ${status}`, status, parsed));
            }
            resolve(parsed);
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new SemClientError(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const e = err instanceof SemClientError ? err : new SemClientError(err.code ? `${err.code} ${err.message}` : err.message);
        (e as { reused?: boolean }).reused = req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
        reject(e);
      });
      req.end(body);
    });
  }
}
