// Starting a backup for a failed server (DESIGN.md "Recovery" 1-3): five named steps over one
// small state object (Plan), over injected parts (the files, a hypervisor driver per real server,
// the isolation gate, a clock), so every step and every outcome kind is unit-tested without a
// network. What runs at the same time, as it really runs:
//
//   time ->
//   fence   ==destroy + autostart off (host of the target)==>|
//             `-- place + resume an OD (host up only) ------>|   (parallel: 'fence')
//   confirm     (host not reached: >1 confirmer off that host |
//                AND the isolation gate; else wait, then fail)|
//                                                 mark fenced: group state fenced, host down
//   place+resume  (await the early resume; host not reached: keep it if the joint placement of
//                 every failure in hand uses its OD, else suspend it and place anew; or start now)
//   install+role  ==install procedure==>|                         (parallel: 'role' / 'install')
//                 ==role (admin API)===>|
//                 (the fence marks and problem `recovering` go as one batch)
//   commit        problem recovered, available-od Del, group Add backup (one batch)
//
//   any error -> problem `failed` with the step, the outcome kind and the reason; a resumed OD
//   is suspended again, and taken off available-od if the fence had succeeded (half made).
//
// Steps report as they happen (StepEvent, in time order); an event of a step that runs beside
// another carries `parallel` = that step. Decisions are made on outcome kinds
// (lib/records/hv-outcome.ts), never on the words of an error.
//
// fence    a fence counts only when the hypervisor said so: a destroy that succeeded, a domain
//          state of `shut off`, or `domain-absent`. Autostart is turned off with it, so the host's
//          reboot does not bring the fenced server back. Any other kind (program-missing,
//          permission-denied, failed...) fails the recovery: no second copy is started.
// confirm  only when the host was not reached (unreachable, timeout, no driver): the failure must
//          be confirmed by more than one manager not on the failed host, within confirmWindowMs
//          (confirmers()), AND the injected IsolationGate must say ok (this side holds a strict
//          majority and the target has been unseen longer than T_iso + margin; the monitor layer
//          decides, see docs/recovery.md). Without a gate: never.
// place    placement-decider.ts, with the failures in hand (the one decider; p2p-placer shows it).
// resume   `virsh resume` the OD. Its state on its host is the lock: if the resume fails and the
//          OD is running, another manager won it: exclude it and place again (up to maxOdAttempts).
// install  the target's installation procedure (install-procedure.ts); the next path is tried only
//          on `procedure-absent`.
// role     give the backup the failed server's role (an injected function; see role.ts).
// commit   problem recovered, available-od Del OD, group Add backup; applied locally in one turn and
//          sent to the peers as one batch (one diff, applied all or nothing by each receiver). The failed server stays in the group as
//          `fenced` (written at fence time): it is out of the ring, and it stays out if it boots.
//
// Safe to run again from where the records say a recovery is (a manager that takes over a stalled
// recovery, lib/recovery/takeover.ts, runs this same plan): the backup keeps the name the problem
// record gives it; a target the group already records `fenced` whose host is not reached counts as
// fenced (fence outcome `recorded`; a reachable host is fenced again, harmless: destroy of an off
// domain is `already-off`); the OD the problem record names (`od`, written before every resume) is
// continued with, not a second one: running, it is not resumed again; paused, it is resumed; gone
// from available-od or off, the plan places anew. The role step leaves a VM that already has the
// role as it is (role.ts), and the commit's edits are skipped when the files already say so.
import type { ClusterFiles, Edit, IsolationGate } from '../records/cluster-api';
import { recordKey, type RecordFields } from '../records/files';
import { errorText, HOST_NOT_REACHED, hvKind, type HvOutcomeKind } from '../records/hv-outcome';
import { naturalCompare } from '../records/natural-sort';
import { canTransition, HANDLING_STATUSES, isStatusIn } from '../records/problem';
import { fromMember, fromOd, fromProblem, fromRealServer, hostKeyLine, toMember, toProblem, toRealServer, type ProblemKind, type ProblemStatus } from '../records/records';
import { backupName, DEFAULT_PROCEDURE_DIR, procedurePaths, procedureVariables, ProcedureError } from './install-procedure';
import { Placement, PlacementError, type VmSize } from './placement';
import { decidePlacement, jointOds } from './placement-decider';

export type StepName = 'fence' | 'confirm' | 'place' | 'resume' | 'install' | 'role' | 'edits' | 'recovered' | 'failed';

export interface StepEvent {
  step: StepName;
  target: string;
  /** Time of this step, ms (0 for recovered/failed). */
  ms: number;
  /** Since the plan started, ms. */
  atMs: number;
  text: string;
  detail?: Record<string, unknown>;
  /** This step ran at the same time as that one (place/resume beside the fence, install beside role). */
  parallel?: StepName;
}

