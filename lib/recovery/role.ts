// How a resumed OD takes the failed server's role (the design decision of the recovery issue).
//
// An OD is a clone of the ODS, whose Node-RED flow already holds every node of the package (the
// ODS is the template every VM is made from). In an OD the flow's p2p-store runs under the OD's
// own identity with autoJoin off: it is no member and watches nobody. Taking the role S2b is a
// deployment of that same flow with the store's identity changed: hostname S2b, the target's
// services, the OD's real server, autoJoin on. The backup starter does it through the OD's
// Node-RED admin API (GET /flows, change the one p2p-store node, POST /flows), authenticated by
// the admin bearer token held in the starter's credentials when the OD's editor is secured. So:
//   - it is persisted (flows.json): a restarted S2b is still S2b;
//   - it uses nothing beyond Node-RED itself (no extra listener on the OD);
//   - the address is the OD's and stays so (the group record S2b carries it).
// The installation procedure installs the service configuration; the role step makes the manager
// in the VM a member.
import * as http from 'http';
import { ADDRESS_RE, NAME_RE } from '../files';
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

function checkRole(role: Role): void {
  if (!NAME_RE.test(role.backup)) throw new RoleError(`backup name ${JSON.stringify(role.backup)} is not a valid hostname`);
  if (!ADDRESS_RE.test(role.address)) throw new RoleError(`address ${JSON.stringify(role.address)} is not valid`);
  if (!NAME_RE.test(role.realServer)) throw new RoleError(`real server ${JSON.stringify(role.realServer)} is not valid`);
}

/** The OD's flows with its one p2p-store taking the role. Other nodes are kept as they are. */
export function flowsWithRole(flows: FlowNodeLike[], role: Role): FlowNodeLike[] {
  checkRole(role);
  if (!Array.isArray(flows)) throw new RoleError('the OD did not return a flow list');
  const stores = flows.filter((n) => n && n.type === 'p2p-store');
  if (stores.length !== 1) throw new RoleError(`the OD's flow must hold exactly one p2p-store, it holds ${stores.length}`);
  return flows.map((n) =>
    n.type === 'p2p-store'
      ? { ...n, hostname: role.backup, address: role.address, realServer: role.realServer, services: role.services, autoJoin: true }
      : n,
  );
}

export interface AdminApiOptions {
  /** http://address:port of the OD's Node-RED (httpAdminRoot included if not /). */
  url: string;
  /** Bearer token for a secured admin API. */
  token?: string;
  timeoutMs?: number;
}

function request(method: string, url: string, body: string | undefined, o: AdminApiOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'Node-RED-API-Version': 'v2', Accept: 'application/json' };
    if (o.token) headers.Authorization = `Bearer ${o.token}`;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
      headers['Node-RED-Deployment-Type'] = 'full';
    }
    const req = http.request(url, { method, headers, timeout: o.timeoutMs ?? 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new RoleError(`${method} ${url}: no answer in ${o.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Give the OD at `o.url` the role: read its flows, change its store, deploy. */
export async function assignRoleViaAdminApi(role: Role, o: AdminApiOptions): Promise<void> {
  if (!/^http:\/\/[^/\s]+(\/[^\s]*)?$/.test(o.url)) throw new RoleError(`admin URL ${JSON.stringify(o.url)} is not http://host:port`);
  const base = o.url.replace(/\/+$/, '');
  const got = await request('GET', `${base}/flows`, undefined, o);
  if (got.status !== 200) throw new RoleError(`GET ${base}/flows answered ${got.status}`);
  let parsed: { rev?: string; flows?: FlowNodeLike[] };
  try {
    parsed = JSON.parse(got.body);
  } catch {
    throw new RoleError(`GET ${base}/flows did not answer JSON`);
  }
  const flows = flowsWithRole(parsed.flows ?? [], role);
  const put = await request('POST', `${base}/flows`, JSON.stringify({ rev: parsed.rev, flows }), o);
  if (put.status !== 200 && put.status !== 204) throw new RoleError(`POST ${base}/flows answered ${put.status}: ${put.body.slice(0, 200)}`);
}
