// The rehearsal of a failover (issue 15), like Pacemaker's crm_simulate: for any VM, what the
// backup plan would do now if that VM failed, with nothing changed.
//
// How: the rehearsal does not restate the plan's rules; it RUNS the plan (runBackupPlan, the same
// function a real failure runs, so every decision - fence, confirmation, isolation gate,
// placement, OD race, procedure choice, edits - is the plan's own code) over three stand-ins:
//
//   files       a MemoryFiles seeded with a copy of this VM's files: the plan's edits land in the
//               copy and are reported as Diff.dat lines; the real files are only read.
//   hypervisor  a dry host per real server that answers from the real host's READ-ONLY calls
//               (domstate, fileHashes, and other read-only queries the driver has) and records each
//               mutating command it would have run (destroy, autostart off, resume, suspend, the
//               procedure) without running it. It never calls a mutating method of the real driver.
//   clock       a virtual clock: the plan's waits (a second confirmation, the isolation gate's
//               "ask again in N ms") pass at once, as they would pass in time if the VM stayed
//               silent; the gate itself is the real one (read-only), asked with that clock.
//
// Before the plan, the copy gets the problem record the heartbeat would have written (the target
// `confirmed` by its P1), unless one is open already. What the monitor layer decides (who watches
// the target, whether it gets a verdict at all) is read from the files here: the operation file's
// P1/P2 and records.ts isResting (the heartbeat's own maintenance rule).
//
// Residual difference from a real failover: the rehearsal runs on the VM asked, with its drivers
// and its view of the majority; the real plan runs on the target's P1 (the same files, and in the
// one-flow deployment the same real-server configuration). Probes cost a few SSH round trips.
import type { ClusterFiles, IsolationGate } from '../records/cluster-api';
import { FILE_NAMES, NAME_RE, type FileName, type RecordFields } from '../records/files';
import { hvKind, errorText, type HvOutcomeKind } from '../records/hv-outcome';
import { MemoryFiles } from '../records/memory-files';
import { OPEN_STATUSES, isStatusIn } from '../records/problem';
import { fromAssignment, fromMember, fromProblem, isResting, toProblem } from '../records/records';
import { confirmers, MIN_CONFIRMERS, PLAN_DEFAULTS, RecoveryError, runBackupPlan, type FailureInput, type PlanDriver, type PlanSettings, type StepEvent } from './backup-plan';
import type { Candidate, Placement, VmSize } from './placement';

/** Read-only driver calls the dry host may pass through to the real one (never a mutating one). */
export const READ_ONLY_CALLS = ['domstate', 'fileHashes', 'listDomains', 'domainNames', 'activeCount', 'hasProgram', 'dumpxml', 'domiflist', 'dominfo', 'domainInfo', 'domainSize', 'hostLoad', 'hostMemory'] as const;

export class RehearsalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RehearsalError';
  }
}

export interface RehearsalDeps {
  files: Pick<ClusterFiles, 'records' | 'get' | 'identity'>;
  /** The real driver of a real server (only its READ_ONLY_CALLS are used), or undefined. */
  driver(realServer: string): object | undefined;
  isolation?: IsolationGate;
  /** Whether the plan here gives the backup its role (the backup starter's role step). */
  roleConfigured: boolean;
  /** Whether the plan here waits for the OD's SSH banner before the install. */
  readinessCheck?: boolean;
  now?(): number;
}

export interface RehearsalRequest {
  target: string;
  need?: VmSize;
}

export interface HvCall {
  realServer: string;
  command: string;
  /** The command would be tried and fail (the plan then goes on as it reads the failure). */
  fails?: string;
}