/** What the plan needs of a hypervisor driver (VirshDriver has all of it); failures carry an outcome kind. */
export interface PlanDriver {
  destroy(name: string): Promise<void>;
  /** `virsh autostart --disable`: a fenced server must not start again with its host. */
  autostartOff(name: string): Promise<void>;
  /** Put a resumed OD back to sleep when the fence failed. */
  suspend(name: string): Promise<void>;
  domstate(name: string): Promise<string>;
  resume(name: string): Promise<void>;
  /** `knownHostsKey`: the OD's recorded host key, pinned for the procedure (OD_KNOWN_HOSTS). */
  runFile(path: string, vars?: Record<string, string | number>, opts?: { knownHostsKey?: string }): Promise<{ stdout: string; stderr: string; code: number }>;
}

export interface Role {
  target: string;
  backup: string;
  address: string;
  realServer: string;
  services: string;
  od: string;
}

export type PlanFiles = Pick<ClusterFiles, 'records' | 'get' | 'edit' | 'editBatch' | 'identity'>;

export interface PlanDeps {
  files: PlanFiles;
  /** The driver of a real server by name, or undefined if this manager has none configured. */
  driver(realServer: string): PlanDriver | undefined;
  /** Make the resumed OD take the role (e.g. role.ts over the OD's admin API). Optional. */
  assignRole?(role: Role): Promise<void>;
  /** The isolation rule of the monitor layer; without it a host that cannot be reached is never fenced by confirmation. */
  isolation?: IsolationGate;
  /** Readiness of the resumed OD (e.g. its SSH banner, lib/hv/readiness.ts) before the install runs. */
  odReady?(p: Placement): Promise<void>;
  now?(): number;
  sleep?(ms: number): Promise<void>;
  onStep?(e: StepEvent): void;
  /** Stop between steps (node closing). */
  signal?: AbortSignal;
}

export interface FailureInput {
  target: string;
  address?: string;
  realServer?: string;
  kind?: string;
  detectedBy?: string;
  /** Managers known to have confirmed this failure besides the problem file (e.g. from a msg). */
  confirmations?: string[];
  /** The failed VM's size: a backup goes only where it fits (placement.ts). */
  need?: VmSize;
}

export interface PlanSettings {
  procedureDir: string;
  /** How long to wait for a second manager's confirmation when the host is unreachable. */
  confirmWaitMs: number;
  confirmPollMs: number;
  /** Problem records older than this (or without a time) do not count as confirmations. */
  confirmWindowMs: number;
  /** How long to keep asking the isolation gate when it says "not yet" (retryAfterMs). */
  isolationWaitMs: number;
  maxOdAttempts: number;
}

export const PLAN_DEFAULTS: PlanSettings = {
  procedureDir: DEFAULT_PROCEDURE_DIR,
  confirmWaitMs: 6000,
  confirmPollMs: 200,
  confirmWindowMs: 60000,
  isolationWaitMs: 30000,
  maxOdAttempts: 3,
};

/** How the fence was done. */
export type FenceOutcome = 'destroyed' | 'already-off' | 'domain-absent' | 'confirmed-unreachable' | 'recorded';

export interface RecoveryResult {
  target: string;
  backup: string;
  od: string;
  address: string;
  realServer: string;
  services: string;
  fence: FenceOutcome;
  placement: Placement;
  lostRaces: string[];
  timings: Record<'fence' | 'confirm' | 'place' | 'resume' | 'install' | 'role' | 'edits' | 'total', number>;
  edits: string[];
  steps: StepEvent[];
}

/**
 * Why a step stopped, as a kind a program can act on: a hypervisor outcome kind, or one of the
 * plan's own (`unconfirmed`: too few confirmers; `isolation`: the gate said no or there is none;
 * `no-placement`: nothing fits; `no-od`: every OD tried was lost).
 */
export type FailureKind = HvOutcomeKind | 'unconfirmed' | 'isolation' | 'no-placement' | 'no-od' | 'role' | 'aborted' | 'input';

/** An error raised inside a step, with its kind. */
class StepError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

export class RecoveryError extends Error {
  candidates?: unknown;
  constructor(
    message: string,
    readonly step: StepName,
    readonly steps: StepEvent[],
    readonly kind?: FailureKind,
  ) {
    super(message);
    this.name = 'RecoveryError';
  }
}

/** The kind of any error that stopped a step. */
function kindOf(e: unknown): FailureKind | undefined {
  if (e instanceof StepError) return e.kind;
  if (e instanceof PlacementError) return 'no-placement';
  return hvKind(e);
}

/** A driver outcome that says the host was not reached at all. */
export function isUnreachable(e: unknown): boolean {
  const k = hvKind(e);
  return k !== undefined && HOST_NOT_REACHED.includes(k);
}

/**
 * The managers that confirmed the failure of `target` or of another VM on the same real server
 * within the window: the detectedBy of their problem records (a record without a time does not
 * count), the failure's own detectedBy and any confirmations passed in. A real server failure
 * kills all its VMs, each watched by its own P1 manager, so two VMs of one host confirmed by two
 * managers is "more than one manager". A manager that runs on the failed host itself does not
 * count: it is on the isolated side of the cut, not a witness from outside it.
 */
