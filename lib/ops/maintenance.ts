// Maintenance mode (issue 15): a VM or a real server taken out of the failover machinery on
// purpose, before a planned reboot, as a replicated state every manager reads.
//
//   VM           group record `state` = maintenance: its managers stop watching it (no verdict,
//                no fence, no backup); leaving sets `member` and the heartbeat watches it afresh.
//   real server  realserver record `state` = maintenance: the placer puts nothing on it (only `up`
//                hosts are eligible) and the load collector keeps the state while it updates the
//                figures; leaving sets `up` (the collector writes `down` at its next round if the
//                host does not answer).
//
// One request shape for the three ways in (a msg to p2p-maintenance, the admin endpoint, the
// command line); bad input is refused with a clear error and nothing is changed. Pure apart from
// the one edit through ClusterFiles; no Node-RED here.
import type { ClusterFiles, Edit } from '../records/cluster-api';
import { NAME_RE } from '../records/files';
import { fromMember, fromRealServer, toMember } from '../records/records';

export type MaintenanceKind = 'vm' | 'realserver';

export interface MaintenanceRequest {
  kind: MaintenanceKind;
  name: string;
  on: boolean;
}

export class MaintenanceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaintenanceError';
  }
}

/**
 * Read a request: `{ vm: 'S2', on: true }`, `{ realServer: 'RS1', on: false }`, or the explicit
 * `{ kind: 'vm' | 'realserver', name, on }`. `on` may also be 'on'/'off'.
 */
export function parseMaintenanceRequest(v: unknown): MaintenanceRequest {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new MaintenanceError('a maintenance request is an object: { vm: NAME, on: true|false } or { realServer: NAME, on: true|false }');
  }
  const o = v as Record<string, unknown>;
  let kind: MaintenanceKind;
  let name: unknown;
  if (o.kind !== undefined) {
    if (o.kind !== 'vm' && o.kind !== 'realserver') throw new MaintenanceError(`kind must be vm or realserver, not ${JSON.stringify(o.kind)}`);
    kind = o.kind;
    name = o.name;
  } else if (o.vm !== undefined && o.realServer === undefined) {
    kind = 'vm';
    name = o.vm;
  } else if (o.realServer !== undefined && o.vm === undefined) {
    kind = 'realserver';
    name = o.realServer;
  } else {
    throw new MaintenanceError('name exactly one of vm or realServer');
  }
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new MaintenanceError(`${kind} name ${JSON.stringify(name)} is not a name of letters, digits, . _ -`);
  let on: boolean;
  if (o.on === true || o.on === 'on') on = true;
  else if (o.on === false || o.on === 'off') on = false;
  else throw new MaintenanceError(`on must be true or false (or "on"/"off"), not ${JSON.stringify(o.on)}`);
  return { kind, name, on };
}

/** The edit that puts the request into the files, or undefined when they already say so. */
export function maintenanceEdit(files: Pick<ClusterFiles, 'get'>, req: MaintenanceRequest): Edit | undefined {
  if (req.kind === 'vm') {
    const before = files.get('group', req.name);
    if (!before) throw new MaintenanceError(`${req.name} is not in the group file`);
    const m = fromMember(before);
    if (m.state === 'fenced') throw new MaintenanceError(`${req.name} is fenced: it cannot enter or leave maintenance`);
    const state = req.on ? 'maintenance' : 'member';
    if (m.state === state) return undefined;
    return { file: 'group', op: 'Mod', before, record: toMember({ ...m, state }) };
  }
  const before = files.get('realserver', req.name);
  if (!before) throw new MaintenanceError(`${req.name} is not in the realserver file`);
  const rs = fromRealServer(before);
  if (req.on ? rs.state === 'maintenance' : rs.state !== 'maintenance') return undefined;
  const record = before.slice();
  record[3] = req.on ? 'maintenance' : 'up';
  return { file: 'realserver', op: 'Mod', before, record };
}

export interface MaintenanceResult extends MaintenanceRequest {
  /** false when the files already said so (nothing was sent). */
  changed: boolean;
  /** The Diff.dat line of the edit, when one was made. */
  line?: string;
}

/** Apply a request: one edit through SEM (applied locally, then sent to every peer). */
export async function setMaintenance(files: Pick<ClusterFiles, 'get' | 'edit'>, input: unknown): Promise<MaintenanceResult> {
  const req = parseMaintenanceRequest(input);
  const edit = maintenanceEdit(files, req);
  if (!edit) return { ...req, changed: false };
  const r = await files.edit(edit);
  return { ...req, changed: true, line: r.line };
}

export interface MaintenanceView {
  vms: string[];
  realServers: string[];
}

/** Who is in maintenance now, by the files. */
export function inMaintenance(files: Pick<ClusterFiles, 'records'>): MaintenanceView {
  return {
    vms: files
      .records('group')
      .map(fromMember)
      .filter((m) => m.state === 'maintenance')
      .map((m) => m.hostname),
    realServers: files
      .records('realserver')
      .filter((r) => r[3] === 'maintenance')
      .map((r) => r[0]),
  };
}

