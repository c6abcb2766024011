// What the load collector writes to the realserver file: from one round of readings (one per real
// server) and the file's current records, the edits to make. Only a change that matters becomes
// an edit (a new real server, a state change up/down, a different VM count, or a load that moved
// by at least the threshold), so the SEM diff stream stays quiet on a steady cluster. Pure.
import type { Edit } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import type { VirshDriver } from './virsh-driver';

export type Reading =
  | { realServer: string; ok: true; load: number; vmCount: number }
  | { realServer: string; ok: false; error: string };

/** The load as the realserver file holds it: a non-negative number with two decimals. */
export function formatLoad(load: number): string {
  return (Number.isFinite(load) && load > 0 ? load : 0).toFixed(2);
}

export function loadEdits(readings: Reading[], current: RecordFields[], threshold: number): Edit[] {
  const edits: Edit[] = [];
  for (const r of readings) {
    const before = current.find((rec) => rec[0] === r.realServer);
    // An unreachable host keeps its last figures: they are the best guess of what runs there.
    // A host in maintenance stays so (an operator's decision, lib/ops/maintenance.ts) whatever
    // the reading says; its figures are still kept current.
    const resting = before?.[3] === 'maintenance';
    const record: RecordFields = r.ok
      ? [r.realServer, formatLoad(r.load), String(Math.max(0, Math.floor(r.vmCount))), resting ? 'maintenance' : 'up']
      : [r.realServer, before?.[1] ?? formatLoad(0), before?.[2] ?? '0', resting ? 'maintenance' : 'down'];
    if (!before) {
      edits.push({ file: 'realserver', op: 'Add', record });
      continue;
    }
    const changed =
      before[3] !== record[3] || before[2] !== record[2] || Math.abs(Number(before[1]) - Number(record[1])) >= threshold;
    if (changed) edits.push({ file: 'realserver', op: 'Mod', record, before: before.slice(0, 4) });
  }
  return edits;
}

export interface RoundResult {
  readings: Reading[];
  edits: Edit[];
  errors: string[];
}

/** Read one real server: load per CPU and active VM count; any failure is a `down` reading. */
export async function readRealServer(rsName: string, driver: VirshDriver | undefined, failure?: string): Promise<Reading> {
  if (!driver) return { realServer: rsName, ok: false, error: failure ?? 'not configured' };
  try {
    const [load, vmCount] = await Promise.all([driver.hostLoad(), driver.activeCount()]);
    return { realServer: rsName, ok: true, load: load.perCpu, vmCount };
  } catch (e) {
    return { realServer: rsName, ok: false, error: (e as Error).message };
  }
}