export function confirmers(failure: FailureInput, group: RecordFields[], problem: RecordFields[], nowMs: number, windowMs: number): string[] {
  const members = group.map(fromMember);
  const rs = failure.realServer ?? members.find((m) => m.hostname === failure.target)?.realServer;
  const onHost = new Set(members.filter((m) => m.realServer === rs).map((m) => m.hostname));
  onHost.add(failure.target);
  const who = new Set<string>();
  const add = (manager: string) => {
    if (!onHost.has(manager)) who.add(manager);
  };
  if (failure.detectedBy) add(failure.detectedBy);
  for (const c of failure.confirmations ?? []) add(c);
  for (const p of problem.map(fromProblem)) {
    if (!onHost.has(p.target) || !isStatusIn(p.status, HANDLING_STATUSES)) continue;
    const since = Date.parse(p.since);
    if (!Number.isFinite(since) || nowMs - since > windowMs) continue;
    add(p.detectedBy);
  }
  return [...who].sort(naturalCompare);
}

/** A host not reached: the failure must be confirmed by at least this many managers off that host. */
export const MIN_CONFIRMERS = 2;

/** A failure reason as the problem file's free-text field holds it (no commas, one line). */
export function reasonField(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/,/g, ';').trim().slice(0, 200) || 'unknown error';
}

/** The state every step reads and writes. */
interface Plan {
  readonly failure: FailureInput;
  readonly deps: PlanDeps;
  readonly s: PlanSettings;
  readonly files: PlanFiles;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly t0: number;
  readonly target: string;
  realServer: string;
  address: string;
  services: string;
  backup: string;
  /** The group when the failure was handed over (a recovered VM of the same host still counts). */
  groupAtStart: RecordFields[];
  steps: StepEvent[];
  timings: RecoveryResult['timings'];
  /** The step that is running (named in a failure). */
  current: StepName;
  fence?: FenceOutcome;
  /** The early place + resume started beside the fence, or the one started after it. */
  resumeTask?: Promise<Placement>;
  /** Which step the resume task is in (a failure there is reported as that step). */
  resumeStep: StepName;
  resumedOd?: string;
  /** The readiness wait of the resumed OD, started right after its resume (odReady). */
  readiness?: { od: string; task: Promise<void> };
  /** The OD recorded in the problem record for this recovery (written before each resume). */
  od?: string;
  /** At start: the OD an earlier run of this recovery recorded (a takeover continues with it). */
  adoptOd?: string;
  lostRaces: string[];
  tried: Set<string>;
  badHosts: Set<string>;
  /** Edits sent in the background (problem record steps, fence marks); awaited at the end. */
  pending: Promise<unknown>[];
  /** The backup's name from an earlier run of this recovery (problem record). */
  earlierBackup?: string;
}

function emit(st: Plan, step: StepName, ms: number, text: string, detail?: Record<string, unknown>, parallel?: StepName): void {
  const e: StepEvent = { step, target: st.target, ms, atMs: st.now() - st.t0, text, detail };
  if (parallel) e.parallel = parallel;
  st.steps.push(e);
  try {
    st.deps.onStep?.(e);
  } catch {
    /* an observer's bug must not change the recovery */
  }
}

function checkAbort(st: Plan): void {
  if (st.deps.signal?.aborted) throw new StepError('aborted', 'recovery stopped (node closed)');
}

/**
 * Write the problem record's next status (get and edit in one turn: the store applies locally
 * before its first await, so `before` is current); the fan-out goes on in the background. A move
 * the lifecycle does not allow (problem.ts) is not written.
 */
function writeProblem(st: Plan, status: ProblemStatus, note?: string): Promise<unknown> {
  const e = problemEdit(st, status, note);
  return e ? sendEdits(st, [e]) : Promise.resolve(undefined);
}

/**
 * Edits made together go as one batch (ClusterFiles.editBatch: one diff, one request per peer, one
 * fdatasync per receiver, applied all or nothing everywhere, each record's authority checked in
 * order), applied locally in this turn; the fan-out goes on in the background, awaited at the end.
 */
function sendEdits(st: Plan, edits: Edit[]): Promise<unknown> {
  if (edits.length === 0) return Promise.resolve(undefined);
  const p = (edits.length === 1 ? st.files.edit(edits[0]) : st.files.editBatch(edits)).catch(() => undefined);
  st.pending.push(p);
  return p;
}

/** The problem record's next status as an edit; undefined when the lifecycle forbids it or nothing changes. */
function problemEdit(st: Plan, status: ProblemStatus, note?: string): Edit | undefined {
  const { files, target, failure } = st;
  const before = files.get('problem', target);
  const old = before ? fromProblem(before) : undefined;
  if (!canTransition(old?.status, status)) return undefined;
  const record = toProblem({
    target,
    detectedBy: old?.detectedBy ?? failure.detectedBy ?? files.identity.hostname,
    kind: old?.kind ?? ((failure.kind ?? 'network') as ProblemKind),
    status,
    backup: st.backup,
    since: old?.since ?? new Date(st.t0).toISOString(),
    note: note === undefined ? undefined : reasonField(note),
    od: st.od,
  });
  if (before && before.join('|') === record.join('|')) return undefined;
  return before ? { file: 'problem', op: 'Mod', before, record } : { file: 'problem', op: 'Add', record };
}

