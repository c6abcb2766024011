// Network namespaces and iptables cuts for the isolation tests (issue 12). A test creates its own
// namespace (`ip netns add`, loopback up), runs the whole loopback cluster inside it (one process
// started with `ip netns exec`, which starts the Node-RED VMs and the simulated real servers), and
// that process cuts addresses apart with iptables DROP rules in a chain of its own. The rules live
// only in that namespace and are removed after; deleting the namespace removes whatever is left.
// Every VM's traffic leaves from its own 127.x address (SEM client, probes), so a rule on a pair
// of addresses cuts exactly the traffic between those two VMs.
import { execFileSync, spawn, ChildProcess } from 'child_process';
import * as fs from 'fs';

export const NETNS_PACKAGES = 'iproute2 iptables';
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];
const IPTABLES = ['/usr/sbin/iptables', '/sbin/iptables', '/usr/bin/iptables'];
const NS_RE = /^[a-z0-9-]{1,40}$/;
const ADDR_RE = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

function find(paths: string[]): string | undefined {
  return paths.find((p) => fs.existsSync(p));
}

/** Why the namespace tests cannot run here, or undefined when they can. */
export function netnsMissing(): string | undefined {
  const lacks: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) lacks.push('root (network namespaces and iptables)');
  if (!find(IP)) lacks.push('ip (iproute2)');
  if (!find(IPTABLES)) lacks.push('iptables');
  if (lacks.length === 0) return undefined;
  return (
    `\n*** the isolation tests need ${lacks.join(', ')}\n` +
    `*** install with: apt-get install -y --no-install-recommends ${NETNS_PACKAGES} (and run as root)\n` +
    `*** (they ${process.env.CI === 'true' ? 'FAIL under CI' : 'are SKIPPED outside CI'})\n`
  );
}

/** As test/system/hv-env.ts: fail under CI=true, else skip loudly. */
export function requireNetns(ctx: { skip(): void }, missing = netnsMissing()): void {
  if (!missing) return;
  console.error(missing);
  if (process.env.CI === 'true') throw new Error(missing.trim());
  ctx.skip();
}

/** A namespace this process created; destroy() kills what runs in it and deletes it. */
export class NetNamespace {
  private constructor(readonly name: string) {}

  static create(name: string): NetNamespace {
    if (!NS_RE.test(name)) throw new Error(`namespace name ${JSON.stringify(name)} is not [a-z0-9-]`);
    const ip = find(IP)!;
    execFileSync(ip, ['netns', 'add', name], { stdio: 'pipe' });
    try {
      execFileSync(ip, ['netns', 'exec', name, ip, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    } catch (e) {
      execFileSync(ip, ['netns', 'delete', name], { stdio: 'pipe' });
      throw e;
    }
    return new NetNamespace(name);
  }

  /** Start `argv` inside the namespace (stdout and stderr to `logFile`). */
  spawn(argv: string[], logFile: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
    const out = fs.openSync(logFile, 'a');
    try {
      return spawn(find(IP)!, ['netns', 'exec', this.name, ...argv], {
        stdio: ['ignore', out, out],
        env: { ...process.env, ...env, P2P_HA_NETNS: this.name },
      });
    } finally {
      fs.closeSync(out);
    }
  }

  /** Pids of the processes in the namespace. */
  pids(): number[] {
    try {
      return execFileSync(find(IP)!, ['netns', 'pids', this.name], { encoding: 'utf8' })
        .split(/\s+/)
        .filter(Boolean)
        .map(Number)
        .filter((n) => Number.isInteger(n) && n > 0);
    } catch {
      return [];
    }
  }

  /** Kill every process left in the namespace (all ours: it is this test's), then delete it. */
  destroy(): void {
    for (const pid of this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    try {
      execFileSync(find(IP)!, ['netns', 'delete', this.name], { stdio: 'pipe' });
    } catch {
      /* already deleted */
    }
  }
}

/**
 * iptables DROP rules in a chain of their own, for a process running inside a namespace the test
 * created (refused elsewhere: P2P_HA_NETNS must name it, set by NetNamespace.spawn).
 */
export class Cut {
  private installed = false;
  private readonly iptables: string;

  constructor(readonly chain = 'P2PCUT') {
    if (!process.env.P2P_HA_NETNS) throw new Error('Cut: not inside a namespace created by the test (P2P_HA_NETNS unset): no iptables rule outside it');
    this.iptables = find(IPTABLES) ?? 'iptables';
  }

  private run(args: string[]): void {
    execFileSync(this.iptables, ['-w', ...args], { stdio: 'pipe' });
  }

  /**
   * Cut `a` from `b` both ways; `alone`: addresses cut from every other address (a real server's
   * SSH endpoint, whose clients leave from the system's default source address).
   */
  apply(a: string[], b: string[], alone: string[] = []): void {
    for (const x of [...a, ...b, ...alone]) if (!ADDR_RE.test(x)) throw new Error(`Cut: ${JSON.stringify(x)} is not a 127.x address`);
    if (!this.installed) {
      this.run(['-N', this.chain]);
      this.run(['-I', 'INPUT', '-j', this.chain]);
      this.installed = true;
    }
    for (const x of a) {
      for (const y of b) {
        this.run(['-A', this.chain, '-s', x, '-d', y, '-j', 'DROP']);
        this.run(['-A', this.chain, '-s', y, '-d', x, '-j', 'DROP']);
      }
    }
    for (const x of alone) {
      this.run(['-A', this.chain, '-d', x, '-j', 'DROP']);
      this.run(['-A', this.chain, '-s', x, '-j', 'DROP']);
    }
  }

  /** Remove every rule and the chain. */
  heal(): void {
    if (!this.installed) return;
    this.run(['-F', this.chain]);
    this.run(['-D', 'INPUT', '-j', this.chain]);
    this.run(['-X', this.chain]);
    this.installed = false;
  }
}
