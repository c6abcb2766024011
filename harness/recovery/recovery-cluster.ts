// The loopback cluster of the recovery scenarios (issue 5): six VMs (Node-RED processes) on three
// simulated real servers (one ssh2 server per real server on its own 127.x.y.z, whose VM effects
// are the launcher's processes), one OD per real server as a suspended (SIGSTOPped) Node-RED
// process, the ODS of each real server as a defined, shut-off VM with the OD flow (for the
// replicator's clones). S1 also runs the load collector, which writes the realserver file from
// the simulated hosts' load and VM count. Everything the cluster starts, stop() stops.
//
// Addresses (one /24 of this process, 127.A.B): S1..Sn .1-.n (n <= 20), RS1..RSm .101-.10m
// (m <= 9), OD1..ODm .121-, ODS-RS1..m .141-, identities for new ODs (spareIp) .161-.250.
import * as fs from 'fs';
import * as path from 'path';
import { sshKeyPair } from '../ssh-keys';
import { Cluster, startCluster, type FlowNode, type Vm } from '../cluster/launcher';
import { ProcessBackend } from '../cluster/process-backend';
import { httpRequest } from '../http';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../net';
import { SimRealServer } from '../sim/sim-server';
import type { VmBackend } from '../sim/vm-backend';
import { waitFor } from '../wait';
import { FILE_NAMES } from '../../lib/records/files';
import { EDIT_PATH, recoveryFlow, testProcedure, type RealServerRef } from './recovery-flow';
import { loadCollectors } from './cluster-example';
import { parseDiffLine } from '../../lib/records/diff-line';

export const PROCEDURE_DIR = '/var/lib/p2p-ha/install';

export interface RecoveryClusterOptions {
  /** Re-examination of a network failure (ms). */
  reexamNetworkMs?: number;
  /** Run the OD replicator on every member. */
  replicator?: boolean;
  /** Host loads (1-minute, as /proc/loadavg) of RS1..RS3. */
  loads?: [number, number, number];
  /** Simulated hypervisor delays (ms per operation), e.g. REALISTIC_DELAYS. */
  delays?: SimRealServer['delays'];
  keepDirs?: boolean;
  /** Number of VMs S1..Sn (default 6, at most 20). */
  vms?: number;
  /** Number of real servers RS1..RSm (default 3, at most 9); VM i runs on RS((i-1) mod m + 1). */
  realServers?: number;
  /** Deadline of one VM's start (launcher default 30 s). */
  startTimeoutMs?: number;
  /** The backup starters' takeover bound of a stalled recovery (s); the node's default when undefined. */
  takeoverS?: number;
}

const SECRET = 'recovery-cluster-secret';
/** With three real servers: S1, S4 on RS1; S2, S5 on RS2; S3, S6 on RS3 (the note's Fig. 3 layout). */
export const rsOf = (name: string, realServers = 3) => `RS${((Number(name.replace(/\D/g, '')) - 1) % realServers) + 1}`;
const SPARE_BASE = 161;
/** After a re-armed target serves again: several heartbeat intervals (the flow's is 500 ms), so every monitor saw it. */
const REARM_SEEN_MS = 2500;
const SPARE_COUNT = 90;

export class RecoveryCluster {
  /** Reserved identities for clones: name -> address (ProcessBackend clones take these). */
  readonly reservedIps = new Map<string, string>();

  private constructor(
    readonly cluster: Cluster,
    readonly sims: SimRealServer[],
    readonly range: LoopbackRange,
    readonly uiPort: number,
    readonly semPort: number,
    /** The flow of a VM: a member's, or an OD's (not a member). */
    readonly flowOf: (vm: { name: string; ip: string }, member: boolean, realServer: string) => FlowNode[],
    /** S1..Sn, the VMs the cluster started with. */
    readonly memberNames: string[],
  ) {}

  /** The address of the k-th identity set aside for new ODs (k from 0; for the reservation file). */
  spareIp(k: number): string {
    if (!Number.isInteger(k) || k < 0 || k >= SPARE_COUNT) throw new Error(`spare identity ${k} out of 0..${SPARE_COUNT - 1}`);
    return this.range.ip(SPARE_BASE + k);
  }

