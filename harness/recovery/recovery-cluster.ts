// The loopback cluster of the recovery scenarios (issue 5): six VMs (Node-RED processes) on three
// simulated real servers (one ssh2 server per real server on its own 127.x.y.z, whose VM effects
// are the launcher's processes), one OD per real server as a suspended (SIGSTOPped) Node-RED
// process, the ODS of each real server as a defined, shut-off VM with the OD flow (for the
// replicator's clones). S1 also runs the load collector, which writes the realserver file from
// the simulated hosts' load and VM count. Everything the cluster starts, stop() stops.
//
// Addresses (one /24 of this process, 127.A.B): S1..S6 .1-.6, RS1..RS3 .11-.13, OD1..OD3 .21-.23,
// ODS-RS1..3 .31-.33, reserved OD identities .41-.
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
import { FILE_NAMES } from '../../lib/files';
import { EDIT_PATH, recoveryFlow, testProcedure, type RealServerRef } from './recovery-flow';

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
}

const SECRET = 'recovery-cluster-secret';
const MEMBERS = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6'];
/** S1, S4 on RS1; S2, S5 on RS2; S3, S6 on RS3 (the note's Fig. 3 layout). */
export const rsOf = (name: string) => `RS${((Number(name.replace(/\D/g, '')) - 1) % 3) + 1}`;

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
  ) {}

  static async start(o: RecoveryClusterOptions = {}): Promise<RecoveryCluster> {
    const range = allocLoopbackRange();
    const memberIps = MEMBERS.map((_, i) => range.ip(i + 1));
    const odIps = [1, 2, 3].map((i) => range.ip(20 + i));
    const odsIps = [1, 2, 3].map((i) => range.ip(30 + i));
    const spareIps = Array.from({ length: 10 }, (_, i) => range.ip(41 + i));
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
      for (let i = 0; i < 3; i++) {
        const s = new SimRealServer({ address: range.ip(11 + i), authorizedKeys: [key.public], backend: late, delays: o.delays ?? {}, hostKey: sshKeyPair().private });
        s.load = [o.loads?.[i] ?? 0.2, 0.2, 0.2];
        await s.start();
        const dir = path.join(s.sandboxDir, PROCEDURE_DIR.slice(1));
        fs.mkdirSync(dir, { recursive: true });
        for (const m of MEMBERS) fs.writeFileSync(path.join(dir, `${m}.sh`), testProcedure(uiPort));
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
        });
        if (vm.name === 'S1') {
          f.push({ id: 'collector', z: 'rec-tab', type: 'p2p-load-collector', store: 'store', interval: 1, threshold: 0.05, x: 520, y: 260, wires: [] });
        }
        return f;
      };
      const names = [...MEMBERS, 'OD1', 'OD2', 'OD3'];
      cluster = await startCluster({
        names,
        ips: [...memberIps, ...odIps],
        uiPorts: names.map(() => uiPort),
        keepDirs: o.keepDirs,
        flows: (vm) => (vm.name.startsWith('OD') ? flowOf(vm, false, `RS${vm.name.slice(2)}`) : flowOf(vm, true, rsOf(vm.name))),
      });
      backend = new ProcessBackend(cluster);
      rc = new RecoveryCluster(cluster, sims, range, uiPort, semPort, flowOf);
      // Every member joined; the ODs have the files (they pull from the members), then are suspended.
      await waitFor(() => MEMBERS.every((m) => rc!.members(m).length === 6), { what: 'six members in every group file', timeoutMs: 60_000, intervalMs: 200 });
      for (let i = 0; i < 3; i++) {
        const r = await rc.edit('S1', `available-od, Add, OD${i + 1}, ${odIps[i]}, RS${i + 1}`);
        if (r.status !== 200) throw new Error(`seeding available-od: ${JSON.stringify(r.body)}`);
      }
      await waitFor(() => ['RS1', 'RS2', 'RS3'].every((r) => rc!.fileOf('S1', 'realserver').includes(`${r}, `)), { what: 'realserver file written by the collector', timeoutMs: 20_000 });
      await waitFor(() => rc!.identical([...MEMBERS, 'OD1', 'OD2', 'OD3']), { what: 'identical files on members and ODs', timeoutMs: 20_000, intervalMs: 200 });
      for (let i = 0; i < 3; i++) {
        sims[i].addDomain(`ODS-RS${i + 1}`, 'shut off');
        for (const m of MEMBERS.filter((x) => rsOf(x) === `RS${i + 1}`)) sims[i].addDomain(m, 'running');
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

  members(name: string): string[] {
    return this.recordsOf(name, 'group').map((r) => r[0]);
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
      const m = /^(\S+) applied problem, (?:Add|Mod), (.*?)(?: \| |$)/.exec(line);
      if (!m) continue;
      const f = m[2].split(',').map((x) => x.trim());
      const after = f.slice(-6);
      if (after[0] === target && after[3] === status) return Date.parse(m[1]);
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
    const rec = this.recordsOf('S1', 'group').find((r) => r[0] === backup);
    if (!rs || !rec) throw new Error(`rearm: ${backup} is not in S1's group file`);
    const del = await this.edit('S1', `group, Del, ${rec.join(', ')}`);
    if (del.status !== 200) throw new Error(`rearm: ${JSON.stringify(del.body)}`);
    const others = () => this.liveVms().filter((n) => n !== od && !n.startsWith('ODS') && this.members(n).length > 0);
    await waitFor(() => others().every((n) => !this.members(n).includes(backup)), { what: `${backup} gone everywhere`, timeoutMs: 10_000 });
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
    // The failed server boots again on its host and rejoins (its flow is a member's).
    const t = this.vm(target);
    await this.cluster.start(t);
    Object.assign(this.sim(rsOf(target)).domains.get(target)!, { state: 'running', id: 1000 + Math.floor(Math.random() * 1000) });
    await waitFor(() => others().every((n) => this.members(n).includes(target)) && this.identical(others()), {
      what: `${target} back and files identical`,
      timeoutMs: 30_000,
      intervalMs: 200,
    });
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
