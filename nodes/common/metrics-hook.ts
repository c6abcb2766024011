// The metrics endpoint: GET /p2p-ha/metrics (permission p2p-ha.read) in the Prometheus text
// format (lib/ops/metrics.ts), fed by this runtime's stores and heartbeats through the cluster
// registry. Counters count what this VM saw since its start: its heartbeats' transitions, its SEM
// fan-outs (ack latency per peer), the catch-ups and refusals of its store, and every failover of
// the cluster as the replicated problem file told it (so any one VM's endpoint shows them all).
// Gauges are read from the files at each scrape. Installed once per runtime by the sidebar plugin.
import { Metrics, reasonClass } from '../../lib/ops/metrics';
import type { ChangeEvent, ClusterFiles, PeerAck, PeerFailure, RefusalEvent } from '../../lib/records/cluster-api';
import { fromMember, fromProblem, fromRealServer } from '../../lib/records/records';
import { registry, type HeartbeatSource } from './cluster-registry';
import type { RED } from './node-red';

const HELP: Record<string, string> = {
  p2p_ha_heartbeat_transitions_total: 'Heartbeat state changes of the targets this VM watches, by new state (reexamining: a re-examination began)',
  p2p_ha_heartbeat_targets: 'Targets this VM watches, by state and priority',
  p2p_ha_starvation_events_total: 'Times this VM found itself starved (event loop late or CPU stalled) and held its verdicts',
  p2p_ha_sem_ack_seconds: "Time from sending a diff to a peer's acknowledgement, per peer",
  p2p_ha_sem_unacked_total: 'Diffs a peer did not acknowledge (caught up later by anti-entropy)',
  p2p_ha_sem_changes_total: "Changes applied to this VM's files, by file and how they came (edit, diff, sync: anti-entropy catch-up)",
  p2p_ha_sem_refused_total: "Messages refused by this VM's store, by kind of reason",
  p2p_ha_failovers_total: 'Failovers of the cluster seen in the problem file, by outcome (recovered, failed)',
  p2p_ha_recovery_step_seconds: 'How long a failure stayed in each problem status, as seen by this VM',
  p2p_ha_recovery_seconds: 'From detection to recovered, per failover',
  p2p_ha_members: 'Members of the group file, by state',
  p2p_ha_problems_open: 'Failures being handled now (detected to recovering)',
  p2p_ha_ods: 'Available original servers (ODs), per real server',
  p2p_ha_real_server_up: 'Real servers: 1 up, 0 down or in maintenance (state label says which)',
  p2p_ha_real_server_load: 'Load per CPU of each real server (realserver file)',
  p2p_ha_real_server_vms: 'Active VMs of each real server (realserver file)',
  p2p_ha_real_server_free_memory_mib: 'Free memory of each real server, MiB (when the collector reads capacity)',
};
const h = (name: string) => HELP[name];
const OPEN = ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering'];

export class ClusterMetrics {
  readonly metrics = new Metrics();
  private readonly followed = new WeakSet<object>();
  /** Per target: the status it entered last and when (this VM's clock), for the step durations. */
  private readonly lastStatus = new Map<string, { status: string; at: number; since: string }>();

  constructor() {
    for (const name of ['p2p_ha_heartbeat_transitions_total', 'p2p_ha_sem_unacked_total', 'p2p_ha_sem_changes_total', 'p2p_ha_sem_refused_total', 'p2p_ha_failovers_total', 'p2p_ha_starvation_events_total']) {
      this.metrics.declare(name, h(name), 'counter');
    }
    for (const name of ['p2p_ha_sem_ack_seconds', 'p2p_ha_recovery_step_seconds', 'p2p_ha_recovery_seconds']) this.metrics.declare(name, h(name), 'histogram');
  }

  followStore(files: ClusterFiles): void {
    if (this.followed.has(files)) return;
    this.followed.add(files);
    files.on('change', (c: ChangeEvent) => this.onChange(c));
    files.on('refused', (r: RefusalEvent) => this.metrics.inc('p2p_ha_sem_refused_total', h('p2p_ha_sem_refused_total'), { reason: reasonClass(r.reason) }));
    files.on('sent', (s: { acked: PeerAck[]; failed: PeerFailure[] }) => {
      for (const a of s.acked) this.ackOf(a.peer)(a.ms / 1000);
      for (const f of s.failed) this.metrics.inc('p2p_ha_sem_unacked_total', h('p2p_ha_sem_unacked_total'), { peer: f.peer });
    });
  }

  followHeartbeat(source: HeartbeatSource): void {
    if (this.followed.has(source.heartbeat)) return;
    this.followed.add(source.heartbeat);
    source.heartbeat.on('transition', (t: { to: string }) => this.metrics.inc('p2p_ha_heartbeat_transitions_total', h('p2p_ha_heartbeat_transitions_total'), { to: t.to }));
  }

  /** The per-diff series, found once each (a diff on every VM, five acks per edit on its sender). */
  private readonly changeCounters = new Map<string, (by?: number) => void>();
  private readonly ackHistograms = new Map<string, (v: number) => void>();

