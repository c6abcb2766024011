// The phases of one recovery in bench:failover, read from the VMs' own logs (the manager's and the
// OD's SEM log, the starter's step lines), so a run's time from the kill to the group file updated
// everywhere can be told apart step by step (docs/recovery.md, "Where the time goes"). All times
// are ms; every VM runs on this machine, so their clocks are one clock.
//
//   detect    kill -> the manager applied `detected` (the heartbeat's phase and probe)
//   reexam    `detected` -> `confirmed` (the configured re-examination, plus its lateness)
//   claim     `confirmed` -> `fencing` (the msg through the flow, the placement, the claim)
//   fence     `fencing` -> `recovering` (the destroy over SSH; the OD resumed beside it)
//   toOd      `recovering` -> the OD got the role call (sealing and sending it)
//   odRole    the OD's own time for the role (switch + durable role file), its log
//   install   the starter's install step (SSH exec, /bin/sh, the procedure's curl to the OD)
//   role      the starter's role step (the call, the OD's answer)
//   both      `recovering` -> `recovered` applied (install and role, side by side, then the commit's local apply)
//   acks      `recovered` applied -> every peer acknowledged that batch (the manager's `sent` line)
//   spread    `recovered` applied -> the bench saw the group file updated on every live VM
import type { RecoveryCluster } from '../harness/recovery/recovery-cluster';

export type Phase = 'detect' | 'reexam' | 'claim' | 'fence' | 'toOd' | 'odRole' | 'install' | 'role' | 'both' | 'acks' | 'spread';
export const PHASES: readonly Phase[] = ['detect', 'reexam', 'claim', 'fence', 'toOd', 'odRole', 'install', 'role', 'both', 'acks', 'spread'];

interface LogLine {
  at: number;
  kind: string;
  text: string;
}

function semLines(rc: RecoveryCluster, vm: string, sinceEpoch: number): LogLine[] {
  const out: LogLine[] = [];
  for (const l of rc.fileOf(vm, 'sem.log').split('\n')) {
    const m = /^(\S+) (applied|sent|refused) (.*)$/.exec(l);
    if (!m) continue;
    const at = Date.parse(m[1]);
    if (at >= sinceEpoch) out.push({ at, kind: m[2], text: m[3] });
  }
  return out;
}

/** The new record's status of a local `applied problem` line about `target` (the diff's second record). */
function statusOf(text: string, target: string): string | undefined {
  const m = /^problem, (Add|Mod), (.*?)(?: \| |$)/.exec(text);
  if (!m) return undefined;
  const f = m[2].split(', ');
  // Add: one record (target, detectedBy, kind, status, ...); Mod: before then after, each starting with the target.
  const starts = f.map((x, i) => (x === target ? i : -1)).filter((i) => i >= 0);
  const at = m[1] === 'Add' ? starts[0] : starts[starts.length - 1];
  return at === undefined ? undefined : f[at + 3];
}

/**
 * One recovery's phases; a phase whose log line was not found is left out. `killEpoch` is the
 * kill's wall-clock time, `groupEpoch` when the bench saw the group file updated everywhere.
 */
export function recoveryPhases(rc: RecoveryCluster, target: string, od: string, killEpoch: number, groupEpoch: number, starterLog: string): Partial<Record<Phase, number>> {
  const out: Partial<Record<Phase, number>> = {};
  const manager = rc.memberNames.find((n) => semLines(rc, n, killEpoch).some((l) => l.kind === 'applied' && /local=1/.test(l.text) && statusOf(l.text, target) === 'fencing'));
  if (!manager) return out;
  const lines = semLines(rc, manager, killEpoch);
  const firstStatus = (status: string) => lines.find((l) => l.kind === 'applied' && /local=1/.test(l.text) && statusOf(l.text, target) === status)?.at;
  const detected = firstStatus('detected');
  const confirmed = firstStatus('confirmed');
  const fencing = firstStatus('fencing');
  const recovering = firstStatus('recovering');
  const recovered = firstStatus('recovered');
  const ackedAt = lines.find((l) => l.kind === 'sent' && /acked=/.test(l.text) && statusOf(l.text, target) === 'recovered')?.at;
  const d = (a?: number, b?: number) => (a !== undefined && b !== undefined ? b - a : undefined);
  const set = (k: Phase, v: number | undefined) => {
    if (v !== undefined && Number.isFinite(v)) out[k] = v;
  };
  set('detect', d(killEpoch, detected));
  set('reexam', d(detected, confirmed));
  set('claim', d(confirmed, fencing));
  set('fence', d(fencing, recovering));
  set('both', d(recovering, recovered));
  set('acks', d(recovered, ackedAt));
  set('spread', d(recovered, groupEpoch));
  const odLines = semLines(rc, od, killEpoch);
  set('toOd', d(recovering, odLines.find((l) => /^role call from /.test(l.text))?.at));
  const taken = odLines.map((l) => /^role \S+ taken in (\d+) ms/.exec(l.text)).find(Boolean);
  if (taken) out.odRole = Number(taken[1]);
  for (const step of ['install', 'role'] as const) {
    const m = new RegExp(`\\] ${target}: ${step} (\\d+) ms \\(at`).exec(starterLog);
    if (m) out[step] = Number(m[1]);
  }
  return out;
}
