// Loopback addresses and ports for simulated VMs. Every simulated VM gets its own 127.x.y.z
// address (Linux routes all of 127.0.0.0/8 to `lo`, no setup needed), and every port is chosen
// free on the address that will use it, because other engineers' programs listen on this machine.
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

/**
 * Ports are picked in [20000, 32000): below Linux's ephemeral range (32768-60999 here), so an
 * outgoing connection's source port cannot take a port between the moment it is picked and the
 * moment the VM binds it.
 */
const PORT_MIN = 20000;
const PORT_MAX = 32000;

/** Ports this process handed out recently, per address: two picks before any bind must differ. */
const handedOut = new Set<string>();

/** True when `port` can be bound on `ip` right now (a wildcard listener on the port makes it false). */
export function isPortFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: ip, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function randomPort(): number {
  return PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN));
}

/** A port free on every address of `ips` (e.g. the SEM port, identical on all VMs of a cluster). */
export async function pickPortFreeOnAll(ips: readonly string[], attempts = 200): Promise<number> {
  if (ips.length === 0) throw new Error('pickPortFreeOnAll: no address given');
  for (let i = 0; i < attempts; i++) {
    const port = randomPort();
    if (ips.some((ip) => handedOut.has(`${ip}:${port}`))) continue;
    let ok = true;
    for (const ip of ips) {
      if (!(await isPortFree(ip, port))) {
        ok = false;
        break;
      }
    }
    if (ok) {
      for (const ip of ips) handedOut.add(`${ip}:${port}`);
      return port;
    }
  }
  throw new Error(`no port in [${PORT_MIN}, ${PORT_MAX}) free on all of ${ips.join(', ')} after ${attempts} tries`);
}

/** A port free on `ip`. */
export function pickFreePort(ip: string): Promise<number> {
  return pickPortFreeOnAll([ip]);
}

// ---- loopback address ranges -------------------------------------------------------------------

/**
 * A /24 of loopback addresses owned by this process: 127.A.B.1 .. 127.A.B.254. Suites running at
 * the same time (in parallel mocha processes, or other engineers' runs) each take a different
 * range, claimed by a lock file holding the owner's pid; a lock whose pid is dead is taken over.
 * 127.0.0.x (everyone's 127.0.0.1) and 127.0.1.x (the launcher's default, for the demo) are never
 * handed out.
 */
export interface LoopbackRange {
  /** "127.A.B" */
  readonly prefix: string;
  /** The address 127.A.B.host (host 1..254). */
  ip(host: number): string;
  /** n addresses 127.A.B.1 .. 127.A.B.n. */
  ips(n: number): string[];
  release(): void;
}

const LOCK_DIR = path.join(os.tmpdir(), 'p2p-ha-loopback-locks');
const owned = new Set<string>();
let exitHookInstalled = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryClaim(lock: string): boolean {
  try {
    fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let text: string;
  let age: number;
  try {
    text = fs.readFileSync(lock, 'utf8').trim();
    age = Date.now() - fs.statSync(lock).mtimeMs;
  } catch {
    return false; // removed meanwhile by its owner or another claimant: try the next range
  }
  // Empty: its creator is between creating the file and writing its pid (one writeFileSync is an
  // open then a write). Taken, unless it stayed empty long enough for its writer to be dead.
  if (text === '' && age < 10_000) return false;
  const owner = Number(text);
  if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) return false;
  // Stale: its owner died without releasing. Remove and race for it again (wx decides the winner).
  try {
    fs.unlinkSync(lock);
  } catch {
    /* another process removed it first */
  }
  try {
    fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

/** Claim a free /24 of loopback addresses for this process (released at process exit at the latest). */
export function allocLoopbackRange(): LoopbackRange {
  fs.mkdirSync(LOCK_DIR, { recursive: true });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const lock of owned) {
        try {
          fs.unlinkSync(lock);
        } catch {
          /* already gone */
        }
      }
    });
  }
  // 127.0.10 .. 127.0.254, then 127.1.0 .. 127.254.254.
  for (let a = 0; a <= 254; a++) {
    for (let b = a === 0 ? 10 : 0; b <= 254; b++) {
      const prefix = `127.${a}.${b}`;
      const lock = path.join(LOCK_DIR, `${prefix}.lock`);
      if (!tryClaim(lock)) continue;
      owned.add(lock);
      return {
        prefix,
        ip(host: number) {
          if (!Number.isInteger(host) || host < 1 || host > 254) throw new Error(`loopback host number ${host} not in 1..254`);
          return `${prefix}.${host}`;
        },
        ips(n: number) {
          return Array.from({ length: n }, (_, i) => this.ip(i + 1));
        },
        release() {
          owned.delete(lock);
          try {
            fs.unlinkSync(lock);
          } catch {
            /* already gone */
          }
        },
      };
    }
  }
  throw new Error(`no free loopback range: every lock in ${LOCK_DIR} is held by a live process`);
}

let shared: { range: LoopbackRange; next: number } | undefined;

/**
 * One loopback address no other suite of this machine uses, from this process's own range;
 * successive calls give successive addresses. For a group of VMs, prefer allocLoopbackRange().
 */
export function freeLoopbackIp(): string {
  if (!shared || shared.next > 254) shared = { range: allocLoopbackRange(), next: 1 };
  return shared.range.ip(shared.next++);
}