  static async start(o: RecoveryClusterOptions = {}): Promise<RecoveryCluster> {
    const n = o.vms ?? 6;
    const m = o.realServers ?? 3;
    if (!Number.isInteger(n) || n < 2 || n > 20) throw new Error(`vms must be a whole number from 2 to 20, not ${n}`);
    if (!Number.isInteger(m) || m < 1 || m > 9) throw new Error(`realServers must be a whole number from 1 to 9, not ${m}`);
    const MEMBERS = Array.from({ length: n }, (_, i) => `S${i + 1}`);
    const RS = Array.from({ length: m }, (_, i) => i + 1);
    const range = allocLoopbackRange();
    const memberIps = MEMBERS.map((_, i) => range.ip(i + 1));
    const odIps = RS.map((i) => range.ip(120 + i));
    const odsIps = RS.map((i) => range.ip(140 + i));
    const spareIps = Array.from({ length: SPARE_COUNT }, (_, i) => range.ip(SPARE_BASE + i));
    const all = [...memberIps, ...odIps, ...odsIps, ...spareIps];
    // One admin/service port for every VM (each on its own address), so a clone keeps it.
    const uiPort = await pickPortFreeOnAll(all);
    let semPort = await pickPortFreeOnAll(all);
    while (semPort === uiPort) semPort = await pickPortFreeOnAll(all);
    const key = sshKeyPair();
    let cluster: Cluster | undefined;
    const sims: SimRealServer[] = [];
    let rc: RecoveryCluster | undefined;
    // The sims need a backend before the cluster exists; the cluster needs the sims' keys in its flows.
    let backend: ProcessBackend | undefined;
    const late: VmBackend = {
      start: (n) => backend!.start(n),
      shutdown: (n) => backend!.shutdown(n),
      destroy: (n) => backend!.destroy(n),
      suspend: (n) => backend!.suspend(n),
      resume: (n) => backend!.resume(n),
      remove: (n) => backend!.remove(n),
      // A clone keeps the common port and takes its reserved address.
      clone: async (source, target, mac) => {
        const ip = rc?.reservedIps.get(target);
        if (!ip) throw new Error(`no reserved address for ${target}`);
        const vm = await cluster!.clone(source, { name: target, ip, uiPort });
        vm.mac = mac;
      },
    };
    try {
      for (let i = 0; i < m; i++) {
        const s = new SimRealServer({ address: range.ip(101 + i), authorizedKeys: [key.public], backend: late, delays: o.delays ?? {}, hostKey: sshKeyPair().private });
        s.load = [o.loads?.[i] ?? 0.2, 0.2, 0.2];
        await s.start();
        const dir = path.join(s.sandboxDir, PROCEDURE_DIR.slice(1));
        fs.mkdirSync(dir, { recursive: true });
        for (const x of MEMBERS) fs.writeFileSync(path.join(dir, `${x}.sh`), testProcedure(uiPort));
        sims.push(s);
      }
      const refs: RealServerRef[] = sims.map((s, i) => ({ name: `RS${i + 1}`, host: s.address, port: s.port, fingerprint: s.fingerprint }));
      const flowOf = (vm: { name: string; ip: string }, member: boolean, realServer: string): FlowNode[] => {
        const f = recoveryFlow({
          hostname: vm.name,
          address: vm.ip,
          realServer,
          member,
          semPort,
          uiPort,
          secret: SECRET,
          privateKey: key.private,
          seeds: memberIps,
          realServers: refs,
          procedureDir: PROCEDURE_DIR,
          reexamNetworkMs: o.reexamNetworkMs ?? 2000,
          replicator: o.replicator && member ? { ods: 'ODS-{rs}', intervalS: 5 } : undefined,
          takeoverS: o.takeoverS,
        });
        if (vm.name === 'S1') {
          f.push(...loadCollectors(f, { interval: 1, threshold: 0.05 }));
        }
        return f;
      };
      const ods = RS.map((i) => `OD${i}`);
      const names = [...MEMBERS, ...ods];
      cluster = await startCluster({
        names,
        ips: [...memberIps, ...odIps],
        uiPorts: names.map(() => uiPort),
        keepDirs: o.keepDirs,
        // Nine runtimes boot here; on the shared 2-core machine under load (load average 25-77
        // seen) one took more than the launcher's default 30 s to answer: a longer deadline.
        startTimeoutMs: o.startTimeoutMs ?? 120_000,
        flows: (vm) => (vm.name.startsWith('OD') ? flowOf(vm, false, `RS${vm.name.slice(2)}`) : flowOf(vm, true, rsOf(vm.name, m))),
      });
      backend = new ProcessBackend(cluster);
      rc = new RecoveryCluster(cluster, sims, range, uiPort, semPort, flowOf, MEMBERS);
      // Every member joined; the ODs have the files (they pull from the members), then are suspended.
      await waitFor(() => MEMBERS.every((x) => rc!.members(x).length === n), { what: `${n} members in every group file`, timeoutMs: 60_000, intervalMs: 200 });
      for (let i = 0; i < m; i++) {
        const r = await rc.edit('S1', `available-od, Add, OD${i + 1}, ${odIps[i]}, RS${i + 1}`);
        if (r.status !== 200) throw new Error(`seeding available-od: ${JSON.stringify(r.body)}`);
      }
      await waitFor(() => RS.every((r) => rc!.fileOf('S1', 'realserver').includes(`RS${r}, `)), { what: 'realserver file written by the collector', timeoutMs: 60_000 });
      await waitFor(() => rc!.identical([...MEMBERS, ...ods]), { what: 'identical files on members and ODs', timeoutMs: 60_000, intervalMs: 200 });
      for (let i = 0; i < m; i++) {
        sims[i].addDomain(`ODS-RS${i + 1}`, 'shut off');
        for (const x of MEMBERS.filter((v) => rsOf(v, m) === `RS${i + 1}`)) sims[i].addDomain(x, 'running');
        await cluster.freeze(`OD${i + 1}`);
        sims[i].addDomain(`OD${i + 1}`, 'paused');
        // The ODS of this real server: a shut-off copy of its OD (flows and encrypted credentials
        // included), the template the replicator clones. Copied while the OD is frozen: no write
        // is under way.
        await cluster.clone(`OD${i + 1}`, { name: `ODS-RS${i + 1}`, ip: odsIps[i], uiPort });
      }
      return rc;
    } catch (e) {
      await cluster?.stopAll().catch(() => undefined);
      for (const s of sims) await s.stop().catch(() => undefined);
      range.release();
      throw e;
    }
  }

