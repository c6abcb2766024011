// How a resumed OD takes the failed server's role (the design decision of the recovery issue).
//
// An OD is a clone of the ODS, whose Node-RED flow already holds every node of the package (the
// ODS is the template every VM is made from). In an OD the flow's p2p-store runs under the OD's
// own identity with autoJoin off: it is no member and watches nobody. Taking the role S2b is a
// deployment of that same flow with the store's identity changed: hostname S2b, the target's
// services, the OD's real server, autoJoin still off (the manager's group Add makes it a member). The backup starter does it through the OD's
// Node-RED admin API (GET /flows, change the one p2p-store node, POST /flows), authenticated by
// the admin bearer token held in the starter's credentials when the OD's editor is secured. So:
//   - it is persisted (flows.json): a restarted S2b is still S2b;
//   - it uses nothing beyond Node-RED itself (no extra listener on the OD);
//   - the address is the OD's and stays so (the group record S2b carries it).
// The installation procedure installs the service configuration; the role step makes the manager
// in the VM a member.
import * as http from 'http';
import { readBounded } from '../net/bounded-body';
import { ADDRESS_RE, NAME_RE } from '../records/files';
import { errorText } from '../records/hv-outcome';
import type { Role } from './backup-plan';

export interface FlowNodeLike {
  id: string;
  type: string;
  [k: string]: unknown;
}

export class RoleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoleError';
  }
}

/** What a VM's p2p-store is told to be: a member (the role S2b) or an OD (not a member). */
export interface StoreIdentity {
  hostname: string;
  address: string;
  realServer: string;
  services: string;
  autoJoin: boolean;
  /** Peers to catch up from at start (space-separated addresses); unchanged when undefined. */
  seeds?: string;
}

function checkIdentity(id: StoreIdentity): void {
  if (!NAME_RE.test(id.hostname)) throw new RoleError(`hostname ${JSON.stringify(id.hostname)} is not a valid hostname`);
  if (!ADDRESS_RE.test(id.address)) throw new RoleError(`address ${JSON.stringify(id.address)} is not valid`);
  if (!NAME_RE.test(id.realServer)) throw new RoleError(`real server ${JSON.stringify(id.realServer)} is not valid`);
  if (id.seeds !== undefined && !id.seeds.split(/\s+/).filter(Boolean).every((a) => ADDRESS_RE.test(a))) {
    throw new RoleError(`seeds ${JSON.stringify(id.seeds)} are not addresses`);
  }
}

/** The identity a backup's store takes for a role. */
export function roleIdentity(role: Role, seeds?: string): StoreIdentity {
  // autoJoin off: the manager's group Add makes it a member once the whole recovery succeeded.
  return { hostname: role.backup, address: role.address, realServer: role.realServer, services: role.services, autoJoin: false, seeds };
}

/** The VM's flows with its one p2p-store given this identity. Other nodes are kept as they are. */
export function flowsWithIdentity(flows: FlowNodeLike[], id: StoreIdentity): FlowNodeLike[] {
  checkIdentity(id);
  if (!Array.isArray(flows)) throw new RoleError('the VM did not return a flow list');
  const stores = flows.filter((n) => n && n.type === 'p2p-store');
  if (stores.length !== 1) throw new RoleError(`the VM's flow must hold exactly one p2p-store, it holds ${stores.length}`);
  const { seeds, ...rest } = id;
  return flows.map((n) => (n.type === 'p2p-store' ? { ...n, ...rest, ...(seeds !== undefined ? { seeds } : {}) } : n));
}

/**
 * Does the VM's one p2p-store already hold this identity? Seeds are not compared: they only say
 * where a store catches up at its start, and a VM that runs as the backup has started.
 */
export function hasIdentity(flows: FlowNodeLike[], id: StoreIdentity): boolean {
  const store = flows.find((n) => n && n.type === 'p2p-store');
  if (!store) return false;
  const same = (k: keyof StoreIdentity) => store[k] === id[k];
  return same('hostname') && same('address') && same('realServer') && same('services') && same('autoJoin');
}

/** The OD's flows with its one p2p-store taking the role. */
export function flowsWithRole(flows: FlowNodeLike[], role: Role, seeds?: string): FlowNodeLike[] {
  return flowsWithIdentity(flows, roleIdentity(role, seeds));
}

