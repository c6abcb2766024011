// The SEM endpoint and client. Each p2p-store listens on a port of its own at the VM's cluster
// address (not on Node-RED's HTTP server): it keeps working when httpNodeRoot is disabled, it is
// not behind the editor's adminAuth (peers authenticate by HMAC instead), and it can be bound to
// the cluster network only. GET /p2p/ping is open (the heartbeat's network probe); every other
// route needs a valid MAC. Nothing is read before that check without a cap: connections (in all
// and per address), header and body deadlines of seconds, a byte cap per route and a budget of
// bytes held before authentication (in all and per address). See docs/security.md.
// Diffs and relay messages may also arrive as frames of a persistent stream per peer pair
// (./sem-stream.ts, `streamRoutes`): an upgraded connection whose frames reach the same dispatch
// (`authenticated`) as a POST; the client sends them there once the peer accepted a stream.
import * as http from 'http';
import { AddressInfo, Socket } from 'net';
import { BodyError, ByteBudget, readBounded } from '../net/bounded-body';
import { truncate } from '../records/files';
import { SIG_HEADER } from './vm-key';
import { PAIR_HEADER } from './pair-key';
import { bodyKey, ENC_HEADER, open, seal, SealError } from './wire-crypto';
import { MAC_HEADER, ProtocolError, WIRE_VERSION_HEADER, WireVersion, announcedVersion, mac, responseLabel, verifyMac } from './sem-protocol';
import { ClientStream, NO_STREAM_RETRY_MS, STREAM_BACKOFF_MS, STREAM_PATH, STREAM_PROTOCOL, ServerStream, StreamAnswer } from './sem-stream';
import { HeadText, type FrameHead } from './sem-stream-frame';

export interface Reply {
  status: number;
  body: unknown;
  /**
   * The answer is written only once this resolves; it is prepared (serialised, signed, sealed,
   * MAC'd) meanwhile, so a handler can return as soon as it knows its answer and let the server
   * do that work while the data becomes durable (a diff's journal fdatasync). When it rejects, the
   * error is answered instead, as if the handler had thrown it.
   */
  ready?: Promise<unknown>;
  /** Run right after the answer was handed to the socket (`ready` resolved). */
  afterSend?: () => void;
}

export interface RouteContext {
  body: string;
  remote: string;
  /** What the request's MAC and signature cover besides the body. */
  label: string;
  /** The sender's VM signature header (checked by the handler against the group file). */
  signature?: string;
  /** The wire version the request announces (sem-protocol WIRE_VERSION_HEADER; none: 1). */
  version: WireVersion;
}

export type Route = (ctx: RouteContext) => Promise<Reply> | Reply;

/** Bounds on what an unauthenticated sender can make this server hold (docs/security.md). */
export interface ServerLimits {
  /** Open connections at once, all senders together. */
  maxConnections: number;
  /** Open connections at once from one address. */
  maxConnectionsPerPeer: number;
  /** Request line and headers must arrive within this. */
  headersTimeoutMs: number;
  /** The whole body must arrive within this, from the request's start. */
  bodyTimeoutMs: number;
  /** A connection with nothing to do is closed after this (keep-alive idle). */
  idleTimeoutMs: number;
  /** Body bytes held before their MAC is checked, all senders together. */
  preAuthBytes: number;
  /** Body bytes held before their MAC is checked, from one address. */
  preAuthBytesPerPeer: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxConnections: 512,
  maxConnectionsPerPeer: 16,
  headersTimeoutMs: 5_000,
  bodyTimeoutMs: 5_000,
  idleTimeoutMs: 15_000,
  preAuthBytes: 16 * 1024 * 1024,
  preAuthBytesPerPeer: 8 * 1024 * 1024,
};

