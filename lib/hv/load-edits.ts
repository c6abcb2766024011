// What the load collector writes to the realserver file: from one round of readings (one per real
// server) and the file's current records, the edits to make. Only a change that matters becomes
// an edit (a new real server, a state change up/down, a different VM count, or a load that moved
// by at least the threshold), so the SEM diff stream stays quiet on a steady cluster. Pure.
import type { Edit } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import { fromRealServer, toRealServer } from '../records/records';
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
    const beforeFields = current.find((rec) => fromRealServer(rec).realServer === r.realServer);
    const before = beforeFields ? fromRealServer(beforeFields) : undefined;
    // An unreachable host keeps its last figures: they are the best guess of what runs there.
    const record = toRealServer(
      r.ok
        ? { realServer: r.realServer, load: r.load, vmCount: r.vmCount, state: 'up' }
        : { realServer: r.realServer, load: before?.load ?? 0, vmCount: before?.vmCount ?? 0, state: 'down' },
    );
    if (!beforeFields || !before) {
      edits.push({ file: 'realserver', op: 'Add', record });
      continue;
    }
    const next = fromRealServer(record);
    const changed = before.state !== next.state || before.vmCount !== next.vmCount || Math.abs(before.load - next.load) >= threshold;
    if (changed) edits.push({ file: 'realserver', op: 'Mod', record, before: beforeFields.slice(0, 4) });
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