export interface Rehearsal {
  target: string;
  /** The VM that ran the rehearsal (its drivers, its isolation view). */
  rehearsedOn: string;
  at: number;
  detection: {
    /** The operation file's watchers: P1 handles the failure, P2 only when P1 is gone. */
    p1?: string;
    p2?: string;
    /** false: the heartbeat gives no verdict (in maintenance, or fenced), nothing would start by itself. */
    verdict: boolean;
    why?: string;
    /** A problem already open for the target (the rehearsal then starts from it). */
    open?: { status: string; detectedBy: string; backup: string };
  };
  fence: {
    realServer: string;
    /** destroyed, already-off, domain-absent (the host answered), or host-not-reached. */
    how?: string;
    /** The target's domain state as its host answers now (probe), or the kind of the failure to ask. */
    stateNow?: string;
    detail?: string;
  };
  confirmation: {
    /** A host not reached needs MIN_CONFIRMERS managers off it, and the isolation gate. */
    needed: boolean;
    minimum: number;
    /** Who confirms (plan's confirm step), when it was needed. */
    confirmedBy?: string[];
    isolation?: string;
    /** If the whole real server failed now: the managers that would confirm (confirmers() over its VMs' P1s). */
    ifHostFails: string[];
  };
  placement?: { realServer: string; od: string; address: string; candidates: Candidate[] };
  /** Candidates when nothing fits. */
  candidates?: Candidate[];
  /** ODs that would not resume (another manager holds them, or their state) before the chosen one. */
  skippedOds: { od: string; state?: string; text: string }[];
  procedure?: { path: string; checked: boolean; variables: Record<string, unknown> };
  role: { backup: string; configured: boolean };
  outcome: { ok: true; text: string } | { ok: false; step: string; kind?: string; reason: string };
  /** Diff.dat lines the plan would send, in order. */
  edits: string[];
  /** Mutating commands that would run on the real servers, in order. */
  wouldRun: HvCall[];
  /** Read-only calls made to answer (the rehearsal's only contact with the hosts). */
  probes: (HvCall & { answer: string })[];
  /** The plan's steps as it reported them (virtual times). */
  steps: { step: string; text: string; parallel?: string }[];
}

/** An outcome as a driver raises it (the plan reads only `kind`). */
class DryOutcome extends Error {
  constructor(
    readonly kind: HvOutcomeKind,
    message: string,
  ) {
    super(message);
  }
}

type Real = Record<string, unknown>;

/**
 * A real server as the plan sees it during a rehearsal: states from the real host's domstate,
 * changed only in this object's memory; every mutation recorded in `wouldRun`, never executed.
 */
class DryHost implements PlanDriver {
  private readonly states = new Map<string, string>();
  procedureChecked = false;

  constructor(
    readonly realServer: string,
    private readonly real: Real,
    private readonly wouldRun: HvCall[],
    private readonly probes: (HvCall & { answer: string })[],
  ) {
    for (const m of READ_ONLY_CALLS) {
      if (m === 'domstate' || m === 'fileHashes' || typeof real[m] !== 'function') continue;
      (this as unknown as Real)[m] = (...args: unknown[]) => this.probe(`${m} ${args.map(String).join(' ')}`.trim(), () => (real[m] as (...a: unknown[]) => Promise<unknown>).apply(real, args));
    }
  }

  private async probe<T>(command: string, call: () => Promise<T>): Promise<T> {
    try {
      const v = await call();
      this.probes.push({ realServer: this.realServer, command, answer: v instanceof Map ? JSON.stringify([...v.keys()]) : typeof v === 'string' ? v : JSON.stringify(v) });
      return v;
    } catch (e) {
      this.probes.push({ realServer: this.realServer, command, answer: `${hvKind(e) ?? 'error'}: ${errorText(e)}` });
      throw e;
    }
  }

  private would(command: string, fails?: string): void {
    this.wouldRun.push({ realServer: this.realServer, command, ...(fails ? { fails } : {}) });
    if (fails) throw new DryOutcome('failed', fails);
  }

  private async stateOf(name: string): Promise<string> {
    const s = this.states.get(name);
    if (s !== undefined) return s;
    const st = await this.probe(`virsh domstate ${name}`, () => (this.real.domstate as (n: string) => Promise<string>).call(this.real, name));
    this.states.set(name, st);
    return st;
  }

  domstate(name: string): Promise<string> {
    return this.stateOf(name);
  }

  async destroy(name: string): Promise<void> {
    const s = await this.stateOf(name);
    this.would(`virsh destroy ${name}`, s === 'shut off' ? `domain ${name} is not running` : undefined);
    this.states.set(name, 'shut off');
  }

  async autostartOff(name: string): Promise<void> {
    await this.stateOf(name);
    this.would(`virsh autostart --disable ${name}`);
  }

  async shutdown(name: string): Promise<void> {
    await this.stateOf(name);
    this.states.set(name, 'shut off');
    this.would(`virsh shutdown ${name}`);
  }

  async suspend(name: string): Promise<void> {
    const s = await this.stateOf(name);
    this.would(`virsh suspend ${name}`, s !== 'running' ? `domain ${name} is ${s}, not running` : undefined);
    this.states.set(name, 'paused');
  }