/**
 * After the fence: the target is `fenced` in the group (out of the ring); a host not reached is
 * `down`. One batch, with the problem record's next status first when it moves on at the same
 * instant (`recovering` once a reached host fenced it: one diff instead of two).
 */
function markFenced(st: Plan, hostDown: boolean, next?: ProblemStatus): void {
  const { files } = st;
  const edits: Edit[] = [];
  const p = next ? problemEdit(st, next) : undefined;
  if (p) edits.push(p);
  const g = files.get('group', st.target);
  if (g && fromMember(g).state !== 'fenced') {
    const record = toMember({ ...fromMember(g), state: 'fenced' });
    edits.push({ file: 'group', op: 'Mod', before: g, record });
  }
  const r = hostDown ? files.get('realserver', st.realServer) : undefined;
  if (r && fromRealServer(r).state !== 'down') {
    const record = toRealServer({ ...fromRealServer(r), state: 'down' });
    edits.push({ file: 'realserver', op: 'Mod', before: r, record });
  }
  sendEdits(st, edits);
}

function begin(failure: FailureInput, deps: PlanDeps, settings: Partial<PlanSettings>): Plan {
  const now = deps.now ?? (() => Date.now());
  const files = deps.files;
  const g = files.get('group', failure.target);
  const member = g ? fromMember(g) : undefined;
  return {
    failure,
    deps,
    s: { ...PLAN_DEFAULTS, ...settings },
    files,
    now,
    sleep: deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
    t0: now(),
    target: failure.target,
    realServer: failure.realServer ?? member?.realServer ?? '',
    address: failure.address ?? member?.address ?? '',
    services: member?.services ?? '-',
    backup: '-',
    groupAtStart: files.records('group'),
    steps: [],
    timings: { fence: 0, confirm: 0, place: 0, resume: 0, install: 0, role: 0, edits: 0, total: 0 },
    current: 'fence',
    resumeStep: 'place',
    lostRaces: [],
    tried: new Set(),
    badHosts: new Set(),
    pending: [],
    ...earlierRun(files, failure.target),
  };
}

/**
 * What an earlier run of this recovery left in the problem record (a recovery under way: status
 * fencing or recovering): the backup's name and the OD it resumed. Nothing for a new episode.
 */
function earlierRun(files: PlanFiles, target: string): { od?: string; adoptOd?: string; earlierBackup?: string } {
  const r = files.get('problem', target);
  const p = r ? fromProblem(r) : undefined;
  if (!p || !isStatusIn(p.status, RUNNING_STATUSES)) return {};
  const od = p.od !== '-' ? p.od : undefined;
  return { od, adoptOd: od, earlierBackup: p.backup !== '-' ? p.backup : undefined };
}

/** A recovery is under way past its claim: an earlier run may have fenced and resumed. */
const RUNNING_STATUSES: readonly ProblemStatus[] = ['fencing', 'recovering'];

/** Record the OD about to be resumed in the problem record (same status): a takeover continues with it. */
function recordOd(st: Plan, od: string): void {
  st.od = od;
  const r = st.files.get('problem', st.target);
  if (r) writeProblem(st, fromProblem(r).status);
}

/**
 * The OD an earlier run resumed (problem record `od`), if it is still available: running, it is
 * continued with as it is (never resumed twice, never a second OD beside it); paused, resumed
 * again; shut off or gone from its host: placed anew. Any other answer, or none (its host not
 * reached after ADOPT_TRIES tries), fails the recovery: that OD may be serving as the backup, so
 * no second one is started.
 */
async function adopted(st: Plan, parallel?: StepName): Promise<Placement | undefined> {
  const name = st.adoptOd;
  st.adoptOd = undefined;
  const rec = name ? st.files.get('available-od', name) : undefined;
  if (!name || !rec) return undefined;
  const od = fromOd(rec);
  const d = st.deps.driver(od.realServer);
  if (!d) throw new StepError('input', `no driver configured for real server ${od.realServer} of ${od.od}, the OD an earlier run of this recovery resumed`);
  let state: string | undefined;
  let why = '';
  for (let i = 0; i < ADOPT_TRIES && state === undefined; i++) {
    if (i > 0) await st.sleep(st.s.confirmPollMs);
    try {
      state = await d.domstate(od.od);
    } catch (e) {
      if (hvKind(e) === 'domain-absent') state = 'absent';
      else why = `${hvKind(e) ?? 'failed'}: ${errorText(e)}`;
    }
  }
  const p: Placement = { realServer: od.realServer, od: od.od, address: od.address, candidates: [] };
  if (state === 'running') {
    st.resumedOd = od.od;
    emit(st, 'resume', 0, `${od.od} on ${od.realServer} already resumed by an earlier run of this recovery: continued with`, { od: od.od, realServer: od.realServer, adopted: true }, parallel);
    return p;
  }
  if (state === 'paused') return p;
  if (state === 'shut off' || state === 'absent') {
    st.tried.add(od.od);
    emit(st, 'place', 0, `${od.od} recorded by an earlier run is ${state}: placing anew`, { od: od.od, state }, parallel);
    return undefined;
  }
  throw new StepError(
    'no-od',
    `${od.od} on ${od.realServer}, the OD an earlier run of this recovery resumed, is ${state ?? `not reached (${why})`}: not starting a second OD`,
  );
}