  vm(name: string): Vm {
    return this.cluster.vm(name);
  }

  sim(rs: string): SimRealServer {
    return this.sims[Number(rs.replace(/\D/g, '')) - 1];
  }

  filesDir(name: string): string {
    return path.join(this.vm(name).userDir, 'p2p-ha');
  }

  fileOf(name: string, file: string): string {
    const p = path.join(this.filesDir(name), file);
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  }

  /** Records of a file on a VM (comments dropped). */
  recordsOf(name: string, file: string): string[][] {
    return this.fileOf(name, file)
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split(',').map((x) => x.trim()));
  }

  /** The group's members on a VM: a fenced record (a replaced server, kept so it stays out) is no member. */
  members(name: string): string[] {
    return this.recordsOf(name, 'group')
      .filter((r) => r[4] !== 'fenced')
      .map((r) => r[0]);
  }

  /** The six files of every named VM are byte-identical. */
  identical(names: string[]): boolean {
    const texts = names.map((n) => FILE_NAMES.map((f) => this.fileOf(n, f)).join('\u0000'));
    return texts.every((t) => t === texts[0]);
  }

  /**
   * When a problem status was applied on a VM, from its SEM log (the note read its times from the
   * log too): epoch ms of the first `applied problem` diff whose new record is `target .. status`.
   */
  statusTime(name: string, target: string, status: string): number | undefined {
    for (const line of this.fileOf(name, 'sem.log').split('\n')) {
      // `<time> applied <Diff.dat line> | origin=...`: the record after the edit is the diff's record.
      const m = /^(\S+) applied (problem, (?:Add|Mod), .*?)(?: \| |$)/.exec(line);
      if (!m) continue;
      const { record } = parseDiffLine(m[2]);
      if (record[0] === target && record[3] === status) return Date.parse(m[1]);
    }
    return undefined;
  }

  /** VMs running now (not frozen, not killed): the live members and backups. */
  liveVms(): string[] {
    return this.cluster.vms.filter((v) => v.state === 'running').map((v) => v.name);
  }

  async edit(name: string, line: string) {
    const r = await httpRequest(this.vm(name).url + EDIT_PATH, { method: 'POST', body: line, headers: { 'Content-Type': 'text/plain' }, timeoutMs: 10_000 });
    return { status: r.status, body: JSON.parse(r.body) };
  }

  /** GET the service of a VM by address: the name of the server it serves, or null. */
  async service(address: string): Promise<string | null> {
    try {
      const r = await httpRequest(`http://${address}:${this.uiPort}/svc`, { timeoutMs: 1000 });
      return r.status === 200 ? r.body : null;
    } catch {
      return null;
    }
  }

  /** A real server dies with its VMs: its SSH endpoint and every VM process on it, together. */
  async killRealServer(rs: string): Promise<void> {
    const s = this.sim(rs);
    const onIt = [...s.domains.values()].filter((d) => d.state !== 'shut off').map((d) => d.name);
    await Promise.all([
      stopSim(s),
      ...onIt.map(async (n) => {
        const vm = this.cluster.vms.find((v) => v.name === n);
        if (vm?.pid !== undefined) await this.cluster.kill(vm, 'SIGKILL');
      }),
    ]);
  }

  /**
   * Undo a recovery, for the benchmark's next run: the backup leaves the group and becomes the
   * suspended OD it was (its process restarted with the OD flow), the failed server starts again
   * and rejoins. Resolves when every live VM's files are identical again.
   */
  async rearm(target: string, backup: string, od: string): Promise<void> {
    const rs = this.recordsOf('S1', 'group').find((r) => r[0] === backup)?.[2];
    if (!rs) throw new Error(`rearm: ${backup} is not in S1's group file`);
    // Peers accept the deletion of a member's record only from its manager with a dated claim
    // (edit authority G2, also at anti-entropy merge): the backup's P1 records one, deletes the
    // record, then (once it is gone everywhere) the claim.
    const m = this.recordsOf('S1', 'operation').find((o) => o[0] === 'P1' && o[2] === backup)?.[1];
    if (!m) throw new Error(`rearm: ${backup} has no manager in S1's operation file`);
    const others = () => this.liveVms().filter((n) => n !== od && !n.startsWith('ODS') && this.members(n).length > 0);
    // The backup publishes its key in its own record (a Mod) once it sees the record: a deletion
    // made before that Mod reached everyone can lose to it where it lands later (the record comes
    // back there and "gone everywhere" never holds; seen on a busy machine). Delete after it.
    const keyOf = (n: string) => this.recordsOf(n, 'group').find((r) => r[0] === backup)?.[5] ?? '-';
    await waitFor(() => others().every((n) => keyOf(n) !== '-'), { what: `${backup}'s key published everywhere`, timeoutMs: 20_000 }).catch((e: Error) => {
      const seen = [od, ...others()].map((n) => `${n}: ${keyOf(n)}`).join('; ');
      const about = (n: string) => this.fileOf(n, 'sem.log').split('\n').filter((l) => l.includes(backup)).slice(-6).join(' | ');
      throw new Error(`${e.message} (${seen}; ${od}'s log: ${about(od)}; S1's log: ${about('S1')})`);
    });
    const claim = `${backup}, ${m}, service, failed, -, ${new Date().toISOString()}, bench re-arm`;
    // A record for the backup may be there already (a re-examination on a busy machine, cleared).
    const had = this.recordsOf(m, 'problem').find((r) => r[0] === backup);
    const c = await this.edit(m, had ? `problem, Mod, ${had.join(', ')}, ${claim}` : `problem, Add, ${claim}`);
    if (c.status !== 200) throw new Error(`rearm: ${JSON.stringify(c.body)}`);
    let del: { status: number; body: unknown } | undefined;
    for (let i = 0; i < 20 && del?.status !== 200; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 200));
      const rec = this.recordsOf(m, 'group').find((r) => r[0] === backup);
      if (!rec) throw new Error(`rearm: ${backup} is not in ${m}'s group file`);
      del = await this.edit(m, `group, Del, ${rec.join(', ')}`);
    }
    if (del?.status !== 200) throw new Error(`rearm: ${JSON.stringify(del?.body)}`);
    // Gone everywhere, the backup itself included, before the claim goes: a VM that merges the
    // deletion later (by anti-entropy) refuses it without the claim (G2 at merge), and an OD that
    // kept the record diverged from the others for ever (seen: the next run's key never spread).
    await waitFor(() => [od, ...others()].every((n) => !this.members(n).includes(backup)), { what: `${backup} gone everywhere`, timeoutMs: 20_000 });
    const undo = await this.edit(m, `problem, Del, ${claim}`);
    if (undo.status !== 200) throw new Error(`rearm: ${JSON.stringify(undo.body)}`);
    const vm = this.vm(od);
    const marker = `[p2p-store:${od}] SEM listening`;
    const starts = () => this.logs(od).split(marker).length - 1;
    const before = starts();
    await this.cluster.kill(vm, 'SIGKILL');
    // The OD flow again (credentials stay in its encrypted file, matched by node id).
    const flows = this.flowOf(vm, false, rs).map(({ credentials: _c, ...n }) => n as FlowNode);
    fs.writeFileSync(path.join(vm.userDir, 'flows.json'), JSON.stringify(flows));
    await this.cluster.start(vm);
    await waitFor(() => starts() > before, { what: `${od} store up`, timeoutMs: 20_000 });
    await this.cluster.freeze(vm);
    Object.assign(this.sim(rs).domains.get(od)!, { state: 'paused' });
    const add = await this.edit('S1', `available-od, Add, ${od}, ${vm.ip}, ${rs}`);
    if (add.status !== 200) throw new Error(`rearm: ${JSON.stringify(add.body)}`);
    // The failed server boots again on its host; it was fenced (replaced), so it stays out until
    // the operator re-admits it (lib/monitor/readmit.ts): done here once its replacement is gone.
    const t = this.vm(target);
    await this.cluster.start(t);
    Object.assign(this.sim(rsOf(target, this.sims.length)).domains.get(target)!, { state: 'running', id: 1000 + Math.floor(Math.random() * 1000) });
    if (this.recordsOf('S1', 'group').find((r) => r[0] === target)?.[4] === 'fenced') {
      const re = await httpRequest(`${this.vm('S1').url}/p2p-ha/readmit`, { method: 'POST', body: { hostname: target }, timeoutMs: 10_000 });
      if (re.status !== 200) throw new Error(`rearm: readmit ${target}: ${re.status} ${re.body}`);
    }
    await waitFor(() => others().every((n) => this.members(n).includes(target)) && this.identical(others()), {
      what: `${target} back and files identical`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    // Its service answers again, and its managers' monitors have seen it answer: a monitor made
    // when the ring changed grants a target never seen a start-up grace (target-monitor.ts), so a
    // kill right now would be detected up to that grace later, which is not what a run measures.
    await waitFor(async () => (await this.service(t.ip)) === target, { what: `${target} serves again`, timeoutMs: 30_000, intervalMs: 100 });
    await new Promise((r) => setTimeout(r, REARM_SEEN_MS));
  }

  /** The managers lose a real server's SSH endpoint; its VMs live on. */
  async partitionRealServer(rs: string): Promise<void> {
    await stopSim(this.sim(rs));
  }

  async stop(): Promise<void> {
    await this.cluster.stopAll().catch(() => undefined);
    for (const s of this.sims) await stopSim(s);
    this.range.release();
  }

  logs(name: string): string {
    return this.cluster.logs(this.vm(name)).nodeRed;
  }
}

/**
 * Stop a simulated real server with a deadline: a client in a SIGSTOPped VM (a suspended OD holds
 * connections from its own real-server nodes) never answers a close; the sim drops such clients
 * itself after 300 ms, this bounds the wait in any case.
 */
async function stopSim(s: SimRealServer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([s.stop().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
  clearTimeout(timer);
}
