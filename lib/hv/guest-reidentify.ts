// Re-identification of a freshly cloned OD on a real guest (lib/hv: it talks to the guest and the
// host; lib/recovery/od-replication.ts gets the hooks injected by the node). docs/recovery.md
// "OD re-identification". A clone is its template (hostname, network identity, SSH host keys,
// machine-id), so it needs its own, in one of two ways:
//   guestSeedHooks (mode seed, the default): BEFORE the first boot, a seed volume made on the real
//            server (od-seed.ts: cloud-init NoCloud files + od-setup.sh, the identity and a host
//            key made here) is attached to the clone; it boots once; `ready` waits for the banner,
//            then logs in with the NEW host key pinned and checks the hostname;
//   guestReplicationHooks (mode guest): AFTER the first boot,
//     boot     waits for the clone's SSH banner (readiness, not launch),
//     setup    logs in (ODS host key pinned when known), copies the package's od-setup.sh and runs
//              it with the OD's identity: hostname, address, fresh host keys, machine-id, Node-RED
//              environment; reads the new host key from its output,
//     restart  destroys and starts the clone (or resets it) so everything starts under the new
//              identity (note step v),
//     verify   the banner again and the same pinned login + hostname check.
// Either way the OD's new public key is returned for its available-od record. Also the default
// post-clone XML hook: virt-clone copies per-VM paths and port forwards verbatim.
import * as fs from 'fs';
import * as path from 'path';
import { openGuestSession } from './guest-session';
import { sshEndpoint, tcpOpener, tunnelOpener, waitDomainSshReady, waitSshReady, type GuestEndpoint, type StreamOpener } from './readiness';
import { SshConnection, type CommandRunner } from './ssh-connection';
import * as v from './validate';
import { hostKeyFingerprint } from '../records/records';
import { attachSeedXml, diskFolder, makeOdSeed, SEED_LABEL } from './od-seed';

/** An OD's identity (as in the reservation file): its name (= hostname), address, real server. */
export interface Identity {
  od: string;
  address: string;
  realServer: string;
}

/** The package's default OD setup procedure (resources/od-setup.sh, shipped in `files`). */
export const DEFAULT_OD_SETUP = path.resolve(__dirname, '../../../resources/od-setup.sh');

export function defaultOdSetupScript(): string {
  return fs.readFileSync(DEFAULT_OD_SETUP, 'utf8');
}

export type ReidentifyFailureKind = 'setup-failed' | 'no-host-key' | 'wrong-identity';

/** A typed failure of re-identification (readiness failures are ReadinessError, SSH ones HvError). */
export class ReidentifyError extends Error {
  readonly kind: ReidentifyFailureKind;
  readonly exitCode?: number;
  /** The procedure's last stderr line. */
  readonly lastLine?: string;
  constructor(kind: ReidentifyFailureKind, message: string, extra: { exitCode?: number; lastLine?: string } = {}) {
    super(message);
    this.name = 'ReidentifyError';
    this.kind = kind;
    this.exitCode = extra.exitCode;
    this.lastLine = extra.lastLine;
  }
}

export interface GuestReidentifyDeps {
  driver: { reset(name: string): Promise<void>; destroy(name: string): Promise<void>; start(name: string): Promise<void>; dumpxml(name: string): Promise<string> };
  /**
   * How the clone is restarted after the setup: 'cold' (default) `virsh destroy` + `virsh start`
   * (the setup ended with sync), or 'reset' (`virsh reset`). Measured under software emulation
   * here, a reset took 1.5-2.4x as long to SSH as a fresh start.
   */
  restart?: 'cold' | 'reset';
  /** A stream to a guest endpoint as the real server reaches it (readiness.ts tunnelOpener). */
  opener(endpoint: GuestEndpoint): StreamOpener;
  /** Login into the ODS image (root or a sudo-less admin that may run the procedure). */
  username: string;
  privateKey: string | Buffer;
  /** The ODS's host key: pinned for the first login into the clone. Unset: taken on first use. */
  odsFingerprint?: string;
  /** The OD setup procedure's text; default: the package's od-setup.sh. */
  script?: string;
  /** Extra variables for the procedure (OD_NETWORK, OD_GATEWAY, OD_SERVICES...). */
  variables?: Record<string, string>;
  /** Deadline of each readiness wait (default 90 s: software-emulated boots on a busy host). */
  readyDeadlineMs?: number;
  signal?: AbortSignal;
}

export interface GuestReidentifyResult {
  hostKey: string;
  machineId: string;
  timings: { boot: number; setup: number; restart: number };
}

const REMOTE_SCRIPT = '/tmp/p2p-od-setup.sh';

function lastLine(text: string): string {
  return text.trim().split('\n').filter((l) => l.trim() !== '').slice(-1)[0] ?? '';
}

