// How a resumed OD takes the failed server's role (the design decision of the recovery issue).
//
// An OD is a clone of the ODS, whose Node-RED flow already holds every node of the package (the
// ODS is the template every VM is made from). In an OD the flow's p2p-store runs under the OD's
// own identity with autoJoin off: it is no member and watches nobody. Taking the role S2b gives
// that store the backup's identity: hostname S2b, the target's services, the OD's real server,
// autoJoin still off (the manager's group Add makes it a member).
// The backup starter asks for it with one call to the OD's Node-RED (POST /p2p-ha/role), sealed,
// MAC'd with the cluster secret and signed by the manager's VM key (lib/sem/admin-call.ts), with
// the OD's address and name inside the signed bytes; the OD checks it against its own copy of the
// group file (nodes/common/role-endpoint.ts), switches its running store to the identity in place
// (ReplicatedStore.switchIdentity: one step, no restart), makes it durable in the store folder's
// role file (./role-file.ts) and answers; then it deploys its flow with the store changed through
// the runtime's flows API, the running store handed to the store node's next instance
// (nodes/common/store-handover.ts). No bearer token or other secret goes to the address that
// available-od supplies (docs/security.md, "The admin path"). So:
//   - it is persisted (the role file, then flows.json): a restarted S2b is still S2b;
//   - it uses nothing beyond Node-RED itself (no extra listener on the OD);
//   - the address is the OD's and stays so (the group record S2b carries it; the OD refuses an
//     identity with another address).
// The installation procedure installs the service configuration; the role step makes the manager
// in the VM a member.
import * as http from 'http';
import { readBounded } from '../net/bounded-body';
import { ADDRESS_RE, NAME_RE, validateRecord } from '../records/files';
import { errorText } from '../records/hv-outcome';
import type { Role } from './backup-plan';
import type { ClusterFiles } from '../records/cluster-api';

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

/** The route of a runtime that takes an identity from a signed call (nodes/common/role-endpoint.ts). */
export const ROLE_PATH = '/p2p-ha/role';

/** What signs a call: this VM's store (lib/sem/admin-call.ts through ClusterFiles). */
export type RoleCallSigner = Pick<ClusterFiles, 'sealAdminCall'>;

export interface RoleCallOptions {
  /** http://address:port of the VM's Node-RED (httpAdminRoot included if not /). */
  url: string;
  /** Signs the call with this VM's key; no bearer token is sent anywhere. */
  signer: RoleCallSigner;
  /** The hostname the called VM has now, when the caller knows it (an OD's name from available-od):
   * bound into the signed call with the address, so the call is good for that VM only. */
  toHostname?: string;
  timeoutMs?: number;
  /** Cap of an answer read from the VM: it is read before anything vouches for it. */
  maxAnswerBytes?: number;
}

/** Cap of an answer to a role call (a short status). */
const MAX_ANSWER_BYTES = 16 * 1024;
/** Cap of a ping's answer. */
const MAX_PING_BYTES = 4 * 1024;

