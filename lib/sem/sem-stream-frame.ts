// The frames of a SEM stream (./sem-stream.ts): one request or one answer each, length-prefixed.
//
//   offset 0  u32 BE  body length
//   offset 4  u16 BE  head length (at most MAX_HEAD_BYTES)
//   offset 6  u32 BE  request id (an answer carries its request's)
//   offset 10 head    JSON object of strings: a request's `path` or an answer's `status`, and the
//                     same x-p2p-* values an HTTP request or answer carries as headers
//   then      body    exactly the bytes an HTTP body carries (sealed, MAC'd as there)
//
// Nothing of a frame is authenticated before its MAC is checked, so the reader is bounded as an
// HTTP body read is (../net/bounded-body.ts): the head has a small cap, the body's length is
// checked against the cap its head names (the route's body cap, or the request's answer cap)
// before a byte of it is kept, and its bytes are reserved from the byte budgets of
// unauthenticated data while they are held. A violation is a typed FrameError; the stream is then
// closed by its owner.
import { ByteBudget } from '../net/bounded-body';

export const FRAME_PREFIX_BYTES = 10;
export const MAX_HEAD_BYTES = 2048;
const MAX_HEAD_KEYS = 16;

export type FrameHead = Record<string, string>;

export interface Frame {
  id: number;
  head: FrameHead;
  body: Buffer;
}

export type FrameErrorKind = 'too-large' | 'malformed' | 'over-budget';

export class FrameError extends Error {
  constructor(
    message: string,
    readonly kind: FrameErrorKind,
    /** The frame's request id, when its prefix was read. */
    readonly id?: number,
  ) {
    super(message);
    this.name = 'FrameError';
  }

  /** The HTTP status a server answers with for this kind (as for an HTTP body). */
  get status(): number {
    return this.kind === 'too-large' ? 413 : this.kind === 'over-budget' ? 503 : 400;
  }
}

/**
 * A head serialised ahead, in two parts: `shared`, the JSON text of the fields every frame of one
 * request carries to every peer, without its closing brace (serialised once per request); `own`,
 * this frame's further fields as `,"key":"value"` text (or ''). A sender of an edit writes five
 * frames whose heads differ only in the pair header: JSON.stringify of each whole head was ~0.6 KB
 * of garbage per frame (issue 16, the sender's allocation per edit). The bytes are the same JSON.
 */
export class HeadText {
  constructor(
    readonly shared: string,
    readonly own: string,
  ) {}

  /** The head's fields serialised once (`head` must have at least one field). */
  static sharedOf(head: FrameHead): string {
    return JSON.stringify(head).slice(0, -1);
  }

  /** One more field, as `own` text. */
  static field(key: string, value: string): string {
    return `,${JSON.stringify(key)}:${JSON.stringify(value)}`;
  }
}

export function encodeFrame(id: number, head: FrameHead | HeadText, body: string): Buffer {
  const h = head instanceof HeadText ? undefined : JSON.stringify(head);
  const headLen = h !== undefined ? Buffer.byteLength(h) : Buffer.byteLength((head as HeadText).shared) + Buffer.byteLength((head as HeadText).own) + 1;
  const bodyLen = Buffer.byteLength(body);
  const buf = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + headLen + bodyLen);
  buf.writeUInt32BE(bodyLen, 0);
  buf.writeUInt16BE(headLen, 4);
  buf.writeUInt32BE(id >>> 0, 6);
  if (h !== undefined) buf.write(h, FRAME_PREFIX_BYTES, 'utf8');
  else {
    // Every byte of the head is written: the shared part, this frame's fields, the closing brace.
    const t = head as HeadText;
    const n = buf.write(t.shared, FRAME_PREFIX_BYTES, 'utf8');
    const m = buf.write(t.own, FRAME_PREFIX_BYTES + n, 'utf8');
    buf[FRAME_PREFIX_BYTES + n + m] = 0x7d; // }
  }
  buf.write(body, FRAME_PREFIX_BYTES + headLen, 'utf8');
  return buf;
}

