// Readiness, not launch: a guest counts as ready when its SSH server has sent its banner
// (`SSH-2.0-...`), not when `virsh start` or `virsh resume` returned. On these machines `start`
// returns 4.5-5 s before a software-emulated guest answers, and a guest suspended mid-boot then
// takes 5-8 s to answer after a resume instead of ~1 s. The probe reads only the banner line,
// with a short per-attempt timeout (an early connect to a booting guest stalls ~3 s otherwise),
// and the wait has a deadline and a typed failure.
//
// The guest is reached through its real server: an SSH direct-tcpip channel of the pinned
// real-server connection to the guest's SSH endpoint as the host sees it (a loopback port
// forward of a user-mode NIC, or the guest's address on a bridge). Nothing else is needed on the
// host, and the manager never talks to a guest address it could not reach.
import * as net from 'net';
import type { Duplex } from 'stream';
import type { SshConnection } from './ssh-connection';
import * as v from './validate';

/** Where a guest's SSH server is reachable from its real server. */
export interface GuestEndpoint {
  host: string;
  port: number;
}

export type ReadinessFailureKind = 'not-ready' | 'aborted';

export class ReadinessError extends Error {
  readonly kind: ReadinessFailureKind;
  /** The last attempt's cause (refused, reset, no banner within the probe time...). */
  readonly lastCause: string;
  readonly waitedMs: number;
  constructor(kind: ReadinessFailureKind, message: string, lastCause: string, waitedMs: number) {
    super(message);
    this.name = 'ReadinessError';
    this.kind = kind;
    this.lastCause = lastCause;
    this.waitedMs = waitedMs;
  }
}

/** Opens a byte stream to the guest's SSH endpoint (a tunnel through the real server, or TCP). */
export type StreamOpener = () => Promise<Duplex>;

/**
 * The guest's SSH endpoint in its domain XML: a user-mode NIC forward to guest port 22
 * (`hostfwd=tcp:127.0.0.1:PORT-ADDR:22`) gives the host's loopback port; else the address, port 22.
 */
export function sshEndpoint(domainXml: string, address: string): GuestEndpoint {
  const m = /hostfwd=tcp:(127\.0\.0\.1|localhost)?:(\d{1,5})-[0-9.]*:22(?=[,'"\s]|$)/.exec(domainXml);
  if (m) return { host: '127.0.0.1', port: Number(m[2]) };
  return { host: v.hostname(address), port: 22 };
}

/** A stream to host:port opened BY the real server (SSH direct-tcpip), over the pinned connection. */
export function tunnelOpener(conn: SshConnection, endpoint: GuestEndpoint): StreamOpener {
  return async () => {
    const client = await conn.connect();
    return new Promise<Duplex>((resolve, reject) => {
      try {
        client.forwardOut('127.0.0.1', 0, endpoint.host, endpoint.port, (err, stream) => (err ? reject(err) : resolve(stream)));
      } catch (e) {
        reject(e);
      }
    });
  };
}

/** A plain TCP stream from this machine (when the manager reaches the guest itself). */
export function tcpOpener(endpoint: GuestEndpoint): StreamOpener {
  return () =>
    new Promise<Duplex>((resolve, reject) => {
      const s = net.connect({ host: endpoint.host, port: endpoint.port });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
}

/** One probe: resolves with the banner line, rejects with why not, within `timeoutMs`. */
export async function probeSshBanner(open: StreamOpener, timeoutMs = 500): Promise<string> {
  let stream: Duplex | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no SSH banner within ${timeoutMs} ms`)), timeoutMs);
      open().then((s) => {
        stream = s;
        let text = '';
        s.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          const line = text.split('\n').find((l) => l.startsWith('SSH-'));
          if (line) resolve(line.trim());
          else if (text.length > 4096) reject(new Error('no SSH banner in the first 4 KiB'));
        });
        s.once('error', (e: Error) => reject(e));
        s.once('close', () => reject(new Error('closed before the SSH banner')));
      }, reject);
    });
  } finally {
    clearTimeout(timer);
    stream?.destroy();
  }
}

export interface ReadyOptions {
  /** Give up after this long (default 60 s: a software-emulated boot takes 5-10 s, more when busy). */
  deadlineMs?: number;
  /** Per-attempt banner timeout (default 500 ms). */
  probeMs?: number;
  /** Pause between attempts (default 200 ms). */
  intervalMs?: number;
  /** What is awaited, for the failure message. */
  what?: string;
  signal?: AbortSignal;
}

export interface ReadyResult {
  banner: string;
  ms: number;
  attempts: number;
}

/** Probe until the banner comes or the deadline passes (ReadinessError 'not-ready' naming the last cause). */
export async function waitSshReady(open: StreamOpener, opts: ReadyOptions = {}): Promise<ReadyResult> {
  const deadline = opts.deadlineMs ?? 60000;
  const probeMs = opts.probeMs ?? 500;
  const interval = opts.intervalMs ?? 200;
  const what = opts.what ?? 'the guest';
  const t0 = performance.now();
  let last = 'no attempt';
  let attempts = 0;
  for (;;) {
    if (opts.signal?.aborted) throw new ReadinessError('aborted', `${what}: readiness wait stopped`, last, performance.now() - t0);
    attempts++;
    try {
      const banner = await probeSshBanner(open, probeMs);
      return { banner, ms: performance.now() - t0, attempts };
    } catch (e) {
      last = (e as Error).message;
    }
    const waited = performance.now() - t0;
    if (waited + interval > deadline) {
      throw new ReadinessError('not-ready', `${what} did not answer SSH within ${deadline} ms (${attempts} attempts; last: ${last})`, last, waited);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Wait until a domain's guest answers SSH, its endpoint read from its XML (the OD's own forward). */
export async function waitDomainSshReady(
  driver: { dumpxml(name: string): Promise<string> },
  opener: (endpoint: GuestEndpoint) => StreamOpener,
  name: string,
  address: string,
  opts: ReadyOptions = {},
): Promise<ReadyResult> {
  const open = opener(sshEndpoint(await driver.dumpxml(v.domainName(name)), address));
  return waitSshReady(open, { what: name, ...opts });
}