export interface ServerOptions {
  host: string;
  port: number;
  secret: string;
  routes: Record<string, { limit: number; handler: Route }>;
  ping: () => unknown;
  /** Called for each request or connection refused before its handler ran (bad MAC, too big, ...). */
  onRefused: (remote: string, reason: string) => void;
  limits?: Partial<ServerLimits>;
  /** This VM's signature of an answer (header value), when it signs; `pair` is the request's
   * PAIR_HEADER (the requester and the pair key it expects: ./pair-key-answer.ts). */
  sign?: (label: string, body: string, pair?: string) => string;
  /** Bodies sealed with AES-256-GCM under a key derived from the secret (wire-crypto); a plain
   * request is then refused. */
  encrypt?: boolean;
  /** The cluster secret before a rotation, while it is still accepted (docs/security.md, rotate the
   * cluster secret): a request MAC'd with it is taken and answered with it. */
  previousSecret?: () => string | undefined;
  /** Announce this wire version on every answer (unset: announce nothing, as version 1 did). */
  version?: WireVersion;
  /** Routes that may also arrive as frames of a persistent stream (./sem-stream.ts); unset or
   * empty: no stream is accepted (an upgrade is answered 404, as by a release without streams). */
  streamRoutes?: string[];
}

/** A request as both transports hand it over: an HTTP POST's, or a stream frame's. */
interface Incoming {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  remote: string;
  /** A refusal before authentication closes the connection (a stream's rule). */
  closeOnRefusal: boolean;
}

type Respond = (a: PreparedAnswer, close: boolean) => void;

interface PeerSlot {
  connections: number;
  budget: ByteBudget;
}

export class SemServer {
  private server?: http.Server;
  readonly limits: ServerLimits;
  private readonly budget: ByteBudget;
  private readonly peers = new Map<string, PeerSlot>();
  private connections = 0;
  private readonly streams = new Set<ServerStream>();

  private readonly key?: Buffer;

  constructor(private readonly opts: ServerOptions) {
    this.limits = { ...DEFAULT_SERVER_LIMITS, ...(opts.limits ?? {}) };
    if (opts.encrypt) this.key = bodyKey(opts.secret);
    this.budget = new ByteBudget(this.limits.preAuthBytes);
  }

  /** Connections open now, and body bytes held before authentication (for tests and status). */
  get load(): { connections: number; preAuthBytes: number; streams: number } {
    return { connections: this.connections, preAuthBytes: this.budget.inUse, streams: this.streams.size };
  }

