// A persistent stream per peer pair for diffs (issue 16: CPU per edit), instead of one HTTP POST per
// diff. Each POST cost the sender a ClientRequest, its headers, the parser, streams and a promise
// chain per peer; a frame on an open socket costs a buffer and a write.
//
// Opening: the client sends `GET /p2p/stream` with `Upgrade: p2p-sem-stream/1` on the SEM port;
// the server (./sem-http.ts) answers 101 and keeps the socket. A store that does not know streams
// (an older release, or one configured for wire version 1) answers 404 or closes: the client then
// posts over HTTP as before and asks again only after NO_STREAM_RETRY_MS.
//
// On the stream: frames (./sem-stream-frame.ts), each carrying exactly what a POST carries (path,
// wire version, sealed body, MAC, signature) or what its answer carries (status, MAC, signature).
// Every frame has a request id; several requests may be in flight and answers come back in any
// order. The server hands each frame to the very same dispatch a POST reaches (MAC, open, verify,
// replay guard, authority, durable-before-answer): the stream adds no trust of its own.
//
// Bounds before authentication (docs/security.md), server side: a frame's body is capped by its
// route's cap before it is kept, its bytes count in the pre-authentication budgets, a started frame
// must be complete within the body deadline, a new stream must bring its first authenticated frame
// within the header + body deadlines (closed quietly if it brought no byte at all, as an idle HTTP
// connection is), a frame that fails its MAC (or any check before it) is
// answered as a POST would be and closes the stream, the socket counts in the connection caps (it
// was admitted as an HTTP connection), and a stream idle for the idle time is closed.
//
// Failure: when a stream breaks, its requests in flight fail as a network error fails (a
// SemClientError marked `reused`, retried once by the client over HTTP); the next send reopens it
// after a backoff (1 s doubling to 30 s), posting over HTTP meanwhile. Nothing is acknowledged that
// the peer did not answer, and a peer answers a diff only once it is durable.
import * as http from 'http';
import type { Socket } from 'net';
import { ByteBudget } from '../net/bounded-body';
import { Frame, FrameError, FrameHead, FrameReader, HeadText, encodeFrame } from './sem-stream-frame';
import { withFields } from '../records/objects';

export const STREAM_PATH = '/p2p/stream';
export const STREAM_PROTOCOL = 'p2p-sem-stream/1';
/** A peer that answered the upgrade with anything but 101 is asked again after this. */
export const NO_STREAM_RETRY_MS = 60_000;
/** Backoff after a stream could not be opened or broke: first, and most. */
export const STREAM_BACKOFF_MS = { first: 1_000, max: 30_000 };
/** A client closes its stream after this long without requests (before the server's idle time). */
export const CLIENT_IDLE_MS = 10_000;
/** Frames of one stream being handled at once; past it the server stops reading the socket. */
export const MAX_IN_FLIGHT = 256;
/** Bytes a client may have written that its peer has not read (a stopped peer): past it the stream
 * is given up (its requests fail as broken) rather than buffered without end. */
export const MAX_UNSENT_BYTES = 1024 * 1024;

/** What a server does with one frame: the same dispatch as a POST. Returns true when the frame
 * passed authentication (its MAC and seal). `respond` is called once with the answer. */
export type StreamDispatch = (
  frame: { path: string; headers: FrameHead; body: string; remote: string },
  respond: (status: number, head: FrameHead, text: string, close: boolean) => void,
) => boolean;

export interface ServerStreamOptions {
  socket: Socket;
  /** Bytes that arrived after the upgrade request. */
  early: Buffer;
  remote: string;
  /** The body cap of a route carried on streams, or undefined when it is not carried. */
  routeLimit(path: string): number | undefined;
  budgets: ByteBudget[];
  /** First authenticated frame within this from the upgrade. */
  firstFrameMs: number;
  /** A started frame is complete within this. */
  frameMs: number;
  /** Nothing in flight and nothing arriving for this long: closed. */
  idleMs: number;
  dispatch: StreamDispatch;
  /** A refusal before authentication (counted by the refusal limiter). */
  refused(reason: string): void;
}