/** How often the state of an earlier run's OD is asked before the recovery gives up. */
const ADOPT_TRIES = 3;

/** Place (with the failures in hand) and resume an OD; the next OD when a resume race is lost. */
async function placeAndResume(st: Plan, first: Placement | undefined, parallel?: StepName): Promise<Placement> {
  const { s, now } = st;
  const earlier = await adopted(st, parallel);
  if (earlier && st.resumedOd === earlier.od) return earlier;
  for (let attempt = 1; ; attempt++) {
    st.resumeStep = 'place';
    let t1 = now();
    const p =
      attempt === 1 && earlier
        ? earlier
        : attempt === 1 && first && !st.badHosts.has(first.realServer)
          ? first
          : decidePlacement(st.files, st.target, st.realServer, { excludeOds: st.tried, excludeRealServers: st.badHosts, need: st.failure.need });
    st.timings.place += now() - t1;
    emit(st, 'place', now() - t1, `${p.od} on ${p.realServer}`, { placement: p }, parallel);
    checkAbort(st);
    st.resumeStep = 'resume';
    t1 = now();
    const d = st.deps.driver(p.realServer);
    if (!d) throw new StepError('input', `no driver configured for real server ${p.realServer}`);
    // Written before the resume: a manager taking over finds the OD even if this one dies now.
    recordOd(st, p.od);
    try {
      await d.resume(p.od);
      st.resumedOd = p.od;
      st.timings.resume += now() - t1;
      // Readiness starts at once, so it overlaps the fence when the resume ran beside it: it only
      // reads the OD's SSH banner and changes nothing; the install still waits for the fence.
      if (st.deps.odReady) {
        const task = st.deps.odReady(p);
        task.catch(() => undefined); // awaited by the install
        st.readiness = { od: p.od, task };
      }
      emit(st, 'resume', now() - t1, `${p.od} resumed`, { od: p.od, realServer: p.realServer }, parallel);
      return p;
    } catch (e) {
      st.timings.resume += now() - t1;
      const kind = hvKind(e);
      if (isUnreachable(e)) {
        st.badHosts.add(p.realServer);
        emit(st, 'resume', now() - t1, `${p.realServer} unreachable: another real server`, { realServer: p.realServer, kind, error: errorText(e) }, parallel);
        if (attempt >= s.maxOdAttempts) throw e;
        continue;
      }
      const state = await d.domstate(p.od).catch(() => 'unknown');
      st.tried.add(p.od);
      const lost = state === 'running';
      if (lost) st.lostRaces.push(p.od);
      emit(st, 'resume', now() - t1, lost ? `${p.od} taken by another manager: next OD` : `${p.od} cannot resume (${state}): next OD`, { od: p.od, state, kind, error: errorText(e) }, parallel);
      if (attempt >= s.maxOdAttempts) throw new StepError('no-od', `no OD could be resumed after ${attempt} attempts (${[...st.tried].join(', ')}): ${kind ?? 'error'}: ${errorText(e)}`);
    }
  }
}

/** A fence that did not happen, with the driver's kind. */
function fenceFailure(st: Plan, e: unknown, extra = ''): StepError {
  const kind = hvKind(e) ?? 'failed';
  return new StepError(kind, `cannot fence ${st.target} on ${st.realServer}: ${kind}: ${errorText(e)}${extra}`);
}

/**
 * Step 1, fence. Returns 'not-reached' with the reason when the host was not reached (the confirm
 * step decides then); the fence outcome otherwise; throws on any other outcome.
 */