/** Run the whole re-identification of `id` (the clone must be started). */
export async function reidentifyGuest(id: Identity & { mac: string }, deps: GuestReidentifyDeps): Promise<GuestReidentifyResult> {
  const od = v.domainName(id.od);
  const open = deps.opener(sshEndpoint(await deps.driver.dumpxml(od), id.address));
  const ready = (what: string) => waitSshReady(open, { deadlineMs: deps.readyDeadlineMs ?? 90000, what, signal: deps.signal });
  const t0 = performance.now();
  await ready(`${od} (first boot)`);
  const t1 = performance.now();
  const vars: Record<string, string> = {
    OD_HOSTNAME: v.hostname(id.od),
    OD_ADDRESS: v.hostname(id.address),
    OD_REAL_SERVER: v.domainName(id.realServer),
    ...(deps.variables ?? {}),
  };
  const env = v.variables(vars).map(([k, val]) => v.shellQuote(`${k}=${val}`));
  const session = await openGuestSession({ open, username: deps.username, privateKey: deps.privateKey, hostFingerprint: deps.odsFingerprint, label: od });
  let hostKey: string;
  let machineId: string;
  try {
    const copy = await session.exec(`cat > ${REMOTE_SCRIPT}`, { stdin: deps.script ?? defaultOdSetupScript() });
    if (copy.code !== 0) throw new ReidentifyError('setup-failed', `${od}: cannot copy the OD setup procedure: exit ${copy.code}: ${lastLine(copy.stderr)}`, { exitCode: copy.code, lastLine: lastLine(copy.stderr) });
    const r = await session.exec(['env', ...env, '/bin/sh', REMOTE_SCRIPT].join(' '), { timeoutMs: 120000 });
    if (r.code !== 0 || !/^od-setup=ok$/m.test(r.stdout)) {
      const last = lastLine(r.stderr) || lastLine(r.stdout);
      throw new ReidentifyError('setup-failed', `${od}: the OD setup procedure exited ${r.code}: ${last}`, { exitCode: r.code, lastLine: last });
    }
    const key = /^hostkey=ssh-ed25519 ([A-Za-z0-9+/=]+)/m.exec(r.stdout);
    if (!key) throw new ReidentifyError('no-host-key', `${od}: the OD setup procedure printed no ed25519 host key`);
    hostKey = key[1];
    machineId = /^machine-id=([0-9a-f]{32})$/m.exec(r.stdout)?.[1] ?? '';
  } finally {
    session.close();
  }
  const t2 = performance.now();
  if (deps.restart === 'reset') await deps.driver.reset(od);
  else {
    await deps.driver.destroy(od);
    await deps.driver.start(od);
  }
  await ready(`${od} (after its restart)`);
  await checkIdentity(open, id.od, hostKey, deps);
  const t3 = performance.now();
  return { hostKey, machineId, timings: { boot: t1 - t0, setup: t2 - t1, restart: t3 - t2 } };
}

/**
 * The OD answers under its new identity: a login with the NEW host key pinned (a guest still
 * holding the template's key is refused by the pin), and `/etc/hostname` and `hostname` are the
 * OD's name.
 */
export async function checkIdentity(open: StreamOpener, od: string, hostKey: string, login: { username: string; privateKey: string | Buffer }): Promise<void> {
  const pin = hostKeyFingerprint(hostKey);
  if (!pin) throw new ReidentifyError('no-host-key', `${od}: no new host key to pin`);
  const check = await openGuestSession({ open, username: login.username, privateKey: login.privateKey, hostFingerprint: pin, label: od });
  try {
    const r = await check.exec('cat /etc/hostname; hostname');
    const names = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    if (names.length < 2 || names.some((n) => n !== od)) {
      throw new ReidentifyError('wrong-identity', `${od}: its hostname is ${JSON.stringify(names)}, expected ${od}`);
    }
  } finally {
    check.close();
  }
}

export interface PostCloneContext extends Identity {
  mac: string;
  /** The template's name (per-VM paths that name it are renamed for the OD). */
  ods: string;
}

/** The default host port of a loopback forward: 20000 + (guest port mod 40) * 256 + the address's last octet. */
export function defaultForwardPort(guestPort: number, address: string): number {
  const octet = Number(/\.(\d{1,3})$/.exec(address)?.[1] ?? NaN);
  if (!Number.isInteger(octet) || octet > 255) throw new Error(`cannot derive a forward port from address ${address}`);
  return 20000 + (guestPort % 40) * 256 + octet;
}

/**
 * The default post-clone XML hook. virt-clone copies the template's XML verbatim apart from name,
 * uuid, disks and <interface> MACs, so this renames the serial/console log files after the OD,
 * sets the MAC of a NIC given on the QEMU command line, the user-mode NIC's DHCP reservation
 * (dhcpstart) to the OD's address, and each loopback forward to the OD's address and own host
 * port. An operator replaces it with their own (same signature) for other layouts.
 */