function parseHead(bytes: Buffer, start: number, end: number, id: number): FrameHead {
  let o: unknown;
  try {
    o = JSON.parse(bytes.toString('utf8', start, end));
  } catch {
    throw new FrameError('malformed frame: head is not JSON', 'malformed', id);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new FrameError('malformed frame: head is not an object', 'malformed', id);
  const keys = Object.keys(o);
  if (keys.length > MAX_HEAD_KEYS) throw new FrameError('malformed frame: too many head fields', 'malformed', id);
  for (const k of keys) if (typeof (o as Record<string, unknown>)[k] !== 'string') throw new FrameError(`malformed frame: head field ${JSON.stringify(k.slice(0, 40))} is not a string`, 'malformed', id);
  return o as FrameHead;
}

export interface FrameReaderOptions {
  /** The body cap of a frame with this head and id; throws a FrameError to refuse it. */
  limitOf(head: FrameHead, id: number): number;
  /** Budgets a body's bytes are reserved from while it is held (all must have room). */
  budgets?: ByteBudget[];
  /** A complete frame. Its bytes are given back to the budgets when this returns. */
  onFrame(frame: Frame): void;
}

/** Cuts a byte stream into frames within the bounds above. `push` throws a FrameError.
 * It reads at an offset into the first chunk held rather than cutting a new view of it per field
 * (a stream's frames mostly arrive whole in one chunk: one view, the body, per frame; issue 16,
 * allocation per edit); chunks are joined only when a field spans them. */
export class FrameReader {
  private chunks: Buffer[] = [];
  /** Bytes held, unread. */
  private size = 0;
  /** Where the unread bytes start in chunks[0]. */
  private off = 0;
  private current?: { id: number; head: FrameHead; bodyLen: number; held: number };

  constructor(private readonly o: FrameReaderOptions) {}

  /** True while part of a frame has arrived (its owner's deadline for the rest runs). */
  get partial(): boolean {
    return this.size > 0 || this.current !== undefined;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.step());
  }

  /** Forget a partial frame and give its reserved bytes back (the stream closed). */
  reset(): void {
    if (this.current) this.give(this.current.held);
    this.current = undefined;
    this.chunks = [];
    this.size = 0;
    this.off = 0;
  }

  private step(): boolean {
    if (!this.current) {
      if (this.size < FRAME_PREFIX_BYTES) return false;
      let pre = this.contiguous(FRAME_PREFIX_BYTES);
      let at = this.off;
      const bodyLen = pre.readUInt32BE(at);
      const headLen = pre.readUInt16BE(at + 4);
      const id = pre.readUInt32BE(at + 6);
      if (headLen > MAX_HEAD_BYTES) throw new FrameError(`malformed frame: head of ${headLen} bytes (over ${MAX_HEAD_BYTES})`, 'malformed', id);
      if (this.size < FRAME_PREFIX_BYTES + headLen) return false;
      pre = this.contiguous(FRAME_PREFIX_BYTES + headLen);
      at = this.off + FRAME_PREFIX_BYTES;
      this.skip(FRAME_PREFIX_BYTES + headLen);
      const head = parseHead(pre, at, at + headLen, id);
      const limit = this.o.limitOf(head, id);
      // Refused on its declared length, before any of its body is kept.
      if (bodyLen > limit) throw new FrameError(`message too large (${bodyLen} bytes > ${limit})`, 'too-large', id);
      if (!this.reserve(bodyLen)) throw new FrameError('too many bytes in flight from unauthenticated senders', 'over-budget', id);
      this.current = { id, head, bodyLen, held: bodyLen };
    }
    const c = this.current;
    if (this.size < c.bodyLen) return false;
    let body: Buffer;
    if (c.bodyLen === 0) body = Buffer.alloc(0);
    else {
      const all = this.contiguous(c.bodyLen);
      body = all.subarray(this.off, this.off + c.bodyLen);
      this.skip(c.bodyLen);
    }
    this.current = undefined;
    try {
      this.o.onFrame({ id: c.id, head: c.head, body });
    } finally {
      this.give(c.held);
    }
    return true;
  }

  private reserve(n: number): boolean {
    const budgets = this.o.budgets ?? [];
    for (let i = 0; i < budgets.length; i++) {
      if (!budgets[i].take(n)) {
        for (let j = 0; j < i; j++) budgets[j].give(n);
        return false;
      }
    }
    return true;
  }

  private give(n: number): void {
    for (const b of this.o.budgets ?? []) b.give(n);
  }

  /** chunks[0], holding at least the first n unread bytes (n <= size) from `off`: the chunks are
   * joined into one only when those bytes span several. */
  private contiguous(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.off >= n) return first;
    const all = Buffer.concat(this.off ? [first.subarray(this.off), ...this.chunks.slice(1)] : this.chunks, this.size);
    this.chunks = [all];
    this.off = 0;
    return all;
  }

  /** Consume the first n unread bytes (n <= size, all of them in chunks[0]). */
  private skip(n: number): void {
    this.off += n;
    this.size -= n;
    if (this.off === this.chunks[0].length) {
      this.chunks.shift();
      this.off = 0;
    }
  }
}
