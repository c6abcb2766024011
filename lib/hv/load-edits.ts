// What the load collector writes to the realserver file: from one round of readings (one per real
// server) and the file's current records, the edits to make. Only a change that matters becomes
// an edit (a new real server, a state change up/down, a different VM count, a load that moved by
// at least the threshold, free memory that moved by at least memThresholdMiB, a different free
// vCPU count), so the SEM diff stream stays quiet on a steady cluster. A reading with capacity
// figures also carries the time it was read; the record is rewritten when its figures are older
// than refreshMs even if nothing moved, so placement can tell fresh figures from stale ones
// (lib/recovery/placement.ts). With capacity, each active domain's size (virsh dominfo: memory,
// vCPUs) is read too: free vCPUs are nproc minus the sum of their vCPUs, and the sizes are written
// in the record's vmSizes field so a failed VM's size is known when it fails (an unreachable host
// keeps its last sizes). Pure apart from readRealServer.
import type { Edit } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import { formatVmSizes, fromRealServer, toRealServer, type DomainSize, type RealServer } from '../records/records';
import type { VirshDriver } from './virsh-driver';

export interface Capacity {
  /** MemAvailable of the host, MiB. */
  freeMemMiB: number;
  /** Host CPUs (nproc) minus the vCPUs of its active VMs (see readRealServer). */
  freeVcpus: number;
  /** When read, epoch ms. */
  at: number;
  /** Each active domain's size (virsh dominfo); undefined when it could not be read. */
  sizes?: Record<string, DomainSize>;
}

export type Reading =
  | { realServer: string; ok: true; load: number; vmCount: number; capacity?: Capacity }
  | { realServer: string; ok: false; error: string };

export interface LoadEditOptions {
  /** Rewrite a record whose capacity figures are older than this even if nothing moved (ms). */
  refreshMs?: number;
  /** Free memory must move by this much to make an edit (MiB). */
  memThresholdMiB?: number;
}

export const LOAD_EDIT_DEFAULTS: Required<LoadEditOptions> = { refreshMs: 60_000, memThresholdMiB: 256 };

/** The load as the realserver file holds it: a non-negative number with two decimals. */
export function formatLoad(load: number): string {
  return (Number.isFinite(load) && load > 0 ? load : 0).toFixed(2);
}

export function loadEdits(readings: Reading[], current: RecordFields[], threshold: number, options: LoadEditOptions = {}): Edit[] {
  const o = { ...LOAD_EDIT_DEFAULTS, ...options };
  const edits: Edit[] = [];
  for (const r of readings) {
    const before = current.find((rec) => rec[0] === r.realServer);
    const was = before ? fromRealServer(before) : undefined;
    // A host in maintenance stays so (an operator's decision, lib/ops/maintenance.ts) whatever
    // the reading says; its figures are still kept current.
    const resting = was?.state === 'maintenance';
    let next: RealServer;
    if (r.ok) {
      next = { realServer: r.realServer, load: r.load, vmCount: r.vmCount, state: resting ? 'maintenance' : 'up' };
      if (r.capacity) Object.assign(next, { freeMemMiB: r.capacity.freeMemMiB, freeVcpus: r.capacity.freeVcpus, measuredAt: r.capacity.at });
      // Sizes not read this round: the last known ones stay (a VM's size rarely changes).
      const sizes = r.capacity?.sizes ?? was?.vmSizes;
      if (sizes) next.vmSizes = sizes;
    } else {
      // An unreachable host keeps its last figures: they are the best guess of what runs there
      // (their time says how old they are).
      next = { ...(was ?? { realServer: r.realServer, load: 0, vmCount: 0 }), state: resting ? 'maintenance' : 'down' } as RealServer;
    }
    const record = toRealServer(next);
    if (!before || !was) {
      edits.push({ file: 'realserver', op: 'Add', record });
      continue;
    }
    const now = next.measuredAt;
    const changed =
      was.state !== next.state ||
      before[2] !== record[2] ||
      Math.abs(Number(before[1]) - Number(record[1])) >= threshold ||
      (next.freeMemMiB !== undefined) !== (was.freeMemMiB !== undefined) ||
      Math.abs((next.freeMemMiB ?? 0) - (was.freeMemMiB ?? 0)) >= o.memThresholdMiB ||
      next.freeVcpus !== was.freeVcpus ||
      formatVmSizes(next.vmSizes) !== formatVmSizes(was.vmSizes) ||
      (now !== undefined && (was.measuredAt === undefined || now - was.measuredAt >= o.refreshMs));
    if (changed) edits.push({ file: 'realserver', op: 'Mod', record, before });
  }
  return edits;
}

export interface RoundResult {
  readings: Reading[];
  edits: Edit[];
  errors: string[];
}

/**
 * Read one real server: load per CPU and active VM count; any failure of those is a `down`
 * reading. With `capacity`, also free memory (/proc/meminfo MemAvailable), each active domain's
 * size (virsh dominfo) and free vCPUs: nproc minus the vCPUs of the active domains (a domain whose
 * size could not be read counts as one). A host that answers the load but not /proc/meminfo gives
 * a reading without capacity rather than none.
 */
export async function readRealServer(
  rsName: string,
  driver: VirshDriver | undefined,
  failure?: string,
  capacity = false,
  now: () => number = Date.now,
): Promise<Reading> {
  if (!driver) return { realServer: rsName, ok: false, error: failure ?? 'not configured' };
  try {
    const [load, vmCount, mem, sizes] = await Promise.all([
      driver.hostLoad(),
      driver.activeCount(),
      capacity ? driver.hostMemory().catch(() => undefined) : Promise.resolve(undefined),
      capacity ? Promise.resolve().then(() => driver.activeDomainSizes()).catch(() => undefined) : Promise.resolve(undefined),
    ]);
    const reading: Reading = { realServer: rsName, ok: true, load: load.perCpu, vmCount };
    if (mem) {
      const known = sizes ? Object.values(sizes) : [];
      const used = known.reduce((a, s) => a + s.vcpus, 0) + Math.max(0, vmCount - known.length);
      reading.capacity = { freeMemMiB: Math.floor(mem.availableKiB / 1024), freeVcpus: load.cpus - used, at: now() };
      if (sizes) reading.capacity.sizes = sizes;
    }
    return reading;
  } catch (e) {
    return { realServer: rsName, ok: false, error: (e as Error).message };
  }
}