export function defaultPostCloneXml(xml: string, c: PostCloneContext, portFor: (guestPort: number, c: PostCloneContext) => number = (p, x) => defaultForwardPort(p, x.address)): string {
  const od = v.domainName(c.od);
  const ods = v.domainName(c.ods);
  const mac = v.mac(c.mac);
  let out = xml.replace(/(<(?:serial|console)\b[^>]*>\s*<source\s+path=['"])([^'"]+)(['"])/g, (_m, a: string, p: string, b: string) => {
    const dir = p.slice(0, p.lastIndexOf('/') + 1);
    const base = p.slice(dir.length);
    const renamed = base.includes(ods) ? base.split(ods).join(od) : `${od}-${base}`;
    return a + dir + renamed + b;
  });
  out = out.replace(/(<qemu:arg value=['"][^'"]*\bmac=)([0-9A-Fa-f:]{17})/g, (_m, a: string) => a + mac);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(c.address)) {
    out = out.replace(/\bdhcpstart=[0-9.]+/g, `dhcpstart=${c.address}`);
    out = out.replace(/\bhostfwd=tcp:([0-9.]*):\d{1,5}-[0-9.]*:(\d{1,5})/g, (_m, h: string, gp: string) => `hostfwd=tcp:${h}:${portFor(Number(gp), c)}-${c.address}:${gp}`);
  }
  return out;
}

/** How the real server reaches its guests: an SSH tunnel through its connection, or local TCP. */
export function guestOpener(runner: CommandRunner): (endpoint: GuestEndpoint) => StreamOpener {
  return runner instanceof SshConnection ? (ep) => tunnelOpener(runner, ep) : (ep) => tcpOpener(ep);
}

export interface GuestHooksOptions {
  username: string;
  privateKey: string | Buffer;
  odsFingerprint?: string;
  script?: string;
  variables?: Record<string, string>;
  readyDeadlineMs?: number;
  restart?: 'cold' | 'reset';
  /** Host ports of the OD's loopback forwards (default: defaultForwardPort). */
  portFor?: (guestPort: number, c: PostCloneContext) => number;
  signal?: AbortSignal;
}

/**
 * The three replication hooks of the default real-guest path, for lib/recovery/od-replication.ts:
 * the post-clone XML fix, the re-identification (with restart), and the readiness check before
 * the OD is suspended.
 */
export function guestReplicationHooks(
  driver: GuestReidentifyDeps['driver'] & { runner: CommandRunner },
  o: GuestHooksOptions,
) {
  const opener = guestOpener(driver.runner);
  return {
    postCloneXml: (xml: string, c: PostCloneContext) => defaultPostCloneXml(xml, c, o.portFor),
    reidentify: async (c: Identity & { mac: string }) => {
      const g = await reidentifyGuest(c, { driver, opener, ...o });
      return { hostKey: g.hostKey, timings: g.timings };
    },
    ready: async (c: Identity & { mac: string }) => {
      await waitDomainSshReady(driver, opener, c.od, c.address, { deadlineMs: o.readyDeadlineMs ?? 90000, signal: o.signal });
    },
  };
}

/**
 * The default replication hooks (mode `seed`): the post-clone XML fix, the identity on a seed
 * volume made on the real server and attached before the first boot (od-seed.ts), and the check
 * before the OD is suspended: its SSH banner, then a login with the NEW host key pinned and its
 * hostname checked. One boot; no setup over SSH, no restart.
 */
export function guestSeedHooks(
  driver: { runner: CommandRunner; dumpxml(name: string): Promise<string>; makeIsoImage(path: string, label: string, files: Record<string, string>): Promise<void> },
  o: Omit<GuestHooksOptions, 'restart' | 'odsFingerprint'>,
) {
  const opener = guestOpener(driver.runner);
  return {
    postCloneXml: (xml: string, c: PostCloneContext) => defaultPostCloneXml(xml, c, o.portFor),
    seed: async (c: PostCloneContext, xml: string) => {
      const s = makeOdSeed({ od: c.od, address: c.address, realServer: c.realServer, mac: c.mac }, { script: o.script ?? defaultOdSetupScript(), variables: o.variables });
      const path = `${diskFolder(xml)}/${v.domainName(c.od)}-seed.iso`;
      await driver.makeIsoImage(path, SEED_LABEL, s.files);
      return { xml: attachSeedXml(xml, path), hostKey: s.hostKey.blob };
    },
    ready: async (c: Identity & { mac: string; hostKey?: string }) => {
      const open = opener(sshEndpoint(await driver.dumpxml(v.domainName(c.od)), c.address));
      const t0 = performance.now();
      await waitSshReady(open, { deadlineMs: o.readyDeadlineMs ?? 90000, what: `${c.od} (first boot)`, signal: o.signal });
      const t1 = performance.now();
      await checkIdentity(open, c.od, c.hostKey ?? '-', o);
      return { timings: { boot: t1 - t0, verify: performance.now() - t1 } };
    },
  };
}
