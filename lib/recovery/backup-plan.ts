// Starting a backup for a failed server (DESIGN.md "Recovery" 1-3), as a small state machine over
// injected parts (the files, a hypervisor driver per real server, a clock), so every branch is
// unit-tested without a network:
//
//   fence -> [confirm] -> place -> resume -> install -> role -> edits -> recovered
//                                    ^--------' (OD race lost: the next OD)
//   any error -> problem record `failed` with the reason (and the error thrown to the caller)
//
// fence    destroy the failed server on its real server, so two copies never run. A domain that
//          is already off (or gone) counts as fenced. If the real server cannot be reached (any
//          error but a command's own failure), the plan waits for the failure to be confirmed by
//          more than one manager (see confirmers()) and fails after a deadline otherwise.
// place    the real server and OD (placement.ts). Failures being handled at the same time (the
//          problem file's confirmed/fencing/recovering records) are placed together (placeMany),
//          so the managers of a failed real server's VMs spread their backups the same way.
// resume   `virsh resume` the OD. Its state on its host is the lock: if the resume fails and the
//          OD is running, another manager won it: exclude it and place again (up to maxOdAttempts).
// install  run the target's installation procedure on the OD's real server (install-procedure.ts).
// role     give the backup the failed server's role (an injected function; see role.ts).
// edits    group Del target, available-od Del OD, group Add backup, problem recovered; all applied
//          locally in one turn, then sent to the peers in parallel.
import type { ClusterFiles, Edit, EditResult } from '../records/cluster-api';
import type { RecordFields } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { odRows, place, placeMany, Placement, PlacementError, realServerRows } from './placement';
import { backupName, DEFAULT_PROCEDURE_DIR, isMissingProcedure, procedurePaths, procedureVariables, ProcedureError } from './install-procedure';

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
}

/** What the plan needs of a hypervisor driver (VirshDriver has all of it). */
export interface PlanDriver {
  destroy(name: string): Promise<void>;
  /** Put a resumed OD back to sleep when the fence failed. */
  suspend(name: string): Promise<void>;
  domstate(name: string): Promise<string>;
  resume(name: string): Promise<void>;
  runFile(path: string, vars?: Record<string, string | number>): Promise<{ stdout: string; stderr: string; code: number }>;
}

export interface Role {
  target: string;
  backup: string;
  address: string;
  realServer: string;
  services: string;
  od: string;
}

export type PlanFiles = Pick<ClusterFiles, 'records' | 'get' | 'edit' | 'identity'>;

export interface PlanDeps {
  files: PlanFiles;
  /** The driver of a real server by name, or undefined if this manager has none configured. */
  driver(realServer: string): PlanDriver | undefined;
  /** Make the resumed OD take the role (e.g. role.ts over the OD's admin API). Optional. */
  assignRole?(role: Role): Promise<void>;
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
  /** A placement chosen before (p2p-placer); used for the first attempt. */
  placement?: Placement;
}

export interface PlanSettings {
  procedureDir: string;
  /** How long to wait for a second manager's confirmation when the host is unreachable. */
  confirmWaitMs: number;
  confirmPollMs: number;
  /** Problem records older than this do not count as confirmations. */
  confirmWindowMs: number;
  maxOdAttempts: number;
}

export const PLAN_DEFAULTS: PlanSettings = {
  procedureDir: DEFAULT_PROCEDURE_DIR,
  confirmWaitMs: 6000,
  confirmPollMs: 200,
  confirmWindowMs: 60000,
  maxOdAttempts: 3,
};

export interface RecoveryResult {
  target: string;
  backup: string;
  od: string;
  address: string;
  realServer: string;
  services: string;
  fence: 'destroyed' | 'already-off' | 'confirmed-unreachable';
  placement: Placement;
  lostRaces: string[];
  timings: Record<'fence' | 'confirm' | 'place' | 'resume' | 'install' | 'role' | 'edits' | 'total', number>;
  edits: string[];
  steps: StepEvent[];
}

export class RecoveryError extends Error {
  constructor(
    message: string,
    readonly step: StepName,
    readonly steps: StepEvent[],
  ) {
    super(message);
    this.name = 'RecoveryError';
  }
}

/** Problem statuses that mean "a manager confirmed this failure". */
const CLAIMED = ['confirmed', 'fencing', 'recovering', 'recovered', 'failed'];
/** Problem statuses of failures being handled right now (placed together). */
const IN_HAND = ['confirmed', 'fencing', 'recovering'];