async function stepFence(st: Plan): Promise<{ not: 'reached'; why: string } | { not?: undefined; how: FenceOutcome }> {
  st.current = 'fence';
  // Only when the failed server's host is `up` in the realserver file: a host already known down
  // is a whole-host failure, whose backups are placed together once every manager's confirmation
  // is in (an early placement would race the other managers for the same OD).
  const rs = st.files.get('realserver', st.realServer);
  const early = rs !== undefined && fromRealServer(rs).state === 'up';
  // The OD is chosen before the claim is written, so that `fencing` names it (one diff: the
  // resume's own record of it has nothing left to write). An earlier run's OD is checked first
  // (placeAndResume), and a placement that fails now is decided again there, with its reason.
  let first: Placement | undefined;
  if (early && !st.adoptOd) {
    try {
      first = decidePlacement(st.files, st.target, st.realServer, { excludeOds: st.tried, excludeRealServers: st.badHosts, need: st.failure.need });
      st.od = first.od;
    } catch {
      first = undefined;
    }
  }
  writeProblem(st, 'fencing');
  if (early) {
    st.resumeTask = placeAndResume(st, first, 'fence');
    st.resumeTask.catch(() => undefined); // observed on every path below
  }
  const t = st.now();
  const notReached = (why: string) => {
    st.timings.fence = st.now() - t;
    return { not: 'reached' as const, why };
  };
  const d = st.deps.driver(st.realServer);
  if (!d) return notReachedOrRecorded(st, notReached(`no driver configured for real server ${st.realServer}`));
  const done = (how: FenceOutcome, autostart: string) => {
    st.timings.fence = st.now() - t;
    const text = how === 'destroyed' ? `${st.target} destroyed on ${st.realServer}` : how === 'already-off' ? `${st.target} already off` : `${st.target} is not defined on ${st.realServer}`;
    emit(st, 'fence', st.timings.fence, text, { realServer: st.realServer, fence: how, autostart });
    return { how };
  };
  // Autostart off beside the destroy: a fenced domain must not start again with its host.
  const autostart = d.autostartOff(st.target).then(
    () => 'off',
    (e: unknown) => hvKind(e) ?? 'failed',
  );
  try {
    await d.destroy(st.target);
    return done('destroyed', await autostart);
  } catch (e) {
    const kind = hvKind(e);
    if (kind === 'domain-absent') return done('domain-absent', await autostart);
    if (isUnreachable(e)) return notReachedOrRecorded(st, notReached(`${kind}: ${errorText(e)}`));
    if (kind !== 'failed') throw fenceFailure(st, e);
    // The destroy ran and was refused: fenced only if the domain is shut off (or absent).
    let state: string;
    try {
      state = await d.domstate(st.target);
    } catch (e2) {
      if (hvKind(e2) === 'domain-absent') return done('domain-absent', await autostart);
      if (isUnreachable(e2)) return notReachedOrRecorded(st, notReached(`${hvKind(e2)}: ${errorText(e2)}`));
      throw fenceFailure(st, e2);
    }
    if (state === 'shut off') return done('already-off', await autostart);
    throw fenceFailure(st, e, ` (it is ${state})`);
  }
}

/**
 * The host was not reached: if the group already records the target `fenced` (an earlier run of
 * this recovery fenced it, or confirmed it with the isolation rule), that fence stands; otherwise
 * the confirm step decides.
 */
function notReachedOrRecorded(st: Plan, r: { not: 'reached'; why: string }): { not: 'reached'; why: string } | { how: FenceOutcome } {
  const g = st.files.get('group', st.target);
  if (!g || fromMember(g).state !== 'fenced') return r;
  emit(st, 'fence', st.timings.fence, `${st.realServer} not reached (${r.why}); ${st.target} is already recorded fenced`, { realServer: st.realServer, fence: 'recorded', error: r.why });
  return { how: 'recorded' };
}

/**
 * Step 2, confirm (the host was not reached): more than one confirmer off the failed host, then
 * the isolation gate, asked again while it says when (retryAfterMs), up to isolationWaitMs.
 */
async function stepConfirm(st: Plan, why: string): Promise<void> {
  const { s, now, target } = st;
  emit(st, 'fence', st.timings.fence, `${st.realServer} unreachable: waiting for a second manager`, { realServer: st.realServer, error: why, fence: 'host-not-reached' });
  st.current = 'confirm';
  const t = now();
  const groupNow = () => [...st.groupAtStart, ...st.files.records('group')];
  const deadline = t + s.confirmWaitMs;
  let who = confirmers(st.failure, groupNow(), st.files.records('problem'), now(), s.confirmWindowMs);
  while (who.length < MIN_CONFIRMERS && now() < deadline) {
    checkAbort(st);
    await st.sleep(s.confirmPollMs);
    who = confirmers(st.failure, groupNow(), st.files.records('problem'), now(), s.confirmWindowMs);
  }
  if (who.length < MIN_CONFIRMERS) {
    st.timings.confirm = now() - t;
    throw new StepError(
      'unconfirmed',
      `cannot fence ${target}: ${st.realServer} unreachable (${why}) and the failure is confirmed only by ${who.join(' ') || 'nobody'} off that host; not starting a second copy`,
    );
  }
  const gate = st.deps.isolation;
  if (!gate) {
    st.timings.confirm = now() - t;
    throw new StepError('isolation', `cannot fence ${target}: ${st.realServer} unreachable and no isolation gate (no heartbeat on this store) to say the target stopped serving; not starting a second copy`);
  }
  const gateDeadline = now() + s.isolationWaitMs;
  for (;;) {
    checkAbort(st);
    const v = gate.check(target, now());
    if (v.ok) {
      st.timings.confirm = now() - t;
      emit(st, 'confirm', st.timings.confirm, `confirmed by ${who.join(', ')}; ${v.detail}`, { confirmedBy: who, isolation: v.detail });
      return;
    }
    if (v.retryAfterMs === undefined || now() + v.retryAfterMs > gateDeadline) {
      st.timings.confirm = now() - t;
      throw new StepError('isolation', `cannot fence ${target}: ${st.realServer} unreachable; isolation rule: ${v.why}; not starting a second copy`);
    }
    await st.sleep(Math.max(1, v.retryAfterMs));
  }
}

/**
 * Step 3, place and resume: the early resume, or (host not reached: a whole host may be down) the
 * placement checked against every failure in hand. An early OD that the joint placement uses for
 * one of those failures is kept (no swapping of ODs between managers: that race made Fig. 3
 * flaky); one it does not use is suspended again and this failure placed anew.
 */