/** The server's end of one stream. */
export class ServerStream {
  private readonly reader: FrameReader;
  private inFlight = 0;
  /** Frames cut from the socket so far (a completed one restarts the deadline of the next). */
  private completed = 0;
  private authenticated = false;
  private received = false;
  private firstTimer?: NodeJS.Timeout;
  private frameTimer?: NodeJS.Timeout;
  private idleTimer?: NodeJS.Timeout;
  /** When a byte arrived or the last answer left (Date.now()). */
  private lastActive = 0;
  private closed = false;

  constructor(private readonly o: ServerStreamOptions) {
    const s = o.socket;
    s.setTimeout(0);
    s.setNoDelay(true);
    this.reader = new FrameReader({
      budgets: o.budgets,
      limitOf: (head, id) => {
        const limit = typeof head.path === 'string' ? o.routeLimit(head.path) : undefined;
        if (limit === undefined) throw new FrameError(`no route ${String(head.path).slice(0, 80)} on a stream`, 'malformed', id);
        return limit;
      },
      onFrame: (f) => {
        this.completed += 1;
        this.frame(f);
      },
    });
    // Nothing at all within the deadline is an idle connection (closed quietly, as HTTP's keep-alive
    // is); bytes but no authenticated frame is a refusal.
    this.firstTimer = setTimeout(() => {
      if (this.received) this.refuse(`no authenticated frame within ${o.firstFrameMs} ms of the stream's start`);
      else this.destroy();
    }, o.firstFrameMs);
    s.on('data', (c: Buffer) => this.data(c));
    s.on('error', () => undefined);
    s.on('close', () => this.cleanup());
    s.on('end', () => s.end());
    if (o.early.length) this.data(o.early);
  }

  /** Close at once (the server stops). */
  destroy(): void {
    this.o.socket.destroy();
  }

  private data(c: Buffer): void {
    if (this.closed) return;
    this.received = true;
    this.lastActive = Date.now();
    const before = this.completed;
    try {
      this.reader.push(c);
    } catch (e) {
      const err = e as FrameError;
      if (err.id !== undefined) this.answerAndClose(err.id, err.status, err.message);
      else this.refuse(err.message);
      return;
    }
    if (this.closed) return;
    // The deadline is per frame: the partial frame left after a completed one started in this
    // chunk, so it gets its own (a busy stream whose chunks all end mid-frame is not refused).
    if (this.reader.partial && this.frameTimer && this.completed !== before) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
    }
    if (this.reader.partial && !this.frameTimer) {
      this.frameTimer = setTimeout(() => this.refuse(`frame not complete within ${this.o.frameMs} ms`), this.o.frameMs);
    } else if (!this.reader.partial && this.frameTimer) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
    }
    this.idleCheck();
  }

  private frame(f: Frame): void {
    if (this.closed) return;
    this.inFlight += 1;
    if (this.inFlight >= MAX_IN_FLIGHT) this.o.socket.pause();
    let answered = false;
    const ok = this.o.dispatch({ path: f.head.path, headers: f.head, body: f.body.toString('utf8'), remote: this.o.remote }, (status, head, text, close) => {
      if (answered) return;
      answered = true;
      this.inFlight -= 1;
      if (this.inFlight < MAX_IN_FLIGHT && !this.closed) this.o.socket.resume();
      this.write(f.id, withFields(head, { status: String(status) }), text, close);
      this.idleCheck();
    });
    if (ok && !this.authenticated) {
      this.authenticated = true;
      clearTimeout(this.firstTimer);
      this.firstTimer = undefined;
    }
  }

  private write(id: number, head: FrameHead, text: string, close: boolean): void {
    const s = this.o.socket;
    if (this.closed || s.destroyed) return;
    if (!close) {
      s.write(encodeFrame(id, head, text));
      return;
    }
    // A refused frame closes the stream: nothing more is read from it.
    this.closing();
    s.end(encodeFrame(id, head, text));
    setTimeout(() => s.destroy(), 1000).unref();
  }

  /** Answer a frame refused before its handler (unauthenticated), then close. */
  private answerAndClose(id: number, status: number, reason: string): void {
    this.o.refused(reason);
    this.write(id, { status: String(status) }, JSON.stringify({ error: reason }), true);
  }

  private refuse(reason: string): void {
    if (this.closed) return;
    this.o.refused(reason);
    this.closing();
    this.o.socket.destroy();
  }

  /** Idle from now on (nothing in flight, no frame half-read): closed after idleMs unless more
   * comes. The timer is armed once and, when it fires early (activity since), armed again for what
   * is left, so a frame costs an assignment, not a clearTimeout and a setTimeout. */
  private idleCheck(): void {
    if (this.closed || this.inFlight > 0 || this.reader.partial) return;
    this.lastActive = Date.now();
    if (!this.idleTimer) this.armIdle(this.o.idleMs);
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // Busy: the answer that ends it (idleCheck) arms the timer again.
      if (this.closed || this.inFlight > 0 || this.reader.partial) return;
      const left = this.lastActive + this.o.idleMs - Date.now();
      if (left > 0) this.armIdle(left);
      else this.o.socket.destroy();
    }, ms);
  }

  /** Stop reading and forget what is held; the socket is closed by the caller. */
  private closing(): void {
    this.closed = true;
    this.o.socket.pause();
    this.clearTimers();
    this.reader.reset();
  }

  private clearTimers(): void {
    clearTimeout(this.firstTimer);
    clearTimeout(this.frameTimer);
    clearTimeout(this.idleTimer);
    this.firstTimer = this.frameTimer = this.idleTimer = undefined;
  }

  private cleanup(): void {
    this.closed = true;
    this.clearTimers();
    this.reader.reset();
  }
}