  async resume(name: string): Promise<void> {
    const s = await this.stateOf(name);
    this.would(`virsh resume ${name}`, s !== 'paused' ? `domain ${name} is ${s}, not paused` : undefined);
    this.states.set(name, 'running');
  }

  async runFile(path: string, vars?: Record<string, string | number>): Promise<{ stdout: string; stderr: string; code: number }> {
    const hashes = this.real.fileHashes as ((p: string[]) => Promise<Map<string, string>>) | undefined;
    if (typeof hashes === 'function') {
      const have = await this.probe(`sha256sum ${path}`, () => hashes.call(this.real, [path]));
      this.procedureChecked = true;
      if (!have.has(path)) {
        this.wouldRun.push({ realServer: this.realServer, command: `${runLine(path, vars)}`, fails: `${path}: no such file` });
        throw new DryOutcome('procedure-absent', `${path}: no such file`);
      }
    }
    this.would(runLine(path, vars));
    return { stdout: '', stderr: '', code: 0 };
  }
}

/** How a procedure is run on the real server (VirshDriver.runFile), for people. */
function runLine(path: string, vars?: Record<string, string | number>): string {
  return `env ${Object.entries(vars ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')} /bin/sh ${path}`.replace(/ +/g, ' ');
}

/** The copy of the files the plan runs over: every file but the derived operation file. */
function copyOf(files: RehearsalDeps['files'], seed: (f: FileName, rs: RecordFields[]) => RecordFields[]): MemoryFiles {
  const init: Partial<Record<FileName, RecordFields[]>> = {};
  for (const f of FILE_NAMES) if (f !== 'operation') init[f] = seed(f, files.records(f).map((r) => r.slice()));
  return new MemoryFiles(files.identity, init);
}

