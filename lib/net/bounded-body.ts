// Reading an HTTP body that nobody has authenticated yet. Whatever arrives before a MAC or a
// signature is checked is an attacker's to choose: its size and its pace. So a body is read with a
// byte cap (checked on every chunk, and on the declared Content-Length before the first one) and a
// deadline for the whole body; past either the stream is destroyed and the read fails with a
// typed kind. An optional budget shared by many reads bounds what all of them hold at once (the
// SEM server's pre-authentication memory), whatever the number of senders.
import type { Readable } from 'stream';

export type BodyErrorKind = 'too-large' | 'timeout' | 'over-budget' | 'aborted';

export class BodyError extends Error {
  constructor(
    message: string,
    readonly kind: BodyErrorKind,
  ) {
    super(message);
    this.name = 'BodyError';
  }

  /** The HTTP status a server answers with for this kind. */
  get status(): number {
    return this.kind === 'too-large' ? 413 : this.kind === 'timeout' ? 408 : this.kind === 'over-budget' ? 503 : 400;
  }
}

/** Bytes that many concurrent reads may hold together. */
export class ByteBudget {
  private used = 0;

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  take(n: number): boolean {
    if (this.used + n > this.capacity) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

export interface BoundedReadOptions {
  /** Most bytes the body may have. */
  limit: number;
  /** Deadline for the whole body, from the call; unset: none here, the caller holds one that
   * destroys the stream (an HTTP client's deadline for its whole request). */
  timeoutMs?: number;
  /** Content-Length as declared, when known: refused at once when above the limit. */
  declared?: number;
  /** Budgets the body's bytes are taken from while it is held (all must have room). */
  budgets?: ByteBudget[];
  /** Keep the stream open but paused on failure (a server that still answers, then closes; the
   * sender's further bytes wait in the kernel, never in this process): default false. */
  keepOpen?: boolean;
}

/** Read a whole body within a byte cap and a deadline. The stream is destroyed on any failure. */
export function readBounded(stream: Readable, o: BoundedReadOptions): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let held = 0;
    let settled = false;
    const finish = (err: BodyError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      const body = err ? undefined : Buffer.concat(chunks, size);
      chunks.length = 0;
      for (const b of o.budgets ?? []) b.give(held);
      if (err) {
        stream.on('error', () => undefined);
        if (!o.keepOpen) stream.destroy();
        else stream.pause();
        reject(err);
      } else resolve(body!);
    };
    const budgets = o.budgets ?? [];
    // With a declared length, its bytes are reserved from every budget before the first one is
    // read: a request that cannot have them is refused without reading anything.
    let reserved = false;
    const take = (n: number): boolean => {
      for (let i = 0; i < budgets.length; i++) {
        if (!budgets[i].take(n)) {
          for (let j = 0; j < i; j++) budgets[j].give(n);
          return false;
        }
      }
      held += n;
      return true;
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > o.limit) return finish(new BodyError(`message too large (over ${o.limit} bytes)`, 'too-large'));
      if (!reserved && !take(c.length)) return finish(new BodyError('too many bytes in flight from unauthenticated senders', 'over-budget'));
      chunks.push(c);
    };
    const onEnd = () => finish(null);
    const onError = (e: Error) => finish(new BodyError(`body not read: ${e.message}`, 'aborted'));
    const onClose = () => finish(new BodyError('connection closed before the body ended', 'aborted'));
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => finish(new BodyError(`body not complete within ${o.timeoutMs} ms`, 'timeout')), o.timeoutMs);
    if (o.declared !== undefined && (!Number.isSafeInteger(o.declared) || o.declared < 0 || o.declared > o.limit)) {
      return finish(new BodyError(`message too large (${o.declared} bytes > ${o.limit})`, 'too-large'));
    }
    if (o.declared !== undefined && Number.isSafeInteger(o.declared) && o.declared >= 0 && budgets.length) {
      if (!take(o.declared)) return finish(new BodyError('too many bytes in flight from unauthenticated senders', 'over-budget'));
      reserved = true;
    }
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}
