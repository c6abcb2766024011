// Recovery scenarios on real guests, shared by test/realvm and bench/real-vm: servers (re-identified
// clones of the ODS that keep running, each serving HTTP through its own loopback forward) and
// suspended ODs, made with the package's own replication (lib/recovery/od-replication.ts + the
// default guest hooks); an installation procedure on the real server that gives a resumed OD the
// failed server's function; detection as p2p-heartbeat does it (service probe, re-examination);
// the method (lib/recovery/backup-plan.ts on the real driver) and the two baselines of the note:
// a cold start of a shut-off backup, and the conventional central-file-server method.
import * as http from 'http';
import { guestOpener, guestSeedHooks, type PostCloneContext } from '../../lib/hv/guest-reidentify';
import { ReadinessError, waitDomainSshReady } from '../../lib/hv/readiness';
import { parseServiceCheck, probeService } from '../../lib/monitor/probes';
import { verdict } from '../../lib/monitor/checks';
import { MONITOR_DEFAULTS, TargetMonitor, type Transition } from '../../lib/monitor/target-monitor';
import { runBackupPlan, type RecoveryResult } from '../../lib/recovery/backup-plan';
import { replicateOne, type ReplicationResult } from '../../lib/recovery/od-replication';
import { procedureVariables } from '../../lib/recovery/install-procedure';
import { hostKeyLine } from '../../lib/records/records';
import { pickFreePort } from '../net';
import { sleep } from '../wait';
import type { GuestBed } from './guest-env';
import { MemoryFiles } from '../../test/support/memory-files';

export const RS = 'RSREAL';
export const PROCEDURE_DIR = '/var/lib/p2p-ha/realvm-install';

export interface GuestVm {
  name: string;
  address: string;
  sshPort: number;
  servicePort: number;
  hostKey: string;
  made: ReplicationResult;
}

/**
 * The installation procedure of a server, run on the real server with the package's variables:
 * it reaches the resumed OD over SSH through the OD's own loopback forward (read from its domain
 * XML) and gives it the function of TARGET until its next restart (hostname, the HTTP page). The
 * OD's host key is pinned: the backup starter gives OD_KNOWN_HOSTS (a known_hosts file with the
 * key recorded in available-od at replication); without it the procedure refuses to run, and a
 * guest presenting another key is refused by ssh (exit 255).
 */
export function installProcedure(guestKeyPath: string): string {
  return `#!/bin/sh
set -e
test -n "\${OD_KNOWN_HOSTS:-}" || { echo "no OD_KNOWN_HOSTS: the OD's host key is not pinned" >&2; exit 3; }
port=$(virsh dumpxml "$OD" | sed -n 's/.*hostfwd=tcp:127.0.0.1:\\([0-9]*\\)-[0-9.]*:22[^0-9].*/\\1/p' | head -n 1)
test -n "$port"
ssh -q -i ${guestKeyPath} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$OD_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -p "$port" root@127.0.0.1 \\
  "hostname $BACKUP && echo '$BACKUP serving $TARGET' > /run/www/index.html"
`;
}

/** Files of a scenario: the servers in group, one real server up, the ODs available. */
export function scenarioFiles(servers: GuestVm[], ods: GuestVm[]): MemoryFiles {
  return new MemoryFiles(
    { hostname: 'M1', address: '127.0.0.1', realServer: RS, services: '-' },
    {
      group: servers.map((s) => [s.name, s.address, RS, 'http:80/']),
      realserver: [[RS, '0.10', String(servers.length), 'up']],
      'available-od': ods.map((o) => [o.name, o.address, RS, o.hostKey]),
    },
  );
}

/**
 * Make a VM with the package's replication (the default mode, seed): clone, fix XML, seed volume,
 * boot, ready under the new identity (new host key pinned), suspend. `serviceOn`: bind the HTTP forward to this loopback address, port 80 (the VM's own
 * address, where p2p-heartbeat checks `http:80/`), the guest taking 10.0.2.<100 + last octet mod 100>.
 */