/** Rehearse the failure of `req.target` now; never changes a file or a domain. */
export async function rehearse(req: RehearsalRequest, deps: RehearsalDeps, settings: Partial<PlanSettings> = {}): Promise<Rehearsal> {
  const target = req?.target;
  if (typeof target !== 'string' || !NAME_RE.test(target)) throw new RehearsalError(`target ${JSON.stringify(target)} is not a VM name`);
  const real = deps.files;
  const row = real.get('group', target);
  if (!row) throw new RehearsalError(`${target} is not in the group file`);
  const member = fromMember(row);
  const now0 = (deps.now ?? Date.now)();
  const s = { ...PLAN_DEFAULTS, ...settings };
  const operation = real.records('operation').map(fromAssignment);
  const p1 = operation.find((a) => a.priority === 'P1' && a.target === target)?.manager;
  const p2 = operation.find((a) => a.priority === 'P2' && a.target === target)?.manager;
  const openRow = real.get('problem', target);
  const open = openRow && isStatusIn(fromProblem(openRow).status, OPEN_STATUSES) ? fromProblem(openRow) : undefined;
  const detectedBy = open?.detectedBy ?? p1 ?? real.identity.hostname;

  const detection: Rehearsal['detection'] = { p1, p2, verdict: true };
  if (member.state === 'fenced') Object.assign(detection, { verdict: false, why: `${target} is fenced (replaced): nobody watches it; re-admit it first` });
  else if (isResting(member)) Object.assign(detection, { verdict: false, why: `${target} is in maintenance: its managers give it no verdict (an evacuation would still move it this way)` });
  else if (!p1) Object.assign(detection, { verdict: false, why: `${target} has no manager (a group of one)` });
  if (open) detection.open = { status: open.status, detectedBy: open.detectedBy, backup: open.backup };

  // If the whole real server failed: every serving VM on it confirmed by its P1 (the plan's rule).
  const group = real.records('group');
  const onHost = group.map(fromMember).filter((m) => m.realServer === member.realServer && m.state !== 'fenced');
  const hostFailure = onHost.map((m) =>
    toProblem({ target: m.hostname, detectedBy: operation.find((a) => a.priority === 'P1' && a.target === m.hostname)?.manager ?? '-', kind: 'realserver', status: 'confirmed', backup: '-', since: new Date(now0).toISOString() }),
  );
  const ifHostFails = confirmers({ target, realServer: member.realServer }, group, hostFailure, now0, s.confirmWindowMs);

  // The copy, with the record the heartbeat would have written before handing the failure over.
  const copy = copyOf(real, (f, rs) => {
    if (f !== 'problem' || open) return rs;
    const rec = toProblem({ target, detectedBy, kind: 'network', status: 'confirmed', backup: '-', since: new Date(now0).toISOString() });
    return [...rs.filter((r) => r[0] !== target), rec];
  });

  const wouldRun: HvCall[] = [];
  const probes: (HvCall & { answer: string })[] = [];
  const hosts = new Map<string, DryHost | undefined>();
  const dry = (rs: string): DryHost | undefined => {
    if (!hosts.has(rs)) {
      const d = deps.driver(rs) as Real | undefined;
      hosts.set(rs, d && typeof d.domstate === 'function' ? new DryHost(rs, d, wouldRun, probes) : undefined);
    }
    return hosts.get(rs);
  };
  let clock = now0;
  const steps: StepEvent[] = [];
  let backup = '-';
  const failure: FailureInput = { target, detectedBy, kind: open?.kind ?? 'network', ...(req.need ? { need: req.need } : {}) };
  let outcome: Rehearsal['outcome'];
  let candidates: Candidate[] | undefined;
  let placement: Placement | undefined;
  try {
    const r = await runBackupPlan(
      failure,
      {
        files: copy,
        driver: dry,
        assignRole: deps.roleConfigured ? async () => undefined : undefined,
        isolation: deps.isolation,
        odReady: deps.readinessCheck ? async (p) => void wouldRun.push({ realServer: p.realServer, command: `wait for the SSH banner of ${p.od} at ${p.address}` }) : undefined,
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
          await new Promise<void>((res) => setImmediate(res));
        },
        onStep: (e) => steps.push(e),
      },
      settings,
    );
    backup = r.backup;
    placement = r.placement;
    outcome = { ok: true, text: `${target} -> ${r.backup} on ${r.realServer} (OD ${r.od})` };
  } catch (e) {
    const re = e instanceof RecoveryError ? e : undefined;
    candidates = re?.candidates as Candidate[] | undefined;
    outcome = { ok: false, step: re?.step ?? 'input', kind: re?.kind, reason: errorText(e) };
    backup = copy.get('problem', target)?.[4] ?? '-';
  }

  const fenceEvents = steps.filter((e) => e.step === 'fence');
  const fenceDetail = fenceEvents[fenceEvents.length - 1];
  const confirm = steps.find((e) => e.step === 'confirm');
  const place = [...steps].reverse().find((e) => e.step === 'place' && e.detail?.placement);
  placement ??= place?.detail?.placement as Placement | undefined;
  const install = steps.find((e) => e.step === 'install');
  const firstProbe = probes.find((p) => p.realServer === member.realServer && p.command === `virsh domstate ${target}`);
  const notReached = fenceDetail?.detail?.fence === 'host-not-reached' || (!fenceDetail && outcome.ok === false && ['unconfirmed', 'isolation'].includes(String(outcome.kind)));
  const skippedOds = steps
    .filter((e) => e.step === 'resume' && e.detail?.state !== undefined)
    .map((e) => ({ od: String(e.detail!.od), state: String(e.detail!.state), text: e.text }));
  const usedHost = placement ? hosts.get(placement.realServer) : undefined;
  return {
    target,
    rehearsedOn: real.identity.hostname,
    at: now0,
    detection,
    fence: {
      realServer: member.realServer,
      how: notReached ? 'host-not-reached' : (fenceDetail?.detail?.fence as string | undefined),
      stateNow: firstProbe?.answer ?? (dry(member.realServer) ? undefined : `no driver configured for ${member.realServer}`),
      detail: fenceDetail?.text,
    },
    confirmation: {
      needed: notReached,
      minimum: MIN_CONFIRMERS,
      confirmedBy: confirm?.detail?.confirmedBy as string[] | undefined,
      isolation: confirm?.detail?.isolation as string | undefined,
      ifHostFails,
    },
    ...(placement ? { placement: { realServer: placement.realServer, od: placement.od, address: placement.address, candidates: placement.candidates } } : {}),
    ...(candidates ? { candidates } : {}),
    skippedOds,
    ...(install ? { procedure: { path: String(install.detail?.path), checked: !!usedHost?.procedureChecked, variables: (install.detail?.variables ?? {}) as Record<string, unknown> } } : {}),
    role: { backup, configured: deps.roleConfigured },
    outcome,
    edits: copy.lines.slice(),
    wouldRun,
    probes,
    steps: steps.map((e) => ({ step: e.step, text: e.text, ...(e.parallel ? { parallel: e.parallel } : {}) })),
  };
}
