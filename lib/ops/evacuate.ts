// Evacuating a real server before its reboot (issue 15): the host goes into maintenance (nothing
// new is placed there), then each of its VMs, one after the other in natural order, goes into
// maintenance (its managers stop watching it), is shut down cleanly and its role moved to an OD on
// another host by the backup plan (lib/recovery/backup-plan.ts) with one change: the fence is a
// planned shutdown (`virsh shutdown`, waiting until the domain is shut off) instead of `virsh
// destroy`; only a VM that does not stop within shutdownWaitMs is destroyed. The others still move.
//
// A move that fails leaves the VM where it was, as a Proxmox migration does (the task shows the
// error; here: the evacuation's answer, the `recovery-failed` alert with the problem record's
// reason, and the sidebar's timeline):
//   - before the VM was stopped (no OD fits anywhere else, checked before the stop; or the
//     shutdown itself failed): it keeps serving, its maintenance is turned off, its problem record
//     is deleted (it is a healthy member again): outcome `kept-serving`;
//   - after it was stopped (the plan fenced it: an installation procedure or the role failed, the
//     ODs were lost): it is started again in place (`virsh start`), taken from `fenced` back to
//     `maintenance` (its managers do not watch it while it boots; the operator turns maintenance
//     off, or reboots the host knowing it), its problem record deleted: `restarted-in-place`. The
//     plan already suspended the half-installed OD, so there is never a second copy. A start that
//     fails leaves it fenced: `left-fenced`, with both reasons.
// The VM running the evacuation is never evacuated by itself (it would stop its own work half-way):
// run it from a VM on another host.
import type { ClusterFiles } from '../records/cluster-api';
import { naturalCompare } from '../records/natural-sort';
import { fromMember, toMember } from '../records/records';
import { runBackupPlan, type PlanDeps, type PlanDriver, type RecoveryResult, type StepEvent } from '../recovery/backup-plan';
import { decidePlacement } from '../recovery/placement-decider';
import { PlacementError } from '../recovery/placement';
import { setMaintenance } from './maintenance';

export interface ShutdownDriver extends PlanDriver {
  shutdown(name: string): Promise<void>;
  /** `virsh start`: a VM whose move failed after its stop is started again in place. */
  start?(name: string): Promise<void>;
}

export interface EvacuateDeps {
  files: Pick<ClusterFiles, 'records' | 'get' | 'edit' | 'editBatch' | 'identity'>;
  driver(realServer: string): PlanDriver | undefined;
  assignRole?: PlanDeps['assignRole'];
  onStep?: (vm: string, e: StepEvent) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  signal?: AbortSignal;
}

export interface EvacuateOptions {
  shutdownWaitMs?: number;
  pollMs?: number;
  procedureDir?: string;
}

export interface EvacuationResult {
  realServer: string;
  /** stop: how the VM stopped ('shut down', 'destroyed' past the deadline, 'was off'). */
  moved: { vm: string; backup: string; realServer: string; stop: string }[];
  failed: { vm: string; error: string; outcome: FailedMove }[];
}

/** Where a VM whose move failed was left (see the header). */
export type FailedMove = 'kept-serving' | 'restarted-in-place' | 'left-fenced';

/** A driver whose destroy is a clean shutdown first (destroy only past the deadline). */
export function plannedShutdownDriver(
  d: PlanDriver,
  waitMs: number,
  pollMs: number,
  sleep: (ms: number) => Promise<void>,
  now: () => number,
  /** How each domain's stop ended: 'was off', 'shut down' or 'destroyed' (past the deadline). */
  outcome: Map<string, string> = new Map(),
): PlanDriver {
  const s = d as Partial<ShutdownDriver>;
  if (typeof s.shutdown !== 'function') return d;
  return {
    ...d,
    destroy: async (name: string) => {
      const state = await d.domstate(name);
      if (state === 'shut off') return void outcome.set(name, 'was off');
      await s.shutdown!(name);
      const deadline = now() + waitMs;
      while (now() < deadline) {
        await sleep(pollMs);
        if ((await d.domstate(name)) === 'shut off') return void outcome.set(name, 'shut down');
      }
      await d.destroy(name);
      outcome.set(name, 'destroyed');
    },
    autostartOff: (n) => d.autostartOff(n),
    suspend: (n) => d.suspend(n),
    domstate: (n) => d.domstate(n),
    resume: (n) => d.resume(n),
    runFile: (p, v, o) => d.runFile(p, v, o),
  };
}

