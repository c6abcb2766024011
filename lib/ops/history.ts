// The lasting failover history (issue 15): every step of every failover and every cluster event
// this VM saw, appended as one JSON line each to <userDir>/p2p-ha-history/history.jsonl, so that
// "what happened at 03:12 last night" has an answer after restarts and after sem.log rotated.
// Kept on every VM (each records what its replicated files told it, plus the steps it ran itself).
//
// Rotation: when the current file passes maxBytes it is renamed history-<UTC time>.jsonl and a new
// one begun; rotated files older than maxAgeMs (by their last write) or beyond maxFiles are
// deleted. A torn last line (a kill in mid-append) is skipped when read. No Node-RED here.
import * as fs from 'fs';
import * as path from 'path';

export interface HistoryEntry {
  /** epoch ms */
  at: number;
  /** The VM, real server or pool the step is about. */
  target: string;
  /** detected, confirmed, fenced, placed, resumed, recovered, failed, host-down, maintenance-on, ... */
  step: string;
  /** The manager that took the step (or wrote the change). */
  by?: string;
  detail?: string;
  /** How long the step took, ms (the backup plan's steps). */
  ms?: number;
  /** The reason of the step's decision (lib/ops/failover-steps.ts): kept as JSON, at most MAX_WHY characters. */
  why?: Record<string, unknown>;
}

export interface HistoryOptions {
  dir: string;
  /** Rotate the current file beyond this size (bytes). */
  maxBytes?: number;
  /** Delete rotated files last written longer ago than this (ms). */
  maxAgeMs?: number;
  /** Keep at most this many rotated files. */
  maxFiles?: number;
  now?: () => number;
}

export const HISTORY_DEFAULTS = { maxBytes: 4 * 1024 * 1024, maxAgeMs: 90 * 24 * 3600_000, maxFiles: 20 };
export const CURRENT = 'history.jsonl';
const ROTATED_RE = /^history-(\d{8}T\d{6}(?:\d{3})?Z)(?:-\d+)?\.jsonl$/;
/** The largest field we keep: a detail is one line of text, not a log dump. */
const MAX_TEXT = 500;
/** The largest reason kept (JSON characters). */
const MAX_WHY = 4000;

function clean(e: HistoryEntry): HistoryEntry | undefined {
  if (!e || typeof e !== 'object') return undefined;
  if (!Number.isFinite(e.at) || typeof e.target !== 'string' || typeof e.step !== 'string') return undefined;
  const out: HistoryEntry = { at: Math.floor(e.at), target: e.target.slice(0, 64), step: e.step.slice(0, 64) };
  if (typeof e.by === 'string' && e.by) out.by = e.by.slice(0, 64);
  if (typeof e.detail === 'string' && e.detail) out.detail = e.detail.replace(/[\r\n]+/g, ' ').slice(0, MAX_TEXT);
  if (typeof e.ms === 'number' && Number.isFinite(e.ms) && e.ms >= 0) out.ms = Math.round(e.ms);
  if (e.why && typeof e.why === 'object' && !Array.isArray(e.why) && JSON.stringify(e.why).length <= MAX_WHY) out.why = e.why;
  return out;
}

export class History {
  readonly dir: string;
  private readonly o: Required<Omit<HistoryOptions, 'dir'>>;

  constructor(options: HistoryOptions) {
    this.dir = options.dir;
    this.o = { ...HISTORY_DEFAULTS, now: Date.now, ...options } as Required<Omit<HistoryOptions, 'dir'>>;
    fs.mkdirSync(this.dir, { recursive: true });
  }

  get file(): string {
    return path.join(this.dir, CURRENT);
  }

  /** Append one entry (synchronously: the order of the file is the order of the calls). */
  append(entry: HistoryEntry): void {
    const e = clean(entry);
    if (!e) throw new Error('a history entry needs at (ms), target and step');
    fs.appendFileSync(this.file, JSON.stringify(e) + '\n');
    let size = 0;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      return;
    }
    if (size >= this.o.maxBytes) this.rotate();
  }

  /** Rename the current file aside and prune old rotated files. */
  rotate(): void {
    const stamp = new Date(this.o.now()).toISOString().replace(/[-:]/g, '').replace('.', '');
    let name = `history-${stamp}.jsonl`;
    for (let i = 1; fs.existsSync(path.join(this.dir, name)); i++) name = `history-${stamp}-${i}.jsonl`;
    try {
      fs.renameSync(this.file, path.join(this.dir, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.prune();
  }

  /** The rotated files, oldest first. */
  rotated(): string[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.dir).filter((n) => ROTATED_RE.test(n));
    } catch {
      return [];
    }
    return names.sort();
  }

  prune(): void {
    const now = this.o.now();
    const files = this.rotated();
    files.forEach((n, i) => {
      const p = path.join(this.dir, n);
      let old = false;
      try {
        old = now - fs.statSync(p).mtimeMs > this.o.maxAgeMs;
      } catch {
        return;
      }
      if (old || i < files.length - this.o.maxFiles) fs.rmSync(p, { force: true });
    });
  }

  /** Entries in time order (file order), filtered. */
  read(filter: { since?: number; until?: number; target?: string; limit?: number } = {}): HistoryEntry[] {
    return readHistory(this.dir, filter);
  }
}

/** Read a history folder (also for the command line, which has no History instance). */
export function readHistory(dir: string, filter: { since?: number; until?: number; target?: string; limit?: number } = {}): HistoryEntry[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => ROTATED_RE.test(n)).sort();
  } catch {
    return [];
  }
  names.push(CURRENT);
  const out: HistoryEntry[] = [];
  for (const n of names) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(dir, n), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      let e: HistoryEntry | undefined;
      try {
        e = clean(JSON.parse(line));
      } catch {
        continue; // a torn or foreign line
      }
      if (!e) continue;
      if (filter.since !== undefined && e.at < filter.since) continue;
      if (filter.until !== undefined && e.at > filter.until) continue;
      if (filter.target !== undefined && e.target !== filter.target) continue;
      out.push(e);
    }
  }
  return filter.limit !== undefined ? out.slice(-filter.limit) : out;
}

/**
 * A time from the command line: `03:00` or `03:00:30` (local time today, or yesterday when that
 * is still to come), `30m` / `2h` / `3d` ago, or an ISO date-time. Throws on anything else.
 */
export function parseWhen(text: string, now: number = Date.now()): number {
  const t = text.trim();
  let m = /^(\d{1,2}):(\d\d)(?::(\d\d))?$/.exec(t);
  if (m) {
    const [h, min, s] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
    if (h > 23 || min > 59 || s > 59) throw new Error(`${t} is not a time of day`);
    const d = new Date(now);
    d.setHours(h, min, s, 0);
    return d.getTime() > now ? d.getTime() - 24 * 3600_000 : d.getTime();
  }
  m = /^(\d{1,6})([smhd])$/.exec(t);
  if (m) return now - Number(m[1]) * { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d{4}-\d\d-\d\d(?:[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?)?$/.test(t)) {
    const v = Date.parse(t);
    if (Number.isFinite(v)) return v;
  }
  throw new Error(`cannot read the time ${JSON.stringify(t)}: use HH:MM, 30m, 2h, 3d or an ISO date-time`);
}