/** An error from reaching the host (not from the command run there). */
export function isUnreachable(e: unknown): boolean {
  const kind = (e as { kind?: string })?.kind;
  if (kind !== undefined) return kind !== 'command-failed';
  // An unclassified error from the SSH layer (ssh2 throws "Not connected" synchronously when a
  // connection dropped an instant before the command): the host was not reached either.
  const msg = (e as Error)?.message ?? '';
  return /^Not connected$|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|No response from server|handshake/i.test(msg);
}

/**
 * The managers that confirmed the failure of `target` or of another VM on the same real server
 * within the window: the detectedBy of their problem records, the failure's own detectedBy and
 * any confirmations passed in. A real server failure kills all its VMs, each watched by its own
 * P1 manager, so two VMs of one host confirmed by two managers is "more than one manager".
 */
export function confirmers(
  failure: FailureInput,
  group: RecordFields[],
  problem: RecordFields[],
  nowMs: number,
  windowMs: number,
): string[] {
  const rs = failure.realServer ?? group.find((g) => g[0] === failure.target)?.[2];
  const onHost = new Set(group.filter((g) => g[2] === rs).map((g) => g[0]));
  onHost.add(failure.target);
  const who = new Set<string>();
  if (failure.detectedBy) who.add(failure.detectedBy);
  for (const c of failure.confirmations ?? []) who.add(c);
  for (const p of problem) {
    if (!onHost.has(p[0]) || !CLAIMED.includes(p[3])) continue;
    // A confirmation expires: one without a date counts for nothing (it used to count for ever).
    const since = p[5] === '-' ? NaN : Date.parse(p[5]);
    if (!Number.isFinite(since) || nowMs - since > windowMs) continue;
    who.add(p[1]);
  }
  return [...who].sort(naturalCompare);
}

/** A failure reason as the problem file's free-text field holds it (no commas, one line). */
export function reasonField(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/,/g, ';').trim().slice(0, 200) || 'unknown error';
}

