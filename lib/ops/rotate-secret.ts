// `p2p-ha rotate-secret`: one VM's step of a cluster-secret rotation without a partition
// (docs/operations.md, "Rotate the cluster secret"): its p2p-store gets the new secret, the old one
// as "previous secret" and the common end of the window, deployed through that VM's own admin API
// (what the editor's deploy does, with the operator's token; the secrets go only to the URL the
// operator names, never to an address read from a replicated file). Pure: the flow change only;
// the command line does the HTTP.
import { STRONG_SECRET_CHARS } from '../sem/replicated-store';

export class RotateError extends Error {}

export interface FlowNodeLike {
  id: string;
  type: string;
  [k: string]: unknown;
}

export interface Rotation {
  secret: string;
  previous: string;
  /** End of the window (ms since the epoch), the same on every VM. */
  until: number;
  /** The store node's id, when the flow holds more than one. */
  storeId?: string;
}

/** The flows with the store rotated: the one store node changed, every other node as it was. */
export function rotatedFlows(flows: FlowNodeLike[], r: Rotation, now: number): { flows: FlowNodeLike[]; store: FlowNodeLike } {
  if (r.secret.length < STRONG_SECRET_CHARS) throw new RotateError(`the new secret is shorter than ${STRONG_SECRET_CHARS} characters (128 bits): generate one (openssl rand -base64 32)`);
  if (r.secret === r.previous) throw new RotateError('the new secret is the previous one');
  if (!r.previous) throw new RotateError('the previous secret is empty: the VMs not changed yet would be cut off');
  if (!Number.isFinite(r.until) || r.until <= now) throw new RotateError('the end of the window is not in the future');
  const stores = flows.filter((n) => n.type === 'p2p-store' && (r.storeId === undefined || n.id === r.storeId));
  if (stores.length !== 1) {
    throw new RotateError(
      r.storeId !== undefined ? `no p2p-store ${JSON.stringify(r.storeId)} in this VM's flows` : `this VM's flows hold ${stores.length} p2p-store nodes: name one with --store ID`,
    );
  }
  const store = { ...stores[0], previousUntil: new Date(r.until).toISOString(), credentials: { secret: r.secret, previousSecret: r.previous } };
  return { flows: flows.map((n) => (n === stores[0] ? store : n)), store };
}

/** `1h`, `30m`, `90s` from now, or an ISO time. */
export function parseWindowEnd(text: string, now: number): number {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (m) return now + Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  const t = /^\d{4}-\d\d-\d\dT/.test(text.trim()) ? Date.parse(text.trim()) : NaN;
  if (!Number.isFinite(t)) throw new RotateError(`--until ${JSON.stringify(text)}: expected an ISO time (2026-12-03T12:00:00Z) or a duration from now (1h, 30m)`);
  return t;
}
