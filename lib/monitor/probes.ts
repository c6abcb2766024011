// The checks of one target, each bounded by a timeout and each on its own short-lived socket (no
// keep-alive agent, `Connection: close`, the socket destroyed as soon as the answer is known or the
// time is up), so a dead or frozen peer can never pile up sockets in the watcher.
//
// Network probe: GET http://<address>:<port>/p2p/ping (the store's endpoint). It tells
//   - ok: the manager answered 2xx (and, when a hostname is expected, as that host);
//   - manager-not-answering: the host answered but the manager did not (connection refused or
//     reset, an HTTP error, or another host answering): host up, manager down;
//   - host-unreachable: nothing answered in time (timeout, EHOSTUNREACH, ENETUNREACH).
// Service probes, from the group record's services field:
//   - tcp:PORT         ok when a TCP connection opens;
//   - http:PORT/PATH   ok when GET answers 2xx.
// `localAddress`: the watcher's own address as the source of every probe (as the SEM client does),
// so a cut between two VMs' addresses cuts their probes too, never a probe that left from another
// address of the machine.
import * as http from 'http';
import * as net from 'net';
import { SERVICE_RE } from '../records/files';

export type ProbeOutcome = 'ok' | 'manager-not-answering' | 'host-unreachable' | 'service-down';

export interface ProbeResult {
  /** 'ping' for the network probe, else the service check text (`tcp:80`). */
  check: string;
  outcome: ProbeOutcome;
  ms: number;
  /** Why it failed (error code, HTTP status, 'timeout'); '' when ok. */
  detail: string;
}

export type ServiceCheck =
  | { type: 'tcp'; port: number; text: string }
  | { type: 'http'; port: number; path: string; text: string };

/** Parse one service check; throws a clear error for anything else. */
export function parseServiceCheck(text: string): ServiceCheck {
  if (!SERVICE_RE.test(text)) throw new Error(`service check ${JSON.stringify(text)}: expected tcp:PORT or http:PORT/PATH`);
  const m = /^(tcp|http):(\d+)(\/.*)?$/.exec(text)!;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`service check ${JSON.stringify(text)}: port out of range`);
  if (m[1] === 'tcp') return { type: 'tcp', port, text };
  return { type: 'http', port, path: m[3] ?? '/', text };
}

const UNREACHABLE_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

function errorCode(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ?? err?.message ?? String(e);
}

/**
 * One bounded attempt. `attempt` gets a `finish` to call once; the timeout calls it with 'timeout'.
 * The timeout's verdict is deferred by one setImmediate: when our own event loop was late, an
 * answer already waiting in the socket is read in the poll phase before that, instead of being
 * beaten by a timer that fired late.
 */
function bounded(
  timeoutMs: number,
  attempt: (finish: (outcome: ProbeOutcome, detail: string) => void, cleanups: (() => void)[]) => void,
  timeoutOutcome: ProbeOutcome,
  check: string,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const start = Date.now();
    const cleanups: (() => void)[] = [];
    let done = false;
    const finish = (outcome: ProbeOutcome, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const c of cleanups) {
        try {
          c();
        } catch {
          /* a socket already gone: nothing to free */
        }
      }
      resolve({ check, outcome, ms: Date.now() - start, detail });
    };
    const timer = setTimeout(() => setImmediate(() => finish(timeoutOutcome, 'timeout')), timeoutMs);
    try {
      attempt(finish, cleanups);
    } catch (e) {
      finish(timeoutOutcome === 'service-down' ? 'service-down' : 'host-unreachable', errorCode(e));
    }
  });
}

/** GET with no agent; calls back with the status and (up to maxBody bytes of) the body. */
function httpGet(
  host: string,
  port: number,
  path: string,
  maxBody: number,
  cleanups: (() => void)[],
  onAnswer: (status: number, body: string) => void,
  onError: (code: string) => void,
  localAddress?: string,
): void {
  const req = http.request({
    host,
    port,
    localAddress,
    path,
    method: 'GET',
    agent: false,
    headers: { Connection: 'close', Accept: 'application/json' },
  });
  cleanups.push(() => req.destroy());
  req.on('error', (e) => onError(errorCode(e)));
  req.on('response', (res) => {
    cleanups.push(() => res.destroy());
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < maxBody) body += chunk;
      if (body.length >= maxBody) onAnswer(res.statusCode ?? 0, body);
    });
    res.on('end', () => onAnswer(res.statusCode ?? 0, body));
    res.on('error', (e) => onError(errorCode(e)));
  });
  req.end();
}

/**
 * The network probe of a target's manager. With `expectHostname`, a 2xx answer naming another host
 * is 'manager-not-answering' (something else lives at that address).
 */
export function pingManager(address: string, port: number, timeoutMs: number, expectHostname?: string, localAddress?: string): Promise<ProbeResult> {
  return bounded(
    timeoutMs,
    (finish, cleanups) => {
      httpGet(
        address,
        port,
        '/p2p/ping',
        4096,
        cleanups,
        (status, body) => {
          if (status < 200 || status > 299) return finish('manager-not-answering', `HTTP ${status}`);
          if (expectHostname) {
            let name: unknown;
            try {
              name = (JSON.parse(body) as { hostname?: unknown }).hostname;
            } catch {
              name = undefined;
            }
            if (name !== expectHostname) return finish('manager-not-answering', `answered as ${String(name)}`);
          }
          finish('ok', '');
        },
        (code) => finish(UNREACHABLE_CODES.has(code) ? 'host-unreachable' : 'manager-not-answering', code),
        localAddress,
      );
    },
    'host-unreachable',
    'ping',
  );
}

/** The address to send probes from: this VM's own when it is an IPv4 address, else the system's choice. */
export function sourceAddress(address: string): string | undefined {
  return /^\d+\.\d+\.\d+\.\d+$/.test(address) ? address : undefined;
}

/** One service check of a target. Any failure is 'service-down', with the reason as detail. */
export function probeService(address: string, check: ServiceCheck, timeoutMs: number, localAddress?: string): Promise<ProbeResult> {
  if (check.type === 'tcp') {
    return bounded(
      timeoutMs,
      (finish, cleanups) => {
        const socket = net.connect({ host: address, port: check.port, localAddress });
        cleanups.push(() => socket.destroy());
        socket.on('connect', () => finish('ok', ''));
        socket.on('error', (e) => finish('service-down', errorCode(e)));
      },
      'service-down',
      check.text,
    );
  }
  return bounded(
    timeoutMs,
    (finish, cleanups) => {
      httpGet(
        address,
        check.port,
        check.path,
        1,
        cleanups,
        (status) => finish(status >= 200 && status <= 299 ? 'ok' : 'service-down', status >= 200 && status <= 299 ? '' : `HTTP ${status}`),
        (code) => finish('service-down', code),
        localAddress,
      );
    },
    'service-down',
    check.text,
  );
}