export async function runBackupPlan(failure: FailureInput, deps: PlanDeps, settings: Partial<PlanSettings> = {}): Promise<RecoveryResult> {
  const s = { ...PLAN_DEFAULTS, ...settings };
  const now = deps.now ?? (() => Date.now());
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const files = deps.files;
  const t0 = now();
  const steps: StepEvent[] = [];
  const timings: RecoveryResult['timings'] = { fence: 0, confirm: 0, place: 0, resume: 0, install: 0, role: 0, edits: 0, total: 0 };
  const target = failure.target;
  let current: StepName = 'fence';
  let backup = '-';
  /** The OD this plan resumed, if any: no longer a suspended OD, whatever happens next. */
  let resumedOd: string | undefined;

  const emit = (step: StepName, ms: number, text: string, detail?: Record<string, unknown>) => {
    const e: StepEvent = { step, target, ms, atMs: now() - t0, text, detail };
    steps.push(e);
    try {
      deps.onStep?.(e);
    } catch {
      /* an observer's bug must not change the recovery */
    }
  };
  const checkAbort = () => {
    if (deps.signal?.aborted) throw new Error('recovery stopped (node closed)');
  };
  // Problem record steps: get and edit in one turn (the store applies locally before its first
  // await), so `before` is always current; the fan-out goes on in the background.
  const pending: Promise<unknown>[] = [];
  const writeProblem = (status: string, note?: string): Promise<EditResult | undefined> => {
    const before = files.get('problem', target);
    const sinceIso = new Date(t0).toISOString();
    const base = before ?? [target, failure.detectedBy ?? files.identity.hostname, failure.kind ?? 'network', 'confirmed', '-', sinceIso];
    const record = [base[0], base[1], base[2], status, backup, base[5]];
    if (note !== undefined) record.push(reasonField(note));
    if (before && before.join('|') === record.join('|')) return Promise.resolve(undefined);
    const edit: Edit = before ? { file: 'problem', op: 'Mod', before, record } : { file: 'problem', op: 'Add', record };
    const p = files.edit(edit).catch(() => undefined);
    pending.push(p);
    return p;
  };

  try {
    // The group as it was when this failure was handed over: a VM of the same real server whose own
    // recovery finishes first leaves the group, but its confirmation still counts for this one.
    const groupAtStart = files.records('group');
    const groupNow = () => [...groupAtStart, ...files.records('group')];
    const groupRec = files.get('group', target);
    const realServer = failure.realServer ?? groupRec?.[2];
    const address = failure.address ?? groupRec?.[1];
    const services = groupRec?.[3] ?? '-';
    if (!realServer) throw new Error(`${target} has no real server (not in the group file and none given)`);
    if (!address) throw new Error(`${target} has no address (not in the group file and none given)`);
    const taken = new Set(files.records('group').map((g) => g[0]));
    for (const p of files.records('problem')) if (p[4] !== '-') taken.add(p[4]);
    backup = backupName(target, taken);

    // fence, and at the same time place + resume: a resumed OD is a generic server, it takes
    // nothing's place until install and role, which wait for the fence. If the fence fails, the OD
    // is suspended again (it stays an available OD). The place/resume steps are reported after
    // the fence, in the order of the story.
    current = 'fence';
    writeProblem('fencing');
    const held: (() => void)[] = [];
    let fenceDone = false;
    const emitLater = (step: StepName, ms: number, text: string, detail?: Record<string, unknown>) => {
      if (fenceDone) emit(step, ms, text, detail);
      else held.push(() => emit(step, ms, text, detail));
    };
    const lostRaces: string[] = [];
    const tried = new Set<string>();
    const badHosts = new Set<string>();
    let resumeStep: StepName = 'place';
    const placeAndResume = async (first?: Placement): Promise<Placement> => {
      for (let attempt = 1; ; attempt++) {
        resumeStep = 'place';
        let t1 = now();
        const given = first ?? failure.placement;
        const p = attempt === 1 && given && !badHosts.has(given.realServer) ? given : choose(failure, realServer, files, tried, badHosts);
        timings.place += now() - t1;
        emitLater('place', now() - t1, `${p.od} on ${p.realServer}`, { placement: p });
        checkAbort();
        resumeStep = 'resume';
        t1 = now();
        const d = deps.driver(p.realServer);
        if (!d) throw new Error(`no driver configured for real server ${p.realServer}`);
        try {
          await d.resume(p.od);
          resumedOd = p.od;
          timings.resume += now() - t1;
          emitLater('resume', now() - t1, `${p.od} resumed`, { od: p.od, realServer: p.realServer });
          return p;
        } catch (e) {
          timings.resume += now() - t1;
          if (isUnreachable(e)) {
            badHosts.add(p.realServer);
            emitLater('resume', now() - t1, `${p.realServer} unreachable: another real server`, { realServer: p.realServer, error: (e as Error).message });
            if (attempt >= s.maxOdAttempts) throw e;
            continue;
          }
          const state = await d.domstate(p.od).catch(() => 'unknown');
          tried.add(p.od);
          const lost = state === 'running';
          if (lost) lostRaces.push(p.od);
          emitLater('resume', now() - t1, lost ? `${p.od} taken by another manager: next OD` : `${p.od} cannot resume (${state}): next OD`, {
            od: p.od,
            state,
            error: (e as Error).message,
          });
          if (attempt >= s.maxOdAttempts) throw new Error(`no OD could be resumed after ${attempt} attempts (${[...tried].join(', ')}): ${(e as Error).message}`);
        }
      }
    };
    // Only when the failed server's host is `up` in the realserver file: a host already known down
    // is a whole-host failure, whose backups must be placed together once every manager's
    // confirmation is in (an early placement would race the other managers for the same OD).
    const hostUp = files.get('realserver', realServer)?.[3] === 'up';
    let resumeTask: Promise<Placement> | undefined = hostUp ? placeAndResume() : undefined;
    // Observed below on every path; never an unhandled rejection.
    resumeTask?.catch(() => undefined);

    let fence: RecoveryResult['fence'] | undefined;
    try {
      let t = now();
      const hostDriver = deps.driver(realServer);
      let unreachable: string | undefined;
      if (!hostDriver) {
        unreachable = `no driver configured for real server ${realServer}`;
      } else {
        try {
          await hostDriver.destroy(target);
          fence = 'destroyed';
        } catch (e) {
          if (isUnreachable(e)) unreachable = (e as Error).message;
          else {
            // The command ran: the domain may already be off (or not defined there): that is fenced.
            const state = await hostDriver.domstate(target).catch((e2: Error) => {
              if (/failed to get domain|not found/i.test(e2.message)) return 'undefined';
              if (isUnreachable(e2)) {
                unreachable = e2.message;
                return 'unknown';
              }
              throw e2;
            });
            if (state === 'shut off' || state === 'undefined') fence = 'already-off';
            else if (!unreachable) throw new Error(`cannot fence ${target} on ${realServer}: ${(e as Error).message} (it is ${state})`);
          }
        }
      }
      timings.fence = now() - t;
      if (unreachable) {
        emit('fence', timings.fence, `${realServer} unreachable: waiting for a second manager`, { realServer, error: unreachable });
        current = 'confirm';
        t = now();
        const deadline = t + s.confirmWaitMs;
        let who = confirmers(failure, groupNow(), files.records('problem'), now(), s.confirmWindowMs);
        while (who.length < 2 && now() < deadline) {
          checkAbort();
          await sleep(s.confirmPollMs);
          who = confirmers(failure, groupNow(), files.records('problem'), now(), s.confirmWindowMs);
        }
        timings.confirm = now() - t;
        if (who.length < 2) {
          throw new Error(
            `cannot fence ${target}: ${realServer} unreachable (${unreachable}) and the failure is confirmed only by ${who.join(' ') || 'nobody'}; not starting a second copy`,
          );
        }
        fence = 'confirmed-unreachable';
        emit('confirm', timings.confirm, `confirmed by ${who.join(', ')}`, { confirmedBy: who });
      } else {
        emit('fence', timings.fence, fence === 'destroyed' ? `${target} destroyed on ${realServer}` : `${target} already off`, { realServer, fence });
      }
      checkAbort();
    } catch (e) {
      // No fence, no backup: put a resumed OD back to sleep, still available.
      const p = await resumeTask?.catch(() => undefined);
      if (p) {
        await deps.driver(p.realServer)?.suspend(p.od).catch(() => undefined);
        resumedOd = undefined;
      }
      throw e;
    }
    fenceDone = true;
    for (const f of held.splice(0)) f();
    if (fence === 'confirmed-unreachable') {
      // A whole host failed: the early placement saw the files before the other managers'
      // confirmations, so it may not be the spread one (placeMany) every manager computes now.
      // Place again; if the answer is another OD, put the early one back to sleep.
      badHosts.add(realServer);
      const early = await resumeTask?.catch(() => undefined);
      let want: Placement | undefined;
      try {
        want = choose(failure, realServer, files, tried, badHosts);
      } catch {
        want = undefined;
      }
      if (resumeTask && (!early || (want && want.od !== early.od))) {
        if (early) {
          await deps.driver(early.realServer)?.suspend(early.od).catch(() => undefined);
          resumedOd = undefined;
          emit('resume', 0, `${early.od} suspended again: the failures of ${realServer} are placed together`, { od: early.od });
        }
        resumeTask = placeAndResume(want);
        resumeTask.catch(() => undefined);
      }
    }
    writeProblem('recovering');
    if (!resumeTask) resumeTask = placeAndResume();

    let placement: Placement;
    try {
      placement = await resumeTask;
    } catch (e) {
      current = resumeStep;
      throw e;
    }
    // The resume task may have used the failed server's own host before the fence said it was
    // unreachable; a host that answered a resume is reachable, so this only matters for logs.
    checkAbort();

    // install and role, in parallel: both only after the fence, and independent of each other
    // (the procedure configures the services, the role makes the manager inside a member). The
    // role does not join the group by itself: the edits below do, so a failed install leaves no
    // half-made member behind.
    current = 'install';
    const vars = procedureVariables({
      target,
      targetAddress: address,
      backup,
      backupAddress: placement.address,
      od: placement.od,
      realServer: placement.realServer,
      services,
    });
    const d = deps.driver(placement.realServer)!;
    const install = async (): Promise<string> => {
      const t1 = now();
      for (const path of procedurePaths(s.procedureDir, target)) {
        try {
          await d.runFile(path, vars);
          timings.install = now() - t1;
          return path;
        } catch (e) {
          if (!isMissingProcedure((e as Error).message)) throw new Error(`installation procedure ${path} failed: ${(e as Error).message}`);
        }
      }
      throw new ProcedureError(`no installation procedure for ${target} in ${s.procedureDir} on ${placement.realServer}`);
    };
    const role: Role = { target, backup, address: placement.address, realServer: placement.realServer, services, od: placement.od };
    const giveRole = async (): Promise<void> => {
      const t1 = now();
      try {
        if (deps.assignRole) await deps.assignRole(role);
      } catch (e) {
        throw Object.assign(new Error((e as Error).message), { step: 'role' as StepName });
      }
      timings.role = now() - t1;
    };
    const both = await Promise.allSettled([install(), giveRole()]);
    if (both[0].status === 'rejected') throw both[0].reason;
    if (both[1].status === 'rejected') {
      current = 'role';
      throw both[1].reason;
    }
    const ran = both[0].value;
    emit('install', timings.install, `${ran} done`, { path: ran, variables: vars });
    emit('role', timings.role, deps.assignRole ? `${placement.od} is now ${backup}` : 'no role step configured', { role });
    checkAbort();

    // edits: all applied locally in this turn, sent to the peers in parallel
    current = 'edits';
    const t = now();
    const edits: Edit[] = [];
    const g = files.get('group', target);
    if (g) edits.push({ file: 'group', op: 'Del', record: g });
    const od = files.get('available-od', placement.od);
    if (od) edits.push({ file: 'available-od', op: 'Del', record: od });
    const newMember = [backup, placement.address, placement.realServer, services];
    const existing = files.get('group', backup);
    if (!existing) edits.push({ file: 'group', op: 'Add', record: newMember });
    else if (existing.join('|') !== newMember.join('|')) edits.push({ file: 'group', op: 'Mod', before: existing, record: newMember });
    const results = edits.map((e) => files.edit(e).then((r) => r.line, (err: Error) => settled(files, e, err)));
    const prob = writeProblem('recovered');
    const lines = await Promise.all(results);
    await prob;
    timings.edits = now() - t;
    timings.total = now() - t0;
    emit('edits', timings.edits, `${lines.length + 1} edits sent`, { lines });
    emit('recovered', 0, `${target} -> ${backup} on ${placement.realServer} in ${Math.round(timings.total)} ms`, { timings });
    return {
      target,
      backup,
      od: placement.od,
      address: placement.address,
      realServer: placement.realServer,
      services,
      fence: fence!,
      placement,
      lostRaces,
      timings,
      edits: lines,
      steps,
    };
  } catch (e) {
    const reason = `${current}: ${(e as Error).message}`;
    emit('failed', 0, reason, { step: current });
    // A resumed OD is running now, half installed: it must not be offered as a suspended OD again.
    // It stays running for the operator to look at (the reason is in the problem record).
    const used = resumedOd ? files.get('available-od', resumedOd) : undefined;
    if (used) pending.push(files.edit({ file: 'available-od', op: 'Del', record: used }).catch(() => undefined));
    await writeProblem('failed', reason);
    await Promise.all(pending);
    const err = new RecoveryError(reason, current, steps);
    if (e instanceof PlacementError) (err as RecoveryError & { candidates?: unknown }).candidates = e.candidates;
    throw err;
  }
}

