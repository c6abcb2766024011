// The p2p-real-server config nodes of this runtime, by real server name: the recovery nodes reach
// whichever host the files name (the failed server's, the chosen OD's), not one fixed host.
import type { PlanDriver } from '../../lib/recovery/backup-plan';
import type { CloneDriver } from '../../lib/recovery/od-replication';
import type { RED } from './node-red';

export type RecoveryDriver = PlanDriver & CloneDriver;

interface RealServerNode {
  rsName?: string;
  driver?: RecoveryDriver;
}

/** Every configured real server's driver, by its name. */
export function realServerDrivers(red: RED): Map<string, RecoveryDriver> {
  const out = new Map<string, RecoveryDriver>();
  const nodes = red.nodes as unknown as { eachNode(f: (n: { id: string; type: string }) => void): void; getNode(id: string): unknown };
  nodes.eachNode((n) => {
    if (n.type !== 'p2p-real-server') return;
    const rs = nodes.getNode(n.id) as RealServerNode | null;
    if (rs?.rsName && rs.driver) out.set(rs.rsName, rs.driver);
  });
  return out;
}

/** Seconds from an editor field, within bounds, or the default. */
export function seconds(v: unknown, def: number, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n)) return def * 1000;
  return Math.min(max, Math.max(min, n)) * 1000;
}