async function stepPlaceAndResume(st: Plan): Promise<Placement> {
  if (st.fence === 'confirmed-unreachable') {
    st.badHosts.add(st.realServer);
    const opts = { excludeOds: st.tried, excludeRealServers: st.badHosts, need: st.failure.need };
    const early = await st.resumeTask?.catch(() => undefined);
    if (early && jointOds(st.files, st.target, st.realServer, opts).has(early.od)) {
      emit(st, 'place', 0, `${early.od} on ${early.realServer} kept: placed together with the failures of ${st.realServer}`, { placement: early });
    } else if (st.resumeTask) {
      if (early) {
        await st.deps.driver(early.realServer)?.suspend(early.od).catch(() => undefined);
        st.resumedOd = undefined;
        emit(st, 'resume', 0, `${early.od} suspended again: the failures of ${st.realServer} are placed together`, { od: early.od });
      }
      let want: Placement | undefined;
      try {
        want = decidePlacement(st.files, st.target, st.realServer, opts);
      } catch {
        want = undefined; // placeAndResume decides again and reports why nothing fits
      }
      st.resumeTask = placeAndResume(st, want);
    }
  }
  writeProblem(st, 'recovering');
  if (!st.resumeTask) st.resumeTask = placeAndResume(st, undefined);
  try {
    return await st.resumeTask;
  } catch (e) {
    st.current = st.resumeStep;
    throw e;
  }
}

/** Step 4, install and role, in parallel (independent; both only after the fence). */
async function stepInstallAndRole(st: Plan, placement: Placement): Promise<void> {
  st.current = 'install';
  const { now, s, target } = st;
  const vars = procedureVariables({
    target,
    targetAddress: st.address,
    backup: st.backup,
    backupAddress: placement.address,
    od: placement.od,
    realServer: placement.realServer,
    services: st.services,
  });
  const d = st.deps.driver(placement.realServer)!;
  // The OD's host key from its available-od record (still there until the commit): the procedure
  // reaches the OD with it pinned (OD_HOST_KEY, and OD_KNOWN_HOSTS made by the driver).
  const odRecord = st.files.get('available-od', placement.od);
  const knownHostsKey = hostKeyLine(odRecord ? fromOd(odRecord).hostKey : undefined);
  const runVars: Record<string, string> = knownHostsKey ? { ...vars, OD_HOST_KEY: knownHostsKey } : { ...vars };
  const install = async (): Promise<string> => {
    const t1 = now();
    // Readiness, not launch: the resumed OD answers (e.g. its SSH banner) before its procedure runs.
    if (st.deps.odReady) await (st.readiness?.od === placement.od ? st.readiness.task : st.deps.odReady(placement));
    for (const path of procedurePaths(s.procedureDir, target)) {
      try {
        await (knownHostsKey ? d.runFile(path, runVars, { knownHostsKey }) : d.runFile(path, runVars));
        st.timings.install = now() - t1;
        emit(st, 'install', st.timings.install, `${path} done`, { path, variables: runVars }, 'role');
        return path;
      } catch (e) {
        const kind = hvKind(e) ?? 'failed';
        if (kind !== 'procedure-absent') throw new StepError(kind, `installation procedure ${path} failed: ${kind}: ${errorText(e)}`);
      }
    }
    throw new StepError('procedure-absent', `no installation procedure for ${target} in ${s.procedureDir} on ${placement.realServer}`);
  };
  const role: Role = { target, backup: st.backup, address: placement.address, realServer: placement.realServer, services: st.services, od: placement.od };
  const giveRole = async (): Promise<void> => {
    const t1 = now();
    try {
      if (st.deps.assignRole) await st.deps.assignRole(role);
    } catch (e) {
      throw new StepError('role', errorText(e));
    }
    st.timings.role = now() - t1;
    emit(st, 'role', st.timings.role, st.deps.assignRole ? `${placement.od} is now ${st.backup}` : 'no role step configured', { role }, 'install');
  };
  const both = await Promise.allSettled([install(), giveRole()]);
  if (both[0].status === 'rejected') throw both[0].reason;
  if (both[1].status === 'rejected') {
    st.current = 'role';
    throw both[1].reason;
  }
}

/** Step 5, commit: all edits applied locally in this turn and sent to the peers as one batch. */
async function stepCommit(st: Plan, placement: Placement): Promise<string[]> {
  st.current = 'edits';
  const { files, now } = st;
  const t = now();
  const edits: Edit[] = [];
  // The problem record first: receivers judge the batch's records in order (edit-authority.ts).
  const prob = problemEdit(st, 'recovered');
  if (prob) edits.push(prob);
  const od = files.get('available-od', placement.od);
  if (od) edits.push({ file: 'available-od', op: 'Del', record: od });
  const newMember = toMember({ hostname: st.backup, address: placement.address, realServer: placement.realServer, services: st.services });
  const existing = files.get('group', st.backup);
  if (!existing) edits.push({ file: 'group', op: 'Add', record: newMember });
  else if (existing.join('|') !== newMember.join('|')) edits.push({ file: 'group', op: 'Mod', before: existing, record: newMember });
  const lines = await commitEdits(files, edits);
  await Promise.all(st.pending);
  st.timings.edits = now() - t;
  emit(st, 'edits', st.timings.edits, `${lines.length} edits sent as one batch`, { lines });
  return lines;
}