  listen(): Promise<number> {
    const l = this.limits;
    const server = http.createServer(
      { headersTimeout: l.headersTimeoutMs, requestTimeout: l.headersTimeoutMs + l.bodyTimeoutMs, connectionsCheckingInterval: 1000 },
      (req, res) => this.handle(req, res),
    );
    server.keepAliveTimeout = l.idleTimeoutMs;
    server.timeout = l.idleTimeoutMs;
    server.maxHeadersCount = 32;
    server.on('connection', (socket: Socket) => this.admit(socket));
    server.on('clientError', (_err, socket) => socket.destroy());
    if (this.opts.streamRoutes?.length) server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
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
      // Upgraded sockets are no longer the HTTP server's: closed here.
      for (const st of this.streams) st.destroy();
    });
  }

  /** `GET /p2p/stream` with `Upgrade: p2p-sem-stream/1`: the socket becomes a stream (./sem-stream.ts).
   * It was admitted as a connection (it counts in the caps until it closes). */
  private upgrade(req: http.IncomingMessage, socket: Socket, early: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    const remote = socket.remoteAddress ?? '?';
    if (!this.server || req.method !== 'GET' || path !== STREAM_PATH || String(req.headers.upgrade).toLowerCase() !== STREAM_PROTOCOL) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.on('error', () => undefined);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const l = this.limits;
    const slot = this.peers.get(remote);
    const routes = new Set(this.opts.streamRoutes);
    const version = this.opts.version && this.opts.version > 1 ? `${WIRE_VERSION_HEADER}: ${this.opts.version}\r\n` : '';
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${STREAM_PROTOCOL}\r\nConnection: Upgrade\r\n${version}\r\n`);
    const stream: ServerStream = new ServerStream({
      socket,
      early,
      remote,
      routeLimit: (p) => (routes.has(p) ? this.opts.routes[p]?.limit : undefined),
      budgets: slot ? [this.budget, slot.budget] : [this.budget],
      firstFrameMs: l.headersTimeoutMs + l.bodyTimeoutMs,
      frameMs: l.bodyTimeoutMs,
      idleMs: l.idleTimeoutMs,
      refused: (reason) => this.opts.onRefused(remote, reason),
      dispatch: (f, respond) => {
        const route = this.opts.routes[f.path];
        return this.authenticated({ path: f.path, headers: f.headers, body: f.body, remote: f.remote, closeOnRefusal: true }, route.handler, (a, close) =>
          respond(a.status, answerHead(a.headers), a.text, close),
        );
      },
    });
    this.streams.add(stream);
    socket.once('close', () => this.streams.delete(stream));
  }

  /** An answer's bytes and headers: MAC'd (and signed, sealed) when it answers an authenticated request. */
  private prepare(status: number, body: unknown, requestMac: string | undefined, secret: string, pair?: string): PreparedAnswer {
    let text = JSON.stringify(body);
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (requestMac) {
      // Answered under the secret the request was MAC'd with (the previous one during a rotation).
      const label = responseLabel(requestMac, status);
      if (this.opts.sign) headers[SIG_HEADER] = this.opts.sign(label, text, pair);
      if (this.key) {
        text = seal(secret === this.opts.secret ? this.key : bodyKey(secret), label, text);
        headers[ENC_HEADER] = '1';
      }
      headers[MAC_HEADER] = mac(secret, label, text);
    }
    if (this.opts.version && this.opts.version > 1) headers[WIRE_VERSION_HEADER] = String(this.opts.version);
    return { status, headers, text };
  }

  private write(req: http.IncomingMessage, res: http.ServerResponse, a: PreparedAnswer, close: boolean): void {
    if (res.headersSent || res.destroyed) return;
    if (close) a.headers.connection = 'close';
    a.headers['content-length'] = Buffer.byteLength(a.text);
    res.writeHead(a.status, a.headers);
    res.end(a.text);
    // A refused body is not read to its end: close the connection instead of draining it.
    if (close) res.once('finish', () => req.socket.destroy());
  }

  /** Count a new connection against the global and per-address caps; over them it is closed at once. */
  private admit(socket: Socket): void {
    const remote = socket.remoteAddress ?? '?';
    const l = this.limits;
    const slot = this.peers.get(remote);
    if (this.connections >= l.maxConnections || (slot && slot.connections >= l.maxConnectionsPerPeer)) {
      socket.destroy();
      const which = this.connections >= l.maxConnections ? `${l.maxConnections} open in all` : `${l.maxConnectionsPerPeer} open from this address`;
      this.opts.onRefused(remote, `connection refused: ${which}`);
      return;
    }
    const s = slot ?? { connections: 0, budget: new ByteBudget(l.preAuthBytesPerPeer) };
    if (!slot) this.peers.set(remote, s);
    s.connections += 1;
    this.connections += 1;
    socket.once('close', () => {
      this.connections -= 1;
      s.connections -= 1;
      if (s.connections <= 0) this.peers.delete(remote);
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const remote = req.socket.remoteAddress ?? '?';
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: unknown, requestMac?: string, close = false, secret = this.opts.secret) =>
      this.write(req, res, this.prepare(status, body, requestMac, secret), close);
    if (req.method === 'GET' && path === '/p2p/ping') return send(200, this.opts.ping());
    const route = req.method === 'POST' ? this.opts.routes[path] : undefined;
    if (!route) {
      req.resume();
      return send(404, { error: `no route ${req.method} ${path}` }, undefined, true);
    }
    const refuse = (status: number, reason: string, close = false) => {
      this.opts.onRefused(remote, reason);
      send(status, { error: reason }, undefined, close);
    };
    if (req.headers['content-length'] === undefined) {
      // Every SEM client declares its body's length: a body of unknown length is not read.
      return refuse(411, 'refused: a request body without Content-Length', true);
    }
    const budgets = [this.budget];
    const slot = this.peers.get(remote);
    if (slot) budgets.push(slot.budget);
    readBounded(req, {
      limit: route.limit,
      timeoutMs: this.limits.bodyTimeoutMs,
      declared: Number(req.headers['content-length']),
      budgets,
      keepOpen: true,
    }).then(
      (buf) => {
        this.authenticated({ path, headers: req.headers, body: buf.toString('utf8'), remote, closeOnRefusal: false }, route.handler, (a, close) => this.write(req, res, a, close));
      },
      (e: unknown) => {
        if (e instanceof BodyError) refuse(e.status, e.message, true);
        else refuse(400, String(e), true);
      },
    );
  }

  /**
   * One request, whichever transport brought it: MAC (current or previous secret), seal, then the
   * route's handler, whose answer is prepared and handed to `respond` (once its data is durable).
   * Returns true when the request passed authentication and reached its handler.
   */
  private authenticated(input: Incoming, handler: Route, respond: Respond): boolean {
    const { path, headers, body, remote } = input;
    const pair = input.headers[PAIR_HEADER] as string | undefined;
    const send = (status: number, answer: unknown, requestMac?: string, close = false, secret = this.opts.secret) =>
      respond(this.prepare(status, answer, requestMac, secret, pair), close);
    const refuse = (status: number, reason: string): false => {
      this.opts.onRefused(remote, reason);
      send(status, { error: reason }, undefined, input.closeOnRefusal);
      return false;
    };
    const given = headers[MAC_HEADER];
    let secret = this.opts.secret;
    if (!verifyMac(secret, `POST ${path}`, body, given)) {
      const previous = this.opts.previousSecret?.();
      if (!previous || !verifyMac(previous, `POST ${path}`, body, given)) {
        return refuse(401, 'forged or unauthenticated message: HMAC does not match the cluster secret');
      }
      secret = previous;
    }
    const requestMac = given as string;
    const sealed = headers[ENC_HEADER] === '1';
    if (sealed !== !!this.key) return refuse(400, sealed ? 'refused: an encrypted message, this VM does not encrypt' : 'refused: a plain-text message, this cluster encrypts');
    let plain = body;
    if (this.key) {
      try {
        plain = open(secret === this.opts.secret ? this.key : bodyKey(secret), `POST ${path}`, body);
      } catch (e) {
        return refuse(400, `refused: ${(e as SealError).message}`);
      }
    }
    const failed = (err: unknown) => {
      const status = err instanceof ProtocolError ? err.status : 500;
      const reason = err instanceof Error ? err.message : String(err);
      this.opts.onRefused(remote, reason);
      send(status, { ...(err instanceof ProtocolError ? err.details : {}), error: reason }, requestMac, false, secret);
    };
    Promise.resolve()
      .then(() => handler({ body: plain, remote, label: `POST ${path}`, signature: headers[SIG_HEADER] as string | undefined, version: announcedVersion(headers[WIRE_VERSION_HEADER]) }))
      .then((reply) => {
        if (!reply.ready) {
          send(reply.status, reply.body, requestMac, false, secret);
          reply.afterSend?.();
          return;
        }
        // Prepared now, written once the handler's data is durable.
        const answer = this.prepare(reply.status, reply.body, requestMac, secret, pair);
        return reply.ready.then(() => {
          respond(answer, false);
          reply.afterSend?.();
        });
      })
      .catch(failed);
    return true;
  }
}

/** An answer's x-p2p-* headers, as a stream frame's head carries them. */
function answerHead(h: http.OutgoingHttpHeaders): FrameHead {
  const head: FrameHead = {};
  for (const k of Object.keys(h)) if (k.startsWith('x-p2p-')) head[k] = String(h[k]);
  return head;
}

interface PreparedAnswer {
  status: number;
  headers: http.OutgoingHttpHeaders;
  text: string;
}

/** An answer's JSON body, or undefined when it is not JSON. */
function parse(t: string): { error?: string; [k: string]: unknown } | undefined {
  try {
    return JSON.parse(t);
  } catch {
    return undefined;
  }
}

/** Cap of an answer that carries no files (a diff's acknowledgement or refusal). */
export const SMALL_ANSWER_BYTES = 64 * 1024;

function declaredLength(h: http.IncomingHttpHeaders): number | undefined {
  return h['content-length'] !== undefined ? Number(h['content-length']) : undefined;
}

export interface Target {
  address: string;
  port: number;
}

export interface PostOptions {
  /** Cap of the answer's body (default SMALL_ANSWER_BYTES). */
  maxAnswerBytes?: number;
  /** Deadline of this request (default: the client's). */
  timeoutMs?: number;
  /** The `x-p2p-sig` value to send instead of this VM's own signature: an origin's signature of
   * exactly this body, forwarded by a relay. */
  signature?: string;
}

/** PostOptions with every field present: what the request path reads, in one shape. */
class RequestOptions {
  readonly maxAnswerBytes: number;
  readonly timeoutMs: number;
  readonly signature: string | undefined;
  constructor(o: PostOptions, clientTimeoutMs: number) {
    this.maxAnswerBytes = o.maxAnswerBytes ?? SMALL_ANSWER_BYTES;
    this.timeoutMs = o.timeoutMs ?? clientTimeoutMs;
    this.signature = o.signature;
  }
}

/** The headers an answer's checks read, from a frame's head or an HTTP answer's headers (objects
 * of many shapes: a dictionary, or a parsed head with or without each optional field), in one shape. */
class AnswerHeaders {
  readonly mac: string | string[] | undefined;
  readonly enc: string | string[] | undefined;
  readonly sig: string | undefined;
  readonly version: string | string[] | undefined;
  constructor(h: Record<string, string | string[] | undefined>) {
    this.mac = h[MAC_HEADER];
    this.enc = h[ENC_HEADER];
    this.sig = h[SIG_HEADER] as string | undefined;
    this.version = h[WIRE_VERSION_HEADER];
  }
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

/** An answer whose MAC does not check out: a refusal before authentication (a peer that does not
 * know this secret) or a stranger. */
export class UnauthenticatedAnswer extends SemClientError {}

/** Signed requests to peers over keep-alive connections (a diff costs one round trip), or as frames
 * on a stream per peer for the paths given in `streamPaths` (./sem-stream.ts). */
export class SemClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8, keepAliveMsecs: 10_000 });

  constructor(
    private readonly secret: string,
    private readonly timeoutMs: number,
    /** Source address of requests: this VM's cluster address, so that per-address firewall rules
     * (and the peer's log) see who is talking. */
    private readonly localAddress?: string,
    /** Signs a request (header value) with this VM's key. */
    private readonly sign?: (label: string, body: string) => string,
    /** Why an answer's signature is not acceptable from this target, or null. */
    private readonly checkAnswer?: (target: Target, label: string, text: string, signature: string | undefined) => string | null,
    /** Seal bodies (wire-crypto) and require sealed answers. */
    encrypt = false,
    /** The secret before a rotation, while it is accepted: used for a peer that does not know the
     * new one yet (docs/security.md, rotate the cluster secret). */
    private readonly previousSecret?: () => string | undefined,
    /** This VM's wire version, announced on every request (unset: none, as version 1), who
     * hears the version each authenticated answer announces, and the pair header of a request to
     * a target (./pair-key-answer.ts). */
    private readonly wire: { version?: WireVersion; heard?: (target: Target, version: WireVersion) => void; pair?: (target: Target) => string | undefined } = {},
    /** Paths sent over a persistent stream per peer (./sem-stream.ts) when the peer accepts one. */
    streamPaths: string[] = [],
  ) {
    if (encrypt) this.key = bodyKey(secret);
    this.streamPaths = new Set(streamPaths);
  }

  private readonly streamPaths: ReadonlySet<string>;
  /** Streams by peer (address:port): opening or open. */
  private readonly streams = new Map<string, ClientStream>();
  /** Peers not to open a stream to before `until`, and the last backoff (doubled on each failure). */
  private readonly streamBackoff = new Map<string, { until: number; delay: number }>();
  private closed = false;

  private readonly key?: Buffer;
  private previousKey?: { secret: string; key: Buffer };
  /** Peers (address:port) that answered only the previous secret during a rotation. */
  private readonly onPrevious = new Set<string>();

  /**
   * POST a body, MAC'd, sealed and signed by this VM unless `opts.signature` brings the signature
   * of the body's origin (a relay passing an origin's diff on unchanged: ./fanout.ts). The answer
   * is read up to `maxAnswerBytes` (default: a small answer) within `timeoutMs` (default: the
   * client's deadline; a relayed diff waits for its relay's whole subtree). During a secret
   * rotation, a peer that refuses the new secret before authenticating (it has not changed yet) is
   * sent the message again under the previous one, and from then on first under that one.
   */
  post(given: Target, path: string, body: string, options: PostOptions = {}): Promise<unknown> {
    // One shape per concept from here on (V8: the callers' literals differ in their fields; the
    // request path below, optimised once, must not be thrown away when another caller comes).
    const target: Target = { address: given.address, port: given.port };
    const opts = new RequestOptions(options, this.timeoutMs);
    const previous = this.previousSecret?.();
    // Promise chains, not async functions: a diff is posted to every peer per edit, and each
    // async frame and await of this path cost the sender an object graph per peer (issue 16, the
    // sender's allocation per edit). The outcomes are the same as with try/await.
    if (!previous) return this.retried(target, path, body, opts, this.secret);
    const peer = `${target.address}:${target.port}`;
    const first = this.onPrevious.has(peer) ? previous : this.secret;
    const r = this.retried(target, path, body, opts, first);
    if (first === previous) return r;
    return r.catch((e: unknown) => {
      if (!(e instanceof UnauthenticatedAnswer) || e.status !== 401) throw e;
      return this.retried(target, path, body, opts, previous).then((v) => {
        this.onPrevious.add(peer);
        return v;
      });
    });
  }

  private retried(target: Target, path: string, body: string, opts: RequestOptions, secret: string): Promise<unknown> {
    // A kept-alive socket closed by the peer between two requests: tried once on a fresh one.
    return this.attempt(target, path, body, opts, secret).catch((e: unknown) => {
      if ((e as { reused?: boolean }).reused) return this.attempt(target, path, body, opts, secret);
      throw e;
    });
  }

  /** `once`, whose synchronous throw (a signer's error) is a rejection, as in an async function. */
  private attempt(target: Target, path: string, body: string, opts: RequestOptions, secret: string): Promise<unknown> {
    try {
      return this.once(target, path, body, opts, secret);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The body key of a secret: this client's own, or the previous secret's (derived once). */
  private keyOf(secret: string): Buffer | undefined {
    if (!this.key || secret === this.secret) return this.key;
    if (this.previousKey?.secret !== secret) this.previousKey = { secret, key: bodyKey(secret) };
    return this.previousKey.key;
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
    for (const s of [...this.streams.values()]) s.close('failed', 'the client closed');
    this.streams.clear();
  }

  /** Open sockets (in use and idle) and requests queued for one: bounded by maxSockets per peer;
   * streams open or opening (one per peer at most) and their requests in flight. */
  retained(): { sockets: number; queued: number; streams: number; inFlight: number } {
    const count = (m: NodeJS.ReadOnlyDict<unknown[]>) => Object.values(m).reduce((n, l) => n + (l?.length ?? 0), 0);
    let inFlight = 0;
    for (const s of this.streams.values()) inFlight += s.inFlight;
    return { sockets: count(this.agent.sockets) + count(this.agent.freeSockets), queued: count(this.agent.requests), streams: this.streams.size, inFlight };
  }

  /** Whether a stream to this peer is open now (for tests and status). */
  streamOpen(target: Target): boolean {
    return this.streams.get(`${target.address}:${target.port}`)?.state === 'open';
  }

  /**
   * Open the stream to a peer now, in the background, when none is open or opening and the peer is
   * not in its backoff; sends nothing. Without it the first request to a peer goes as an HTTP POST
   * on a fresh connection while the stream's upgrade opens a second one beside it: a VM that is
   * busy (a resumed backup becoming a member, docs/recovery.md) accepts, parses and answers those
   * over several turns of its event loop, where a frame on an open stream takes one. A stream that
   * carries nothing is closed by the peer after its first-frame deadline, quietly (no backoff).
   * True when a stream is open now.
   */
  warm(target: Target): boolean {
    if (!this.streamPaths.size) return false;
    return this.streamTo({ address: target.address, port: target.port }) !== undefined;
  }

  /** The last request prepared: a diff sent to every peer is signed, sealed and MAC'd once (per secret). */
  private prepared?: { path: string; plain: string; given?: string; secret: string; signature?: string; body: string; requestMac: string; streamHead?: string };

  private prepare(path: string, plain: string, given: string | undefined, secret: string): { signature?: string; body: string; requestMac: string } {
    const p = this.prepared;
    if (p && p.path === path && p.plain === plain && p.given === given && p.secret === secret) return p;
    const signature = p && p.path === path && p.plain === plain && p.given === given ? p.signature : (given ?? (this.sign ? this.sign(`POST ${path}`, plain) : undefined));
    const key = this.keyOf(secret);
    const body = key ? seal(key, `POST ${path}`, plain) : plain;
    this.prepared = { path, plain, given, secret, signature, body, requestMac: mac(secret, `POST ${path}`, body) };
    return this.prepared;
  }

  private once(target: Target, path: string, plain: string, opts: RequestOptions, secret = this.secret): Promise<unknown> {
    const { signature, body, requestMac } = this.prepare(path, plain, opts.signature, secret);
    const key = this.keyOf(secret);
    const pair = this.wire.pair?.(target);
    const maxAnswerBytes = opts.maxAnswerBytes;
    const timeoutMs = opts.timeoutMs;
    const version = this.wire.version && this.wire.version > 1 ? String(this.wire.version) : undefined;
    const stream = this.streamPaths.has(path) ? this.streamTo(target) : undefined;
    if (stream) {
      // The fields every peer's frame of this request carries, serialised once per request (the
      // prepared request is the same for every peer of an edit); the pair header is each peer's.
      const prepared = this.prepared!;
      if (prepared.streamHead === undefined) {
        const head: FrameHead = { path, [MAC_HEADER]: requestMac };
        if (signature) head[SIG_HEADER] = signature;
        if (key) head[ENC_HEADER] = '1';
        if (version) head[WIRE_VERSION_HEADER] = version;
        prepared.streamHead = HeadText.sharedOf(head);
      }
      const head = new HeadText(prepared.streamHead, pair ? HeadText.field(PAIR_HEADER, pair) : '');
      return stream.request(head, body, maxAnswerBytes, timeoutMs).then((a: StreamAnswer) => this.answerOf(target, a.status, new AnswerHeaders(a.headers), a.body.toString('utf8'), requestMac, secret, key));
    }
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
            ...(signature ? { [SIG_HEADER]: signature } : {}),
            ...(key ? { [ENC_HEADER]: '1' } : {}),
            ...(pair ? { [PAIR_HEADER]: pair } : {}),
            ...(version ? { [WIRE_VERSION_HEADER]: version } : {}),
          },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          // The answer is not authenticated until its MAC is checked: read it within a cap (a fake
          // server at a seed's address must not make this runtime buffer without end), and within
          // the request's deadline (its timer below destroys the request and so this answer: one
          // timer per request, not two).
          readBounded(res, { limit: maxAnswerBytes, declared: declaredLength(res.headers) }).then(
            (buf) => {
              clearTimeout(timer);
              try {
                resolve(this.answerOf(target, status, new AnswerHeaders(res.headers), buf.toString('utf8'), requestMac, secret, key));
              } catch (e) {
                reject(e);
              }
            },
            (e: Error) => {
              clearTimeout(timer);
              req.destroy();
              reject(new SemClientError(`answer refused: ${e.message}`, status));
            },
          );
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

  /** An answer's checks, whichever transport brought it: MAC, seal, the peer's signature; its
   * parsed body, or the SemClientError it stands for. */
  private answerOf(target: Target, status: number, headers: AnswerHeaders, wire: string, requestMac: string, secret: string, key: Buffer | undefined): unknown {
    const label = responseLabel(requestMac, status);
    if (!verifyMac(secret, label, wire, headers.mac)) {
      // Unauthenticated (a refusal before the MAC check, or a stranger): its text is only a hint.
      const hint = parse(wire)?.error;
      const why = hint ? `: ${truncate(String(hint))}` : '';
      throw new UnauthenticatedAnswer(`unauthenticated answer (HTTP ${status})${why}`, status);
    }
    let text = wire;
    if (key) {
      if (headers.enc !== '1') throw new SemClientError(`answer refused (HTTP ${status}): not encrypted`, status);
      try {
        text = open(key, label, wire);
      } catch (e) {
        throw new SemClientError(`answer refused (HTTP ${status}): ${(e as Error).message}`, status);
      }
    }
    const parsed = parse(text);
    const unsigned = this.checkAnswer?.(target, label, text, headers.sig);
    if (unsigned) throw new SemClientError(`answer refused (HTTP ${status}): ${unsigned}`, status);
    this.wire.heard?.(target, announcedVersion(headers.version));
    if (status < 200 || status >= 300) throw new SemClientError(parsed?.error ?? `HTTP ${status}`, status, parsed);
    return parsed;
  }

  /**
   * The open stream to a peer, or undefined (post over HTTP meanwhile): none is open, so one is
   * opened in the background unless the peer is in its backoff (it refused a stream lately, or a
   * stream to it failed or broke).
   */
  private streamTo(target: Target): ClientStream | undefined {
    if (this.closed) return undefined;
    const peer = `${target.address}:${target.port}`;
    const s = this.streams.get(peer);
    if (s) return s.state === 'open' ? s : undefined;
    const b = this.streamBackoff.get(peer);
    if (b && Date.now() < b.until) return undefined;
    const stream: ClientStream = new ClientStream({
      address: target.address,
      port: target.port,
      localAddress: this.localAddress,
      headers: this.wire.version && this.wire.version > 1 ? { [WIRE_VERSION_HEADER]: String(this.wire.version) } : {},
      timeoutMs: this.timeoutMs,
      lateAnswerBytes: SMALL_ANSWER_BYTES,
      broken: (reason, retry) => {
        const e = new SemClientError(`stream to ${peer}: ${reason}`);
        (e as { reused?: boolean }).reused = retry;
        return e;
      },
      onState: (outcome) => {
        if (outcome === 'open') {
          this.streamBackoff.delete(peer);
          return;
        }
        if (this.streams.get(peer) === stream) this.streams.delete(peer);
        if (outcome === 'idle') return;
        if (outcome === 'refused') {
          // Answered without upgrading: a store that does not know streams (rolling upgrade).
          this.streamBackoff.set(peer, { until: Date.now() + NO_STREAM_RETRY_MS, delay: STREAM_BACKOFF_MS.first });
          return;
        }
        const prev = this.streamBackoff.get(peer);
        const delay = prev ? Math.min(prev.delay * 2, STREAM_BACKOFF_MS.max) : STREAM_BACKOFF_MS.first;
        this.streamBackoff.set(peer, { until: Date.now() + delay, delay });
      },
    });
    if (stream.state !== 'closed') this.streams.set(peer, stream);
    return undefined;
  }
}