export async function makeVm(bed: GuestBed, name: string, address: string, files: MemoryFiles, serviceOn?: string): Promise<GuestVm> {
  const sshPort = await pickFreePort('127.0.0.1');
  const servicePort = serviceOn ? 80 : await pickFreePort('127.0.0.1');
  const hooks = guestSeedHooks(bed.driver, {
    username: 'root',
    privateKey: bed.guestKey,
    portFor: (gp) => (gp === 22 ? sshPort : servicePort),
  });
  const postCloneXml = !serviceOn
    ? hooks.postCloneXml
    : (xml: string, c: PostCloneContext) =>
        // An operator's own hook: the guest's address is slirp's 10.0.2.x, the VM's address a
        // loopback address of this host where its service forward listens.
        hooks
          .postCloneXml(xml, { ...c, address: `10.0.2.${100 + (Number(c.address.split('.')[3]) % 100)}` })
          .replace(`hostfwd=tcp:127.0.0.1:${servicePort}-`, `hostfwd=tcp:${serviceOn}:${servicePort}-`);
  const replicate = () =>
    replicateOne(
      { od: name, address, realServer: RS },
      {
        files,
        driver: bed.driver,
        ods: bed.ods.name,
        ...hooks,
        postCloneXml,
      },
    );
  let made: ReplicationResult;
  try {
    made = await replicate();
  } catch (e) {
    // A guest whose first boot never answers SSH (seen once in CI under load, 2026-12-03: no
    // banner in 90 s where a boot takes ~6 s) is removed by replicateOne; the replicator's next
    // run makes the same identity again, and so does this bed, once. Any other failure, or a
    // second one, fails the test.
    if (!(e instanceof ReadinessError)) throw e;
    console.error(`[realvm] ${name}: ${e.message}; made again, as the replicator's next run would`);
    made = await replicate();
  }
  return { name, address, sshPort, servicePort, hostKey: made.hostKey ?? '-', made };
}

/** Resume (or start) a domain and wait for its SSH banner: the time to usable. */
export async function bringUp(bed: GuestBed, vm: GuestVm, how: 'resume' | 'start'): Promise<number> {
  const t0 = performance.now();
  if (how === 'resume') await bed.driver.resume(vm.name);
  else await bed.driver.start(vm.name);
  await waitDomainSshReady(bed.driver, guestOpener(bed.driver.runner), vm.name, vm.address, { deadlineMs: 120000 });
  return performance.now() - t0;
}

/** Put a used OD back: restart it (its disk identity is unchanged by the install), ready, suspend. */
export async function resetOd(bed: GuestBed, vm: GuestVm): Promise<void> {
  const st = await bed.driver.domstate(vm.name);
  if (st === 'paused') return;
  if (st === 'shut off') await bed.driver.start(vm.name);
  else await bed.driver.reset(vm.name);
  await waitDomainSshReady(bed.driver, guestOpener(bed.driver.runner), vm.name, vm.address, { deadlineMs: 120000 });
  await bed.driver.suspend(vm.name);
}

/** Put a failed server back: running and answering. */
export async function resetServer(bed: GuestBed, vm: GuestVm): Promise<void> {
  const st = await bed.driver.domstate(vm.name);
  if (st === 'paused') await bed.driver.resume(vm.name);
  else if (st === 'shut off') await bed.driver.start(vm.name);
  else return;
  await waitDomainSshReady(bed.driver, guestOpener(bed.driver.runner), vm.name, vm.address, { deadlineMs: 120000 });
}

