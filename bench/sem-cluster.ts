// A loopback SEM cluster of real Node-RED processes for the benches (harness/cluster/launcher with
// harness/flows/sem-flow on each VM), and the edits the benches make: S1's realserver record
// modified again and again by the flow's p2p-sem-send, one HTTP request per edit or a burst made by
// S1's own flow (DRIVER below).
import * as fs from 'fs';
import * as path from 'path';
import { Cluster, ClusterOptions, startCluster } from '../harness/cluster/launcher';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../harness/net';
import { httpRequest } from '../harness/http';
import { waitFor } from '../harness/wait';
import { BURST_PATH, EDIT_PATH, semFlow, SemFlowOptions } from '../harness/flows/sem-flow';

// How a bench's measured edits reach S1 (bench:sem, bench:memory). `flow` (default): one request
// starts a burst and S1's own flow makes the edits in a row (sem-flow's burst loop), GAP_MS apart,
// as a recovery or a flow on the VM edits its files. `http`: one HTTP request per edit through
// Node-RED's http in node, as before the tenth pass (docs/performance.md): its Express layer makes
// S1 keep megabytes alive through each young-generation collection, which is Express's cost, not
// SEM's. Both benches make every edit, warm-up included, the way DRIVER says.
export const DRIVER: 'flow' | 'http' = process.env.DRIVER === 'http' ? 'http' : 'flow';
// Between an edit's result and the next edit in the flow driver: about what the HTTP driver's
// round trip leaves between two edits, so the receivers finish an edit's trailing work as they did.
export const GAP_MS = Number(process.env.GAP_MS ?? 2);
export const DRIVER_TEXT =
  DRIVER === 'flow' ? `flow (S1's own flow makes the edits in a row, ${GAP_MS} ms apart)` : 'http (one request per edit through http in)';

export interface SemCluster {
  cluster: Cluster;
  range: LoopbackRange;
  ips: string[];
  /** Stops every VM and releases the address range. */
  stop(): Promise<void>;
}

/** `count` Node-RED VMs with the SEM flow, resolved once every VM's group file lists all of them. */
export async function startSemCluster(
  count: number,
  o: { env?: ClusterOptions['env']; keepDirs?: boolean; baseDir?: string; flow?: Partial<SemFlowOptions> } = {},
): Promise<SemCluster> {
  const range = allocLoopbackRange();
  const ips = Array.from({ length: count }, (_, i) => range.ip(i + 1));
  try {
    const semPort = await pickPortFreeOnAll(ips);
    const cluster = await startCluster({
      count,
      ips,
      env: o.env,
      keepDirs: o.keepDirs,
      baseDir: o.baseDir,
      flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: 'bench-secret-123', seeds: ips, syncIntervalMs: 5000, ...o.flow }),
    });
    const stop = async () => {
      await cluster.stopAll();
      range.release();
    };
    try {
      const members = (dir: string) => (fs.readFileSync(path.join(dir, 'p2p-ha', 'group'), 'utf8').match(/^S\d+/gm) ?? []).length;
      await waitFor(() => cluster.vms.every((vm) => members(vm.userDir) === count), { what: `${count} members everywhere`, timeoutMs: 30_000 + 3000 * count });
    } catch (e) {
      await stop();
      throw e;
    }
    return { cluster, range, ips, stop };
  } catch (e) {
    range.release();
    throw e;
  }
}

export interface EditResult {
  acked: { peer: string; ms: number }[];
  failed: unknown[];
  ms: number;
}

/** One edit of a burst: its result, and when S1 started it (epoch ms, S1's Date.now()). */
export interface BurstEdit extends EditResult {
  start: number;
}

/** Edit number i through `vmUrl`'s flow: S1's realserver record RS1, added first, then modified. */
export class RealServerEditor {
  private prev: string[] | null = null;
  constructor(private readonly vmUrl: string) {}

  async edit(i: number): Promise<EditResult> {
    const record = ['RS1', (i / 1000).toFixed(3), String(i % 50), 'up'];
    const payload = this.prev ? { file: 'realserver', op: 'Mod', before: this.prev, record } : { file: 'realserver', op: 'Add', record };
    const r = await httpRequest(this.vmUrl + EDIT_PATH, { method: 'POST', body: payload, timeoutMs: 10_000 });
    if (r.status !== 200) throw new Error(`edit ${i} failed: ${r.body}`);
    this.prev = record;
    const result = JSON.parse(r.body) as EditResult;
    if (result.failed.length) throw new Error(`edit ${i}: peers did not acknowledge: ${JSON.stringify(result.failed)}`);
    return result;
  }

  /** Edits first .. first + count - 1, the same records as edit(i), made in a row by the VM's own
   * flow (sem-flow's burst loop, `gapMs` between an edit's result and the next edit): no HTTP
   * request per edit on the way in. */
  async burst(count: number, first: number, gapMs: number): Promise<BurstEdit[]> {
    const r = await httpRequest(this.vmUrl + BURST_PATH, { method: 'POST', body: { count, first, prev: this.prev, gapMs }, timeoutMs: 30_000 + count * 100 });
    if (r.status !== 200) throw new Error(`burst from edit ${first} failed: ${r.body}`);
    const out = JSON.parse(r.body) as { edits: BurstEdit[]; prev: string[] };
    this.prev = out.prev;
    const bad = out.edits.findIndex((e) => e.failed.length > 0);
    if (bad >= 0) throw new Error(`edit ${first + bad}: peers did not acknowledge: ${JSON.stringify(out.edits[bad].failed)}`);
    return out.edits;
  }
}