/** An answer frame as the client reads it, before any check. */
export interface StreamAnswer {
  status: number;
  headers: FrameHead;
  body: Buffer;
}

/** Why a stream is not there to carry a request: opening failed (`refused`: the peer answered but
 * did not upgrade), or it broke. */
export type StreamOutcome = 'open' | 'refused' | 'failed' | 'idle';

export interface ClientStreamOptions {
  address: string;
  port: number;
  localAddress?: string;
  /** Extra headers of the upgrade request (the wire version). */
  headers: http.OutgoingHttpHeaders;
  /** Deadline of the upgrade. */
  timeoutMs: number;
  /** Answer cap for a frame that answers no request in flight (one that timed out). */
  lateAnswerBytes: number;
  /** The stream opened, could not be opened, or ended (after being open: 'failed' or 'idle'). */
  onState(outcome: StreamOutcome): void;
  /** The error a request fails with: the stream broke under it (`retry`: as a kept-alive socket
   * closed under a request, tried once more), or its deadline passed. */
  broken(reason: string, retry: boolean): Error;
}

interface Pending {
  resolve: (a: StreamAnswer) => void;
  reject: (e: Error) => void;
  cap: number;
  timer: NodeJS.Timeout;
}

/** The client's end of one stream to one peer. */
export class ClientStream {
  private socket?: Socket;
  private reader?: FrameReader;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer?: NodeJS.Timeout;
  /** When the last request ended (Date.now()). */
  private lastActive = 0;
  private ended = false;
  private req?: http.ClientRequest;
  state: 'opening' | 'open' | 'closed' = 'opening';

