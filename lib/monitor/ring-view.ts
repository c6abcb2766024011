// What this VM watches: from the group file (who exists, where, which services) and the operation
// file (who watches whom with which priority; derived from group by lib/ring.ts), the targets this
// manager watches, with its priority and the target's other manager. Pure.
import type { RecordFields } from '../records/files';

export type Priority = 'P1' | 'P2';

export interface Member {
  hostname: string;
  address: string;
  realServer: string;
  /** The service checks of the group record (`tcp:80`, `http:8080/health`), none for '' or '-'. */
  services: string[];
}

export interface Watch {
  target: Member;
  /** This manager's priority for the target. */
  priority: Priority;
  /** The target's P1 manager (this VM when priority is P1). */
  p1: string;
  /** The target's P2 manager, if the ring has one (not with two members). */
  p2?: string;
  /** The target's other manager, if any: the one that is not this VM. */
  other?: { hostname: string; priority: Priority };
}

export function parseServices(field: string): string[] {
  const v = field.trim();
  if (v === '' || v === '-') return [];
  return v.split(/\s+/);
}

export function memberOf(record: RecordFields): Member {
  return { hostname: record[0], address: record[1], realServer: record[2], services: parseServices(record[3] ?? '') };
}

/** The group file as members, keyed by hostname. */
export function membersByName(group: RecordFields[]): Map<string, Member> {
  const out = new Map<string, Member>();
  for (const r of group) out.set(r[0], memberOf(r));
  return out;
}

/** The P1 and P2 managers of one target according to the operation file. */
export function managersOf(target: string, operation: RecordFields[]): { P1?: string; P2?: string } {
  const out: { P1?: string; P2?: string } = {};
  for (const [priority, manager, t] of operation) {
    if (t !== target) continue;
    if (priority === 'P1' || priority === 'P2') out[priority] = manager;
  }
  return out;
}

/**
 * The targets `me` watches, sorted by target name. An operation line whose target or manager is
 * not in the group is ignored (a stale line can never make us watch a ghost).
 */
export function ringView(me: string, group: RecordFields[], operation: RecordFields[]): Watch[] {
  const members = membersByName(group);
  if (!members.has(me)) return [];
  const out: Watch[] = [];
  for (const [priority, manager, target] of operation) {
    if (manager !== me || target === me) continue;
    if (priority !== 'P1' && priority !== 'P2') continue;
    const member = members.get(target);
    if (!member) continue;
    const m = managersOf(target, operation);
    if (!m.P1 || !members.has(m.P1)) continue;
    const p2 = m.P2 && members.has(m.P2) ? m.P2 : undefined;
    const w: Watch = { target: member, priority, p1: m.P1, p2 };
    const otherName = priority === 'P1' ? p2 : m.P1;
    if (otherName && otherName !== me) w.other = { hostname: otherName, priority: priority === 'P1' ? 'P2' : 'P1' };
    out.push(w);
  }
  return out.sort((a, b) => a.target.hostname.localeCompare(b.target.hostname, 'en', { numeric: true }));
}