export async function evacuateHost(realServer: string, deps: EvacuateDeps, o: EvacuateOptions = {}): Promise<EvacuationResult> {
  const files = deps.files;
  const me = files.identity.hostname;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const vms = files
    .records('group')
    .map(fromMember)
    .filter((m) => m.realServer === realServer && m.state !== 'fenced')
    .map((m) => m.hostname)
    .sort(naturalCompare);
  if (vms.includes(me)) throw new Error(`${me} runs on ${realServer}: evacuate it from a VM on another real server`);
  if (!deps.driver(realServer)) throw new Error(`no driver configured for real server ${realServer}`);
  if (files.get('realserver', realServer)) await setMaintenance(files, { realServer, on: true });
  const result: EvacuationResult = { realServer, moved: [], failed: [] };
  const stops = new Map<string, string>();
  for (const vm of vms) {
    if (deps.signal?.aborted) throw new Error('evacuation stopped (node closed)');
    // Somewhere to go, before anything is stopped (the host itself is in maintenance: not a candidate).
    try {
      decidePlacement(files, vm, realServer);
    } catch (e) {
      if (!(e instanceof PlacementError)) throw e;
      result.failed.push({ vm, error: `not moved, nowhere to go: ${e.message}`, outcome: 'kept-serving' });
      continue;
    }
    try {
      await setMaintenance(files, { vm, on: true });
      const r: RecoveryResult = await runBackupPlan(
        { target: vm, realServer, detectedBy: me, kind: 'network' },
        {
          files,
          driver: (rs) => {
            const d = deps.driver(rs);
            return d && rs === realServer ? plannedShutdownDriver(d, o.shutdownWaitMs ?? 60_000, o.pollMs ?? 500, sleep, now, stops) : d;
          },
          assignRole: deps.assignRole,
          onStep: (e) => deps.onStep?.(vm, e),
          sleep: deps.sleep,
          now: deps.now,
          signal: deps.signal,
        },
        o.procedureDir ? { procedureDir: o.procedureDir } : {},
      );
      result.moved.push({ vm, backup: r.backup, realServer: r.realServer, stop: stops.get(vm) ?? r.fence });
    } catch (e) {
      const error = (e as Error).message;
      const left = await leaveInPlace(vm, realServer, stops.has(vm), deps);
      result.failed.push({ vm, error: left.why ? `${error}; ${left.why}` : error, outcome: left.outcome });
    }
  }
  return result;
}

/** A failed move: the VM stays where it was (see the header). The outcome, and why when it is left fenced. */
async function leaveInPlace(vm: string, realServer: string, stopped: boolean, deps: EvacuateDeps): Promise<{ outcome: FailedMove; why?: string }> {
  const files = deps.files;
  const forget = async () => {
    const p = files.get('problem', vm);
    if (p) await files.edit({ file: 'problem', op: 'Del', record: p }).catch(() => undefined);
  };
  if (!stopped) {
    await forget();
    const g = files.get('group', vm);
    if (g && fromMember(g).state === 'maintenance') await setMaintenance(files, { vm, on: false }).catch(() => undefined);
    return { outcome: 'kept-serving' };
  }
  const d = deps.driver(realServer) as Partial<ShutdownDriver> | undefined;
  try {
    if (typeof d?.start !== 'function') throw new Error(`the driver of ${realServer} cannot start domains`);
    await d.start(vm);
  } catch (e) {
    return { outcome: 'left-fenced', why: `not started again in place: ${(e as Error).message}` };
  }
  const g = files.get('group', vm);
  if (g && fromMember(g).state === 'fenced') {
    await files.edit({ file: 'group', op: 'Mod', before: g, record: toMember({ ...fromMember(g), state: 'maintenance' }) }).catch(() => undefined);
  }
  await forget();
  return { outcome: 'restarted-in-place' };
}