function request(method: string, url: string, body: string | undefined, headers: Record<string, string>, o: { timeoutMs?: number; maxAnswerBytes?: number }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Length'] = String(Buffer.byteLength(body));
    const timeoutMs = o.timeoutMs ?? 5000;
    const req = http.request(url, { method, headers: h, timeout: timeoutMs }, (res) => {
      const declared = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
      readBounded(res, { limit: o.maxAnswerBytes ?? MAX_ANSWER_BYTES, timeoutMs, declared }).then(
        (buf) => resolve({ status: res.statusCode ?? 0, body: buf.toString('utf8') }),
        (e: Error) => {
          req.destroy();
          reject(new RoleError(`${method} ${url}: answer refused: ${e.message}`));
        },
      );
    });
    req.on('timeout', () => req.destroy(new RoleError(`${method} ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The hostname a VM's SEM endpoint answers GET /p2p/ping with, or undefined (no answer in 1 s). */
async function pingName(address: string, semPort: number): Promise<string | undefined> {
  try {
    const r = await request('GET', `http://${address}:${semPort}/p2p/ping`, undefined, {}, { timeoutMs: 1000, maxAnswerBytes: MAX_PING_BYTES });
    return r.status === 200 ? (JSON.parse(r.body) as { hostname?: string }).hostname : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Give the OD at `o.url` the role: a signed call to take the backup's identity. With `semPort`,
 * make sure the backup's store listens as the backup before returning (so the edits that follow
 * reach it as a diff at once instead of at the next digest exchange, and the role is known to be
 * taken): the OD's answer says so (`listening`, role-endpoint.ts); when it does not (it waited in
 * vain, or an older version), GET /p2p/ping is asked until it answers as the backup.
 */
export async function assignRole(role: Role, o: RoleCallOptions & { seeds?: string; semPort?: number; readyTimeoutMs?: number }): Promise<void> {
  let answer: RoleAnswer;
  try {
    answer = await deployIdentity(roleIdentity(role, o.seeds), { ...o, toHostname: o.toHostname ?? role.od, readyTimeoutMs: 0 });
  } catch (e) {
    // A recovery taken over after its role step (lib/recovery/takeover.ts) finds the OD already
    // answering as the backup: the call, bound to the OD's old name, is refused, and the role is
    // in place. Asked only after a refusal: the common case costs one request, not two.
    if (o.semPort !== undefined && (await pingName(role.address, o.semPort)) === role.backup) return;
    throw e;
  }
  // The OD answered once its store listened as the backup (role-endpoint.ts): nothing to wait for.
  if (o.semPort === undefined || (answer.listening === true && answer.hostname === role.backup)) return;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 5000);
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const r = await request('GET', `http://${role.address}:${o.semPort}/p2p/ping`, undefined, {}, { timeoutMs: 1000, maxAnswerBytes: MAX_PING_BYTES });
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

/** A VM's answer to a role call: the identity it took, and whether its store already listens
 * under it (false or absent: it did not within the VM's wait, or the VM is an older version). */
export interface RoleAnswer {
  hostname?: string;
  listening?: boolean;
}

/**
 * Tell the VM at `o.url` (waiting up to `readyTimeoutMs` for it to answer, for a VM just started)
 * to take this identity: one signed call to ROLE_PATH; the VM checks it and deploys its flow with
 * its store changed (flowsWithIdentity). The identity keeps the VM's address (the one called).
 */
export async function deployIdentity(id: StoreIdentity, o: RoleCallOptions & { readyTimeoutMs?: number }): Promise<RoleAnswer> {
  checkIdentity(id);
  const m = /^http:\/\/([^/\s:]+)(:\d{1,5})?(\/[^\s]*)?$/.exec(o.url);
  if (!m) throw new RoleError(`admin URL ${JSON.stringify(o.url)} is not http://host:port`);
  if (m[1] !== id.address) throw new RoleError(`admin URL ${o.url} is not at the identity's address ${id.address}`);
  const url = `${o.url.replace(/\/+$/, '')}${ROLE_PATH}`;
  const deadline = Date.now() + (o.readyTimeoutMs ?? 0);
  for (;;) {
    // Sealed anew each attempt: every call has a fresh time and nonce (the receiver refuses a nonce seen before).
    if (!o.signer.sealAdminCall) throw new RoleError('this VM\'s store cannot sign admin calls (no VM key)');
    const call = o.signer.sealAdminCall(ROLE_PATH, { address: id.address, ...(o.toHostname ? { hostname: o.toHostname } : {}) }, { identity: id });
    let got: { status: number; body: string };
    try {
      got = await request('POST', url, call.body, call.headers, o);
    } catch (e) {
      // Not up yet (connection refused): a VM just started is still booting.
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    // 404 before the package's nodes are loaded, 503 before its store exists: still booting.
    if ((got.status === 404 || got.status === 503) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    if (got.status !== 200) {
      let why = got.body.slice(0, 300);
      try {
        why = String((JSON.parse(got.body) as { error?: unknown }).error ?? why);
      } catch {
        // not JSON: the text as it is
      }
      throw new RoleError(`POST ${url} answered ${got.status}: ${why}`);
    }
    try {
      const a = JSON.parse(got.body) as RoleAnswer;
      return { hostname: typeof a?.hostname === 'string' ? a.hostname : undefined, listening: a?.listening === true };
    } catch {
      return {}; // a 200 whose body is not JSON: the identity was taken; readiness is asked separately
    }
  }
}

/** The identity a verified role call carries (the receiver's check of its payload). */
export function identityFromCall(payload: unknown, calledAt: string): StoreIdentity {
  const id = (payload as { identity?: StoreIdentity } | null)?.identity;
  if (!id || typeof id !== 'object') throw new RoleError('the call carries no identity');
  const clean: StoreIdentity = {
    hostname: String(id.hostname),
    address: String(id.address),
    realServer: String(id.realServer),
    services: typeof id.services === 'string' ? id.services : '-',
    autoJoin: id.autoJoin === true,
    ...(id.seeds !== undefined ? { seeds: String(id.seeds) } : {}),
  };
  checkIdentity(clean);
  try {
    validateRecord('group', [clean.hostname, clean.address, clean.realServer, clean.services]);
  } catch (e) {
    throw new RoleError(`services ${JSON.stringify(clean.services)} are not valid: ${(e as Error).message}`);
  }
  if (clean.address !== calledAt) throw new RoleError(`the identity's address ${clean.address} is not the address called (${calledAt}): a VM keeps its address`);
  return clean;
}
