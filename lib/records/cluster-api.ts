// The one API that every node (heartbeat, placer, backup starter, load collector, replicator)
// uses to read and edit the replicated management files. Implemented by ReplicatedStore
// (lib/replicated-store.ts); the p2p-store config node owns one instance per Node-RED runtime.
import type { EventEmitter } from 'events';
import type { FileName, RecordFields } from './files';

export type EditOp = 'Add' | 'Del' | 'Mod';

/** An edit as a user or node asks for it. `before` only for Mod. */
export interface Edit {
  file: FileName;
  op: EditOp;
  record: RecordFields;
  before?: RecordFields;
}

/** This VM as the group file knows it. */
export interface Identity {
  hostname: string;
  address: string;
  realServer: string;
  /** Space-separated service checks, or '' / '-' for none. */
  services: string;
}

export interface PeerAck {
  peer: string;
  address: string;
  ms: number;
}
export interface PeerFailure {
  peer: string;
  address: string;
  error: string;
}

export interface EditResult {
  /** The diff in the note's Diff.dat form, e.g. `group, Del, S2, 127.0.1.2, RS1, tcp:80`. */
  line: string;
  origin: string;
  seq: number;
  lamport: number;
  /** Peers that durably applied the diff, with the time from send to acknowledgement. */
  acked: PeerAck[];
  /** Peers that did not acknowledge; anti-entropy will bring them up to date later. */
  failed: PeerFailure[];
  /** Total time of the edit (local durable apply + fan-out), ms. */
  ms: number;
}

/** Emitted as 'change' after a diff (local or remote) is durably applied and changed something. */
export interface ChangeEvent {
  file: FileName;
  op: EditOp;
  record: RecordFields;
  before?: RecordFields;
  line: string;
  origin: string;
  seq: number;
  lamport: number;
  /** true when this runtime made the edit; false when it came from a peer (diff or catch-up). */
  local: boolean;
  /** 'diff' for a live diff, 'sync' for a change learned from a peer's snapshot (catch-up). */
  via: 'edit' | 'diff' | 'sync';
}

/** Emitted as 'refused' when a diff or sync message from the network is refused. */
export interface RefusalEvent {
  from: string;
  reason: string;
  at: number;
  /** Set on a summary of refusals not reported one by one (a flood): how many it stands for. */
  count?: number;
}

/** The result of several edits made as one (ClusterFiles.editBatch): one diff, one sequence number. */
export interface BatchResult extends Omit<EditResult, 'line'> {
  /** Each edit's diff line, in order. */
  lines: string[];
  /** The Lamport time of the first record; the next ones follow it by one each. */
  lamport: number;
}

export interface ClusterFiles extends EventEmitter {
  readonly identity: Identity;
  /** The records of one file, in file order (operation: derived from group). */
  records(file: FileName): RecordFields[];
  /** The record with this key (first field), if any. */
  get(file: FileName, key: string): RecordFields | undefined;
  /** Apply an edit locally (durably) and send it to every peer of the group file. */
  edit(edit: Edit | string): Promise<EditResult>;
  /**
   * Apply several edits as one: refused whole if one is (nothing changed), applied locally and by
   * every peer all or nothing, sent as one diff. Each record at most once per batch.
   */
  editBatch(edits: (Edit | string)[]): Promise<BatchResult>;
  /** Group members other than this VM. */
  peers(): { hostname: string; address: string }[];
  /** The port every peer's SEM endpoint listens on (also answers GET /p2p/ping). */
  readonly port: number;
  /**
   * Seal, MAC and sign an admin call to another VM's runtime with this VM's key (lib/sem/
   * admin-call.ts): how a manager gives a backup its role without a bearer token. Absent on
   * stand-ins that cannot sign.
   */
  sealAdminCall?(path: string, to: AdminCallTarget, payload: unknown): SealedAdminCall;
}

/** Whom an admin call is for: the address it is sent to and, when the caller knows it, the hostname
 * the receiving VM has now. Both are inside the signed bytes. */
export interface AdminCallTarget {
  address: string;
  hostname?: string;
}

/** An admin call ready to send: its body (sealed) and headers (MAC, VM signature). */
export interface SealedAdminCall {
  body: string;
  headers: Record<string, string>;
}

/**
 * Isolation safety (DESIGN.md "Recovery" 1): when the fence of a target cannot reach its real
 * server, a recovery may go ahead only if this side reaches a strict majority of the group AND the
 * target has been unseen longer than the time after which an isolated VM stops serving by itself
 * (T_iso plus a margin). Implemented by the monitor layer (it knows who was seen when), injected
 * into the recovery layer by the nodes; recovery never decides this by itself.
 */
export interface IsolationGate {
  check(target: string, now: number): IsolationVerdict;
}

export type IsolationVerdict =
  | { ok: true; detail: string }
  /** `retryAfterMs`: when asking again may give another answer (e.g. T_iso not yet elapsed). */
  | { ok: false; why: string; retryAfterMs?: number };