/**
 * An edit refused because the files already say what it wanted (the backup's own store joined the
 * group with the same record an instant before; a peer deleted the used OD too) is done, not an
 * error. Anything else is.
 */
function settled(files: PlanFiles, e: Edit, err: Error): string {
  const key = e.record[0];
  const now = files.get(e.file, key);
  const want = e.op === 'Del' ? undefined : e.record.join('|');
  if (now === undefined && want === undefined) return `${e.file}, ${e.op}, ${e.record.join(', ')} (already so)`;
  if (now !== undefined && now.join('|') === want) return `${e.file}, ${e.op}, ${e.record.join(', ')} (already so)`;
  throw err;
}

/** The placement of this failure among the failures being handled now (placed together). */
function choose(failure: FailureInput, realServer: string, files: PlanFiles, excludeOds: Set<string>, excludeRealServers: Set<string>): Placement {
  const rs = realServerRows(files.records('realserver'));
  const ods = odRows(files.records('available-od'));
  const group = files.records('group');
  const others = files
    .records('problem')
    .filter((p) => p[0] !== failure.target && IN_HAND.includes(p[3]))
    .map((p) => ({ target: p[0], realServer: group.find((g) => g[0] === p[0])?.[2] ?? '' }))
    .filter((x) => x.realServer !== '');
  const opts = { excludeOds, excludeRealServers };
  if (others.length === 0) return place(rs, ods, opts);
  const many = placeMany([{ target: failure.target, realServer }, ...others], rs, ods, opts);
  const mine = many.placements.find((p) => p.target === failure.target)!;
  if (mine.placement) return mine.placement;
  // Not enough ODs for everyone: this failure still gets one if any is left for it alone.
  return place(rs, ods, opts);
}