export async function runBackupPlan(failure: FailureInput, deps: PlanDeps, settings: Partial<PlanSettings> = {}): Promise<RecoveryResult> {
  const st = begin(failure, deps, settings);
  const { target } = st;
  try {
    if (!st.realServer) throw new StepError('input', `${target} has no real server (not in the group file and none given)`);
    if (!st.address) throw new StepError('input', `${target} has no address (not in the group file and none given)`);
    const taken = new Set(st.files.records('group').map((g) => fromMember(g).hostname));
    for (const p of st.files.records('problem').map(fromProblem)) if (p.backup !== '-') taken.add(p.backup);
    // An earlier run of this recovery named its backup in the problem record: keep that name.
    st.backup = st.earlierBackup ?? backupName(target, taken);

    // 1-2: fence (and confirm when the host was not reached). No fence, no backup: a resumed OD
    // goes back to sleep, still available.
    try {
      const f = await stepFence(st);
      if (f.not === 'reached') {
        await stepConfirm(st, f.why);
        st.fence = 'confirmed-unreachable';
      } else {
        st.fence = f.how;
      }
      // A reached host: the recovery moves on to `recovering` now (stepPlaceAndResume then has
      // nothing to write); a confirmed one first decides the joint placement.
      markFenced(st, st.fence === 'confirmed-unreachable', st.fence === 'confirmed-unreachable' ? undefined : 'recovering');
      checkAbort(st);
    } catch (e) {
      const p = await st.resumeTask?.catch(() => undefined);
      if (p) {
        await deps.driver(p.realServer)?.suspend(p.od).catch(() => undefined);
        st.resumedOd = undefined;
      }
      throw e;
    }
    // 3: place and resume
    const placement = await stepPlaceAndResume(st);
    checkAbort(st);
    // 4: install and role
    await stepInstallAndRole(st, placement);
    checkAbort(st);
    // 5: commit
    const lines = await stepCommit(st, placement);
    st.timings.total = st.now() - st.t0;
    emit(st, 'recovered', 0, `${target} -> ${st.backup} on ${placement.realServer} in ${Math.round(st.timings.total)} ms`, { timings: st.timings });
    return {
      target,
      backup: st.backup,
      od: placement.od,
      address: placement.address,
      realServer: placement.realServer,
      services: st.services,
      fence: st.fence!,
      placement,
      lostRaces: st.lostRaces,
      timings: st.timings,
      edits: lines,
      steps: st.steps,
    };
  } catch (e) {
    throw await fail(st, e);
  }
}

/** The end of a failed plan: the problem record `failed` with step, kind and reason. */
async function fail(st: Plan, e: unknown): Promise<RecoveryError> {
  const kind = kindOf(e);
  const msg = errorText(e);
  const reason = `${st.current}: ${msg}`;
  emit(st, 'failed', 0, reason, { step: st.current, kind });
  // A resumed OD is half installed: it may already answer as the target (its procedure ran), and
  // the original may serve again once it is not replaced (isolation rule): never two copies, so the
  // OD is suspended again (frozen, it serves nothing; kept for the operator to look at, the reason
  // is in the problem record) and is not offered as a suspended OD again.
  const used = st.resumedOd ? st.files.get('available-od', st.resumedOd) : undefined;
  if (used) {
    const od = fromOd(used);
    await st.deps.driver(od.realServer)?.suspend(od.od).catch(() => undefined);
    st.pending.push(st.files.edit({ file: 'available-od', op: 'Del', record: used }).catch(() => undefined));
  }
  await writeProblem(st, 'failed', kind && !msg.includes(kind) ? `${st.current}: ${kind}: ${msg}` : reason);
  await Promise.all(st.pending);
  const err = new RecoveryError(reason, st.current, st.steps, kind);
  if (e instanceof PlacementError) err.candidates = e.candidates;
  return err;
}

/**
 * The commit's batch. Refused whole (nothing changed) because the files already say what some of
 * its edits wanted (the backup's own store joined the group with the same record an instant
 * before; a peer deleted the used OD too): those are done, not an error, and the rest is sent
 * again as one batch. A refusal for any other reason is an error.
 */
async function commitEdits(files: PlanFiles, edits: Edit[]): Promise<string[]> {
  if (edits.length === 0) return [];
  try {
    return (await files.editBatch(edits)).lines;
  } catch (err) {
    const done = edits.map((e) => alreadySo(files, e));
    if (!done.some(Boolean)) throw err;
    const rest = edits.filter((_, i) => !done[i]);
    const sent = rest.length ? (await files.editBatch(rest)).lines : [];
    return edits.map((e, i) => (done[i] ? `${e.file}, ${e.op}, ${e.record.join(', ')} (already so)` : sent.shift()!));
  }
}

/** The files already hold what this edit wants (its record, or no record for a Del). */
function alreadySo(files: PlanFiles, e: Edit): boolean {
  const now = files.get(e.file, recordKey(e.file, e.record));
  return e.op === 'Del' ? now === undefined : now !== undefined && now.join('|') === e.record.join('|');
}

export { ProcedureError };
