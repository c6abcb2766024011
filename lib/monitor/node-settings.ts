// What the p2p-heartbeat node needs besides the heartbeat itself: its settings from the editor's
// config (validated, in ms) and its one-line status. Pure; no Node-RED import.
import { HEARTBEAT_DEFAULTS, HeartbeatSettings, WatchSummary } from './heartbeat';
import { ISOLATION_DEFAULTS, IsolationSettings, IsolationState, validateIsolationSettings } from './isolation';

/** The shape of a Node-RED node status. */
export interface StatusLine {
  fill: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape: 'ring' | 'dot';
  text: string;
}

export interface HeartbeatConfig {
  name?: string;
  store?: string;
  interval?: string | number;
  timeout?: string | number;
  reexamNetwork?: string | number;
  reexamService?: string | number;
  takeoverGrace?: string | number;
  settle?: string | number;
  /** Share of time (%) the monitor waits for a CPU above which it counts as starved; 0 = off. */
  cpuWait?: string | number;
  /** T_iso (ms): without a majority for this long, this VM stops serving (isolation.ts). */
  isolationTime?: string | number;
  /** Added to T_iso by a recovering VM before it replaces an unfenceable target (ms). */
  isolationMargin?: string | number;
}

export interface NodeSettings {
  heartbeat: Partial<HeartbeatSettings>;
  /** For the starvation meter: share of time (0..1) the monitor waits for a CPU; 0 = off. */
  cpuThreshold: number;
  isolation: IsolationSettings;
}

export const DEFAULT_CPU_WAIT_PERCENT = 50;

function short(text: string, n = 60): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

/** The node's settings (times in ms); throws a clear error for a bad one (and nothing starts). */
export function parseSettings(config: HeartbeatConfig): NodeSettings {
  const fields: [keyof HeartbeatConfig, keyof HeartbeatSettings, number, number][] = [
    ['interval', 'intervalMs', 50, 600_000],
    ['timeout', 'timeoutMs', 10, 60_000],
    ['reexamNetwork', 'reexamNetworkMs', 1, 600_000],
    ['reexamService', 'reexamServiceMs', 1, 600_000],
    ['takeoverGrace', 'takeoverGraceMs', 0, 600_000],
    ['settle', 'settleMs', 0, 60_000],
  ];
  const out: Partial<HeartbeatSettings> = {};
  for (const [key, setting, min, max] of fields) {
    const raw = config[key];
    if (raw === undefined || raw === '') continue;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${key} is ${JSON.stringify(raw)}: expected ${min}..${max} ms`);
    out[setting] = v;
  }
  const interval = out.intervalMs ?? HEARTBEAT_DEFAULTS.intervalMs;
  const timeout = out.timeoutMs ?? HEARTBEAT_DEFAULTS.timeoutMs;
  if (timeout >= interval) throw new Error(`timeout (${timeout} ms) must be shorter than the interval (${interval} ms)`);
  let cpu = DEFAULT_CPU_WAIT_PERCENT;
  if (config.cpuWait !== undefined && config.cpuWait !== '') {
    cpu = Number(config.cpuWait);
    if (!Number.isFinite(cpu) || cpu < 0 || cpu > 100) throw new Error(`cpuWait is ${JSON.stringify(config.cpuWait)}: expected 0..100 %`);
  }
  const iso: IsolationSettings = { ...ISOLATION_DEFAULTS };
  for (const [key, setting] of [
    ['isolationTime', 'tIsoMs'],
    ['isolationMargin', 'marginMs'],
  ] as const) {
    const raw = config[key];
    if (raw === undefined || raw === '') continue;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < 1 || v > 600_000) throw new Error(`${key} is ${JSON.stringify(raw)}: expected 1..600000 ms`);
    iso[setting] = v;
  }
  return { heartbeat: out, cpuThreshold: cpu / 100, isolation: validateIsolationSettings(iso) };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A status text by message id (the node translates it; the default is the English given). */
export type SayStatus = (id: string, values: Record<string, string>, english: string) => string;
const english: SayStatus = (_id, _v, text) => text;

/**
 * The isolation state's status line when it must win over the watches' (stopped, or about to
 * stop), else undefined.
 */
export function isolationStatus(st: IsolationState, stopAsserted: boolean): StatusLine | undefined {
  const reach = `${st.reachable.length}/${st.voters.length} reachable, ${st.needed} needed`;
  if (st.state === 'fenced') return { fill: 'red', shape: 'dot', text: short('fenced (replaced): service stopped until re-admitted') };
  if (st.state === 'isolated' || (stopAsserted && st.state !== 'majority')) {
    return { fill: 'red', shape: 'dot', text: short(`isolated: service stopped (${reach})`) };
  }
  if (st.state === 'no-majority') return { fill: 'yellow', shape: 'ring', text: short(`no majority (${reach})`) };
  return undefined;
}

/** One status line: the worst target first; green while all is well. */
export function statusOf(watches: WatchSummary[], me: string, starved: string | undefined, say: SayStatus = english): StatusLine {
  if (watches.length === 0) return { fill: 'grey', shape: 'ring', text: say('watchingNobody', { me }, `${me}: watching nobody`) };
  const failed = watches.find((w) => w.state === 'confirmed');
  if (failed) {
    const v = { target: failed.target, kind: failed.kind ?? '', winner: failed.winner ?? '', phase: failed.phase ?? '' };
    switch (failed.phase) {
      case 'acted':
        return { fill: 'red', shape: 'dot', text: short(say('failedHere', v, `${v.target} failed (${v.kind}): handled here`)) };
      case 'stood-down':
        return { fill: 'red', shape: 'ring', text: short(say('failedElsewhere', v, `${v.target} failed (${v.kind}): ${v.winner} handles it`)) };
      default:
        return { fill: 'red', shape: 'ring', text: short(say('failedP2', v, `${v.target} failed (${v.kind}): ${v.phase} (P2)`)) };
    }
  }
  const suspect = watches.find((w) => w.state === 'suspect' || w.state === 'reexamining');
  if (suspect) {
    const v = { target: suspect.target, state: suspect.state, kind: suspect.kind ?? '', left: secs(suspect.remainingMs ?? 0) };
    return {
      fill: 'yellow',
      shape: 'ring',
      text: short(say(suspect.state === 'suspect' ? 'suspect' : 'reexamining', v, `${v.target} ${v.state} (${v.kind}): ${v.left} left`)),
    };
  }
  const list = watches.map((w) => `${w.priority} ${w.target}`).join(', ');
  if (starved) return { fill: 'yellow', shape: 'dot', text: short(say('starved', { list, why: starved }, `${list}; verdicts suspended: ${starved}`)) };
  return { fill: 'green', shape: 'dot', text: short(say('watching', { list }, `watching ${list}`)) };
}