  private ackOf(peer: string): (v: number) => void {
    let f = this.ackHistograms.get(peer);
    if (!f) this.ackHistograms.set(peer, (f = this.metrics.histogramOf('p2p_ha_sem_ack_seconds', h('p2p_ha_sem_ack_seconds'), { peer })));
    return f;
  }

  onChange(c: ChangeEvent, now = Date.now()): void {
    const k = `${c.file}\n${c.via}`;
    let count = this.changeCounters.get(k);
    if (!count) this.changeCounters.set(k, (count = this.metrics.counterOf('p2p_ha_sem_changes_total', h('p2p_ha_sem_changes_total'), { file: c.file, via: c.via })));
    count();
    if (c.file !== 'problem' || c.op === 'Del') return;
    const p = fromProblem(c.record);
    const last = this.lastStatus.get(p.target);
    if (last && last.status === p.status && last.since === p.since) return;
    if (last && last.since === p.since && OPEN.includes(last.status)) {
      this.metrics.observe('p2p_ha_recovery_step_seconds', h('p2p_ha_recovery_step_seconds'), { step: last.status }, (now - last.at) / 1000);
    }
    this.lastStatus.set(p.target, { status: p.status, at: now, since: p.since });
    if (p.status === 'recovered' || p.status === 'failed') {
      this.metrics.inc('p2p_ha_failovers_total', h('p2p_ha_failovers_total'), { outcome: p.status });
      const since = Date.parse(p.since);
      if (p.status === 'recovered' && Number.isFinite(since)) this.metrics.observe('p2p_ha_recovery_seconds', h('p2p_ha_recovery_seconds'), {}, Math.max(0, now - since) / 1000);
    }
  }

  /** Gauges from the files and heartbeats now, then the whole exposition. */
  scrape(files: ClusterFiles | undefined, heartbeats: HeartbeatSource[]): string {
    const m = this.metrics;
    for (const g of ['p2p_ha_heartbeat_targets', 'p2p_ha_members', 'p2p_ha_problems_open', 'p2p_ha_ods', 'p2p_ha_real_server_up', 'p2p_ha_real_server_load', 'p2p_ha_real_server_vms', 'p2p_ha_real_server_free_memory_mib']) {
      m.resetGauge(g);
    }
    let starved = 0;
    const targets = new Map<string, number>();
    for (const hb of heartbeats) {
      starved += hb.starvedEvents();
      for (const w of hb.heartbeat.summary()) targets.set(`${w.state}|${w.priority}`, (targets.get(`${w.state}|${w.priority}`) ?? 0) + 1);
    }
    m.setCounter('p2p_ha_starvation_events_total', h('p2p_ha_starvation_events_total'), {}, starved);
    for (const [k, n] of targets) {
      const [state, priority] = k.split('|');
      m.set('p2p_ha_heartbeat_targets', h('p2p_ha_heartbeat_targets'), { state, priority }, n);
    }
    if (files) {
      const members = new Map<string, number>();
      for (const mem of files.records('group').map(fromMember)) members.set(mem.state, (members.get(mem.state) ?? 0) + 1);
      for (const [state, n] of members) m.set('p2p_ha_members', h('p2p_ha_members'), { state }, n);
      m.set('p2p_ha_problems_open', h('p2p_ha_problems_open'), {}, files.records('problem').filter((r) => OPEN.includes(fromProblem(r).status)).length);
      const ods = files.records('available-od');
      const hosts = files.records('realserver').map(fromRealServer);
      for (const rs of hosts) {
        const l = { real_server: rs.realServer };
        m.set('p2p_ha_ods', h('p2p_ha_ods'), l, ods.filter((o) => o[2] === rs.realServer).length);
        m.set('p2p_ha_real_server_up', h('p2p_ha_real_server_up'), { ...l, state: rs.state }, rs.state === 'up' ? 1 : 0);
        m.set('p2p_ha_real_server_load', h('p2p_ha_real_server_load'), l, rs.load);
        m.set('p2p_ha_real_server_vms', h('p2p_ha_real_server_vms'), l, rs.vmCount);
        if (rs.freeMemMiB !== undefined) m.set('p2p_ha_real_server_free_memory_mib', h('p2p_ha_real_server_free_memory_mib'), l, rs.freeMemMiB);
      }
    }
    return m.text();
  }
}

export function installMetrics(red: RED): ClusterMetrics {
  const cm = new ClusterMetrics();
  for (const f of registry.storeList()) cm.followStore(f);
  for (const s of registry.heartbeats.values()) cm.followHeartbeat(s);
  registry.on('store', (f: ClusterFiles) => cm.followStore(f));
  registry.on('heartbeat', (_id: string, s: HeartbeatSource) => cm.followHeartbeat(s));
  red.httpAdmin.get(
    '/p2p-ha/metrics',
    red.auth.needsPermission('p2p-ha.read'),
    (_req: unknown, res: { set(k: string, v: string): void; status(c: number): { send(b: string): void }; send(b: string): void }) => {
      try {
        res.set('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
        res.send(cm.scrape(registry.primary(), [...registry.heartbeats.values()]));
      } catch (e) {
        res.status(500).send(`# error: ${(e as Error).message}\n`);
      }
    },
  );
  return cm;
}