export async function serviceText(port: number, timeoutMs = 1000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Detection by the package's own monitor (lib/monitor/target-monitor.ts, the state machine
 * p2p-heartbeat runs) with its defaults (MONITOR_DEFAULTS: check every 1 s, probe timeout 0.5 s,
 * service re-examination 3 s counted from the start of the first failed check, re-checks every
 * 0.25 s), on the `http:80/` service check through the guest's forward. The guests run no manager,
 * so only the service is checked and a hang is a service fault (3 s; a whole-VM hang with its
 * manager inside would fail the manager's ping too and be re-examined as a network fault, 2 s).
 * Start it while the service is well: `seenOk` resolves after its first good check; `confirmed`
 * with performance.now() at the confirmation.
 */
export function watchService(port: number, settings: { intervalMs?: number; timeoutMs?: number; reexamServiceMs?: number } = {}) {
  const timeoutMs = settings.timeoutMs ?? MONITOR_DEFAULTS.timeoutMs;
  const check = parseServiceCheck(`http:${port}/`);
  const monitor = new TargetMonitor({
    target: `127.0.0.1:${port}`,
    check: async () => verdict([await probeService('127.0.0.1', check, timeoutMs)]),
    ...settings,
  });
  let okSeen: () => void = () => undefined;
  let done: (at: number) => void = () => undefined;
  const seenOk = new Promise<void>((r) => (okSeen = r));
  const confirmed = new Promise<number>((r) => (done = r));
  monitor.on('check', (c: { result: { ok: boolean } }) => c.result.ok && okSeen());
  monitor.on('transition', (t: Transition) => t.to === 'confirmed' && done(performance.now()));
  monitor.start();
  return { seenOk, confirmed, stop: () => monitor.stop() };
}

/** Watch the service, then hang its guest (`virsh suspend`): the time from the hang to the confirmation. */
export async function hangAndDetect(bed: GuestBed, vm: GuestVm, deadlineMs = 60000): Promise<{ t0: number; detectMs: number }> {
  const w = watchService(vm.servicePort);
  try {
    await withDeadline(w.seenOk, 30000, `${vm.name}'s service never answered the monitor`);
    const t0 = performance.now();
    await bed.driver.suspend(vm.name); // the hang
    const at = await withDeadline(w.confirmed, deadlineMs, `no failure of ${vm.name} confirmed`);
    return { t0, detectMs: at - t0 };
  } finally {
    w.stop();
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** Wait until the OD's forwarded service answers as the backup of `target`. */
export async function waitServiceFrom(port: number, target: string, deadlineMs = 60000): Promise<string> {
  const t0 = performance.now();
  for (;;) {
    const body = await serviceText(port, 1000);
    if (body && body.includes(`serving ${target}`)) return body;
    if (performance.now() - t0 > deadlineMs) throw new Error(`service of ${target} not answering on ${port}: ${body}`);
    await sleep(50);
  }
}

export async function installProcedureOnHost(bed: GuestBed, targets: string[]): Promise<void> {
  for (const t of targets) await bed.driver.copyFile(`${PROCEDURE_DIR}/${t}.sh`, installProcedure(`${bed.guestDir}/guest_key`));
}

export interface MethodRun {
  result: RecoveryResult;
  /** From the failure to the backup's service answering (detection excluded). */
  toServiceMs: number;
}

/** The method: lib/recovery/backup-plan.ts on the real driver, readiness before the install. */
export async function recoverWithMethod(bed: GuestBed, files: MemoryFiles, failed: GuestVm, odByName: Map<string, GuestVm>): Promise<MethodRun> {
  const t0 = performance.now();
  const result = await runBackupPlan(
    { target: failed.name, address: failed.address, realServer: RS, kind: 'service', detectedBy: 'M1' },
    {
      files,
      driver: () => bed.driver,
      odReady: async (p) => {
        await waitDomainSshReady(bed.driver, guestOpener(bed.driver.runner), p.od, p.address, { deadlineMs: 60000 });
      },
      now: () => performance.now(),
    },
    { procedureDir: PROCEDURE_DIR },
  );
  const od = odByName.get(result.placement?.od ?? '');
  if (!od) throw new Error(`recovery of ${failed.name} used no known OD: ${JSON.stringify(result)}`);
  await waitServiceFrom(od.servicePort, failed.name);
  return { result, toServiceMs: performance.now() - t0 };
}

/** A central file server (the conventional method's single point): files and procedures over HTTP. */
export async function startFileServer(content: Map<string, string>): Promise<{ port: number; requests: () => number; close(): Promise<void> }> {
  let requests = 0;
  const srv = http.createServer((req, res) => {
    requests++;
    const key = decodeURIComponent(req.url ?? '/');
    if (req.method === 'PUT') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        content.set(key, body);
        res.writeHead(204).end();
      });
      return;
    }
    const v = content.get(key);
    if (v === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(v);
  });
  const port = await pickFreePort('127.0.0.1');
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
  return { port, requests: () => requests, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

function httpText(port: number, method: 'GET' | 'PUT', key: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: encodeURI(key), method, timeout: 10000 }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve(text) : reject(new Error(`${method} ${key}: ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${key}: timeout`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The conventional method (the note's comparison): one central manager with a file server. Each
 * failure is handled in turn: read the management files and the procedure from the file server,
 * fence, resume the first available OD, wait for it, copy the procedure to the real server and
 * run it, write the files back. Returns each failure's time from the start to its service answering.
 */
export async function recoverConventional(bed: GuestBed, fileServerPort: number, failed: GuestVm[], ods: GuestVm[]): Promise<number[]> {
  const t0 = performance.now();
  const times: number[] = [];
  for (const f of failed) {
    const available = (await httpText(fileServerPort, 'GET', '/files/available-od')).split('\n').filter(Boolean);
    const odName = available[0].split(', ')[0];
    const od = ods.find((o) => o.name === odName)!;
    await httpText(fileServerPort, 'PUT', '/files/available-od', available.slice(1).join('\n') + '\n');
    await bed.driver.destroy(f.name);
    await bed.driver.resume(od.name);
    await waitDomainSshReady(bed.driver, guestOpener(bed.driver.runner), od.name, od.address, { deadlineMs: 60000 });
    const proc = await httpText(fileServerPort, 'GET', `/procedures/${f.name}.sh`);
    const path = `${PROCEDURE_DIR}/central-${f.name}.sh`;
    await bed.driver.copyFile(path, proc);
    const backup = `${f.name}b`;
    await bed.driver.runFile(path, procedureVariables({ target: f.name, targetAddress: f.address, backup, backupAddress: od.address, od: od.name, realServer: RS, services: 'http:80/' }), { knownHostsKey: hostKeyLine(od.hostKey) });
    const group = await httpText(fileServerPort, 'GET', '/files/group');
    await httpText(fileServerPort, 'PUT', '/files/group', group.split('\n').filter((l) => l && !l.startsWith(`${f.name},`)).concat(`${backup}, ${od.address}, ${RS}, http:80/`).join('\n') + '\n');
    await waitServiceFrom(od.servicePort, f.name);
    times.push(performance.now() - t0);
  }
  return times;
}

/** The cold-start baseline: the backup is a shut-off VM started (not resumed) after the fence. */
export async function recoverColdStart(bed: GuestBed, failed: GuestVm, backup: GuestVm): Promise<{ toServiceMs: number; fenceMs: number; startMs: number; installMs: number }> {
  const t0 = performance.now();
  await bed.driver.destroy(failed.name);
  const fenceMs = performance.now() - t0;
  const startMs = await bringUp(bed, backup, 'start');
  const t1 = performance.now();
  await bed.driver.runFile(
    `${PROCEDURE_DIR}/${failed.name}.sh`,
    procedureVariables({ target: failed.name, targetAddress: failed.address, backup: `${failed.name}b`, backupAddress: backup.address, od: backup.name, realServer: RS, services: 'http:80/' }),
    { knownHostsKey: hostKeyLine(backup.hostKey) },
  );
  const installMs = performance.now() - t1;
  await waitServiceFrom(backup.servicePort, failed.name);
  return { toServiceMs: performance.now() - t0, fenceMs, startMs, installMs };
}

