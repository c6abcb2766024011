// The runtime's shared view of its cluster for the editor sidebar: the p2p-store nodes register
// here, and nodes report the steps of a failover (placed, resumed, installed...) and countdowns
// (re-examination) that the files alone do not show. One instance per Node-RED runtime (this
// module is loaded once from the package folder, by the nodes and the sidebar plugin alike).
import { EventEmitter } from 'events';
import type { ChangeEvent, ClusterFiles, IsolationGate } from '../../lib/records/cluster-api';
import type { Countdown, IsolationView, TimelineEntry } from '../../lib/view/cluster-view';

/** What a heartbeat node publishes for its store: the gate, and the isolation state for the sidebar. */
export interface IsolationSource extends IsolationGate {
  view(): IsolationView;
}
import { eventsFromChange } from '../../lib/ops/events';

const MAX_TIMELINE = 300;

/** What the metrics read of a heartbeat: its events and summary, and its starvation meter's count. */
export interface HeartbeatSource {
  heartbeat: EventEmitter & { summary(): { state: string; priority: string }[] };
  starvedEvents(): number;
}

export class ClusterRegistry extends EventEmitter {
  private readonly stores = new Map<string, { files: ClusterFiles; off: () => void }>();
  readonly timeline: TimelineEntry[] = [];
  private readonly countdowns = new Map<string, Countdown>();
  /** Keyed by the store's ClusterFiles object (one heartbeat per store publishes it). */
  private readonly gates = new Map<ClusterFiles, IsolationSource>();

  /** The heartbeats of this runtime, for the metrics (metrics-hook.ts): id -> source. */
  readonly heartbeats = new Map<string, HeartbeatSource>();

  addHeartbeat(id: string, source: HeartbeatSource): void {
    this.heartbeats.set(id, source);
    this.emit('heartbeat', id, source);
  }

  removeHeartbeat(id: string): void {
    this.heartbeats.delete(id);
  }

  /** The stores of this runtime (metrics-hook.ts follows their events). */
  storeList(): ClusterFiles[] {
    return [...this.stores.values()].map((s) => s.files);
  }

  /** The stores of this runtime with their p2p-store node ids (role-endpoint.ts). */
  storeEntries(): { id: string; files: ClusterFiles }[] {
    return [...this.stores.entries()].map(([id, s]) => ({ id, files: s.files }));
  }

  /** Where each new timeline step is also kept (the lasting history, history-hook.ts). */
  private recorder?: (e: TimelineEntry) => void;

  setRecorder(fn: ((e: TimelineEntry) => void) | undefined): void {
    this.recorder = fn;
  }

  /** Put steps read back from the lasting history before the ones of this run (not recorded again). */
  restore(entries: TimelineEntry[]): void {
    const have = new Set(this.timeline.map((e) => `${e.at}|${e.target}|${e.step}`));
    const older = entries.filter((e) => !have.has(`${e.at}|${e.target}|${e.step}`));
    this.timeline.unshift(...older);
    if (this.timeline.length > MAX_TIMELINE) this.timeline.splice(0, this.timeline.length - MAX_TIMELINE);
    this.emit('changed');
  }

  addStore(id: string, files: ClusterFiles): void {
    this.removeStore(id);
    // A problem record's status change is a step of its failover's timeline.
    const onChange = (c: ChangeEvent) => {
      if (c.file === 'problem' && c.op !== 'Del') {
        const [target, detectedBy, kind, status, , , note] = c.record;
        // The note says why a recovery failed (step, kind, reason): it is that step's reason.
        this.step({ target, step: status, at: Date.now(), by: detectedBy, detail: note ? `${kind}: ${note}` : kind });
      } else if (c.file !== 'problem') {
        // Host down/up, maintenance on/off, OD pool empty: steps of the timeline too (lib/ops/events).
        for (const e of eventsFromChange(c, files, Date.now())) this.step({ target: e.subject, step: e.kind, at: e.at, by: e.by, detail: e.text });
      }
      this.emit('changed');
    };
    files.on('change', onChange);
    this.stores.set(id, { files, off: () => files.off('change', onChange) });
    this.emit('store', files);
    this.emit('changed');
  }

  removeStore(id: string): void {
    const s = this.stores.get(id);
    if (!s) return;
    s.off();
    this.stores.delete(id);
    this.emit('changed');
  }

  /** The first store of this runtime (one per VM in every deployment we know). */
  primary(): ClusterFiles | undefined {
    return this.stores.values().next().value?.files;
  }

  /**
   * The isolation gate of a store (issue 12): the heartbeat node of that store sets it on start and
   * clears it on close (pass the same source so a newer node's is not removed by an older one).
   */
  setIsolationGate(files: ClusterFiles, source: IsolationSource | undefined, owner?: IsolationSource): void {
    if (source) this.gates.set(files, source);
    else if (!owner || this.gates.get(files) === owner) this.gates.delete(files);
    this.emit('changed');
  }

  /**
   * The IsolationGate for a store, or undefined when no heartbeat node runs on it. A recovery
   * whose fence could not reach the host must treat undefined as "not allowed" (nothing knows
   * whether this side holds a majority).
   */
  isolationGate(files: ClusterFiles): IsolationGate | undefined {
    return this.gates.get(files);
  }

  /** The isolation state of a store for the sidebar, if a heartbeat runs on it. */
  isolationView(files: ClusterFiles): IsolationView | undefined {
    try {
      return this.gates.get(files)?.view();
    } catch {
      return undefined;
    }
  }

  step(e: TimelineEntry): void {
    const last = this.timeline[this.timeline.length - 1];
    if (last && last.target === e.target && last.step === e.step && last.by === e.by) return;
    this.timeline.push(e);
    try {
      this.recorder?.(e);
    } catch {
      /* the history's own errors are reported by its hook; the timeline goes on */
    }
    if (this.timeline.length > MAX_TIMELINE) this.timeline.splice(0, this.timeline.length - MAX_TIMELINE);
    this.emit('changed');
  }

  countdown(c: Countdown | { target: string; what: string; until: 0 }): void {
    if (c.until <= 0) this.countdowns.delete(`${c.target}:${c.what}`);
    else this.countdowns.set(`${c.target}:${c.what}`, c);
    this.emit('changed');
  }

  activeCountdowns(now = Date.now()): Countdown[] {
    return Array.from(this.countdowns.values()).filter((c) => c.until > now);
  }
}

const KEY = Symbol.for('@p2p-ha/node-red-server-manager/cluster-registry');
/** The runtime-wide registry (kept on a global symbol so two copies of this module share it). */
export const registry: ClusterRegistry = ((globalThis as Record<symbol, unknown>)[KEY] as ClusterRegistry) ??
  ((globalThis as Record<symbol, unknown>)[KEY] = new ClusterRegistry());
