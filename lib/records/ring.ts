// The operation file is derived from the group file on every change (DESIGN.md): members in
// natural hostname order form a ring; target i is watched by i-1 as P1 and by i+1 as P2. Two
// members watch each other as P1; one member watches nobody. A fenced member (replaced after a
// failure, see the group record's state) is out of the ring: it neither watches nor is watched.
import type { RecordFields } from './files';
import { naturalCompare } from './natural-sort';
import { fromMember, isServing } from './records';

export type Priority = 'P1' | 'P2';
export interface Watch {
  priority: Priority;
  manager: string;
  target: string;
}

export function ringOrder(hostnames: string[]): string[] {
  return Array.from(new Set(hostnames)).sort(naturalCompare);
}

export function deriveOperation(group: RecordFields[]): Watch[] {
  const hosts = ringOrder(group.map(fromMember).filter(isServing).map((m) => m.hostname));
  const n = hosts.length;
  if (n < 2) return [];
  if (n === 2) {
    return [
      { priority: 'P1', manager: hosts[1], target: hosts[0] },
      { priority: 'P1', manager: hosts[0], target: hosts[1] },
    ];
  }
  const out: Watch[] = [];
  hosts.forEach((target, i) => {
    out.push({ priority: 'P1', manager: hosts[(i - 1 + n) % n], target });
    out.push({ priority: 'P2', manager: hosts[(i + 1) % n], target });
  });
  return out;
}

export function operationRecords(group: RecordFields[]): RecordFields[] {
  return deriveOperation(group).map((w) => [w.priority, w.manager, w.target]);
}