export interface AdminApiOptions {
  /** Deployment type: `nodes` restarts only the store and the nodes that use it (default), `full` everything. */
  deploymentType?: 'nodes' | 'full';
  /** http://address:port of the OD's Node-RED (httpAdminRoot included if not /). */
  url: string;
  /** Bearer token for a secured admin API. */
  token?: string;
  timeoutMs?: number;
  /** Cap of an answer read from the VM (its flows): it is read before anything vouches for it. */
  maxAnswerBytes?: number;
}

/** Default cap of an admin API answer: a VM's whole flow list. */
export const MAX_FLOWS_BYTES = 16 * 1024 * 1024;
/** Cap of a ping's answer. */
const MAX_PING_BYTES = 4 * 1024;

function request(method: string, url: string, body: string | undefined, o: AdminApiOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'Node-RED-API-Version': 'v2', Accept: 'application/json' };
    if (o.token) headers.Authorization = `Bearer ${o.token}`;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
      headers['Node-RED-Deployment-Type'] = o.deploymentType ?? 'nodes';
    }
    const timeoutMs = o.timeoutMs ?? 5000;
    const req = http.request(url, { method, headers, timeout: timeoutMs }, (res) => {
      const declared = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
      readBounded(res, { limit: o.maxAnswerBytes ?? MAX_FLOWS_BYTES, timeoutMs, declared }).then(
        (buf) => resolve({ status: res.statusCode ?? 0, body: buf.toString('utf8') }),
        (e: Error) => {
          req.destroy();
          reject(new RoleError(`${method} ${url}: answer refused: ${e.message}`));
        },
      );
    });
    req.on('timeout', () => req.destroy(new RoleError(`${method} ${url}: no answer in ${o.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Give the OD at `o.url` the role: read its flows, change its store, deploy. With `semPort`, wait
 * until the backup's store answers GET /p2p/ping as the backup (so the edits that follow reach it
 * as a diff at once instead of at the next digest exchange, and the role is known to be taken).
 */
export async function assignRoleViaAdminApi(role: Role, o: AdminApiOptions & { seeds?: string; semPort?: number; readyTimeoutMs?: number }): Promise<void> {
  await deployIdentityViaAdminApi(roleIdentity(role, o.seeds), { ...o, readyTimeoutMs: 0 });
  if (o.semPort === undefined) return;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 5000);
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const r = await request('GET', `http://${role.address}:${o.semPort}/p2p/ping`, undefined, { ...o, timeoutMs: 1000, maxAnswerBytes: MAX_PING_BYTES });
      const hostname = r.status === 200 ? (JSON.parse(r.body) as { hostname?: string }).hostname : undefined;
      if (hostname === role.backup) return;
      last = `answers as ${hostname ?? `HTTP ${r.status}`}`;
    } catch (e) {
      last = errorText(e);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new RoleError(`${role.address} did not become ${role.backup} in time (${last})`);
}

/**
 * Read the VM's flows (waiting up to `readyTimeoutMs` for its admin API to answer, for a VM just
 * started), change its store's identity, deploy.
 */
export async function deployIdentityViaAdminApi(id: StoreIdentity, o: AdminApiOptions & { readyTimeoutMs?: number }): Promise<void> {
  if (!/^http:\/\/[^/\s]+(\/[^\s]*)?$/.test(o.url)) throw new RoleError(`admin URL ${JSON.stringify(o.url)} is not http://host:port`);
  const base = o.url.replace(/\/+$/, '');
  const deadline = Date.now() + (o.readyTimeoutMs ?? 0);
  let got: { status: number; body: string };
  for (;;) {
    try {
      got = await request('GET', `${base}/flows`, undefined, o);
      break;
    } catch (e) {
      // Not up yet (connection refused): a VM just started is still booting.
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (got.status !== 200) throw new RoleError(`GET ${base}/flows answered ${got.status}`);
  let parsed: { rev?: string; flows?: FlowNodeLike[] };
  try {
    parsed = JSON.parse(got.body);
  } catch {
    throw new RoleError(`GET ${base}/flows did not answer JSON`);
  }
  const flows = flowsWithIdentity(parsed.flows ?? [], id);
  // A VM that already has this identity (a recovery taken over after its role step) is left as
  // it is: deploying again would restart its store for nothing.
  if (hasIdentity(parsed.flows ?? [], id)) return;
  const put = await request('POST', `${base}/flows`, JSON.stringify({ rev: parsed.rev, flows }), o);
  if (put.status !== 200 && put.status !== 204) throw new RoleError(`POST ${base}/flows answered ${put.status}: ${put.body.slice(0, 200)}`);
}