  constructor(private readonly o: ClientStreamOptions) {
    const req = http.request({
      host: o.address,
      port: o.port,
      path: STREAM_PATH,
      method: 'GET',
      agent: false,
      localAddress: o.localAddress,
      headers: { ...o.headers, connection: 'Upgrade', upgrade: STREAM_PROTOCOL },
    });
    this.req = req;
    const timer = setTimeout(() => req.destroy(), o.timeoutMs);
    req.on('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      this.req = undefined;
      if (res.statusCode !== 101 || String(res.headers.upgrade).toLowerCase() !== STREAM_PROTOCOL || this.ended) {
        socket.destroy();
        return this.end(this.ended ? 'failed' : 'refused');
      }
      this.opened(socket as Socket, head);
    });
    req.on('response', (res) => {
      // Answered, but not upgraded: a store that does not know streams.
      clearTimeout(timer);
      res.resume();
      req.destroy();
      this.end('refused');
    });
    req.on('error', () => {
      clearTimeout(timer);
      this.end('failed');
    });
    req.end();
  }

  private opened(socket: Socket, early: Buffer): void {
    this.socket = socket;
    socket.setNoDelay(true);
    this.reader = new FrameReader({
      limitOf: (_head, id) => {
        const p = this.pending.get(id);
        if (p) return p.cap;
        if (id > 0 && id < this.nextId) return this.o.lateAnswerBytes;
        throw new FrameError('an answer to no request', 'malformed', id);
      },
      onFrame: (f) => this.answer(f),
    });
    socket.on('data', (c: Buffer) => {
      try {
        this.reader!.push(c);
      } catch (e) {
        this.destroy(`answer refused: ${(e as Error).message}`);
      }
    });
    socket.on('error', (e) => this.destroy(e.message));
    socket.on('close', () => this.destroy('closed by the peer'));
    this.state = 'open';
    this.o.onState('open');
    this.idleCheck();
    if (early.length) socket.emit('data', early);
  }

  /** In flight now (for tests and the retained-state check). */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Send one request frame; resolves with its answer frame, unchecked. */
  request(head: FrameHead | HeadText, body: string, cap: number, timeoutMs: number): Promise<StreamAnswer> {
    const socket = this.socket;
    if (this.state !== 'open' || !socket) return Promise.reject(this.o.broken('stream not open', true));
    if (socket.writableLength > MAX_UNSENT_BYTES) {
      this.destroy(`the peer has not read ${socket.writableLength} bytes`);
      return Promise.reject(this.o.broken('stream given up: the peer does not read', true));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<StreamAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(this.o.broken(`no answer within ${timeoutMs} ms`, false));
        // An answer stuck half-way holds every answer behind it: the stream is given up.
        if (this.reader?.partial) this.destroy(`an answer not complete within ${timeoutMs} ms`);
        else this.idleCheck();
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, cap, timer });
      socket.write(encodeFrame(id, head, body));
    });
  }

  private answer(f: Frame): void {
    const p = this.pending.get(f.id);
    if (!p) return; // late: its request already failed on its deadline
    this.pending.delete(f.id);
    clearTimeout(p.timer);
    const status = Number(f.head.status);
    p.resolve({ status: Number.isInteger(status) ? status : 0, headers: f.head, body: f.body });
    this.idleCheck();
  }

  /** Idle from now on (nothing in flight): closed after CLIENT_IDLE_MS unless a request comes. As
   * on the server, the timer is armed once and armed again for what is left when it fires early. */
  private idleCheck(): void {
    if (this.state !== 'open' || this.pending.size > 0) return;
    this.lastActive = Date.now();
    if (!this.idleTimer) this.armIdle(CLIENT_IDLE_MS);
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // Busy: the answer (or failure) that ends it arms the timer again.
      if (this.state !== 'open' || this.pending.size > 0) return;
      const left = this.lastActive + CLIENT_IDLE_MS - Date.now();
      if (left > 0) this.armIdle(left);
      else this.close('idle');
    }, ms);
  }

  /** Close from this side (idle, or the client stops): requests in flight fail, not retried. */
  close(outcome: 'idle' | 'failed' = 'failed', reason = 'stream closed'): void {
    this.req?.destroy();
    this.fail(reason, false);
    this.socket?.destroy();
    this.end(outcome);
  }

  private destroy(reason: string): void {
    if (this.ended) return;
    // Closed with nothing in flight (the peer's idle close, or it went away): nothing failed; the
    // next request asks again (and backs off if that fails).
    const outcome = this.pending.size > 0 || this.state !== 'open' ? 'failed' : 'idle';
    this.fail(reason, true);
    this.socket?.destroy();
    this.end(outcome);
  }

  private fail(reason: string, retry: boolean): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(this.o.broken(reason, retry));
    }
  }

  private end(outcome: StreamOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.state = 'closed';
    clearTimeout(this.idleTimer);
    this.reader?.reset();
    this.o.onState(outcome);
  }
}
