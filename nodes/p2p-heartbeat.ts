// p2p-heartbeat: this VM's heartbeat monitor (lib/monitor/heartbeat.ts) as a node. It watches the
// targets the operation file gives this VM, records each suspicion in the replicated problem file,
// and sends a confirmed failure (topic "failure") for the recovery flow, or a suspicion that went
// away (topic "recovered-by-itself"). Any input message is answered with what it watches.
// It also runs the isolation rule (lib/monitor/isolation-monitor.ts): on its second output it
// sends "self-fence" (payload.serve false: stop the service now) when this VM is cut off from a
// majority of the group for T_iso or finds itself fenced, and "rejoined" (payload.serve true) when
// the majority is heard again; it publishes the IsolationGate of its store (cluster-registry.ts)
// and serves POST /p2p-ha/readmit for the operator (lib/monitor/readmit.ts).
import { FailureReport, Heartbeat, HEARTBEAT_DEFAULTS, RecoveredReport } from '../lib/monitor/heartbeat';
import type { IsolationState } from '../lib/monitor/isolation';
import { IsolationMonitor } from '../lib/monitor/isolation-monitor';
import { HeartbeatConfig, isolationStatus, NodeSettings, parseSettings, statusOf } from '../lib/monitor/node-settings';
import { readmit, ReadmitError } from '../lib/monitor/readmit';
import { StarvationMeter } from '../lib/monitor/starvation';
import type { Node, RED } from './common/node-red';
import { short, useStore } from './common/store-user';
import { translator } from './common/i18n';
import { registry } from './common/cluster-registry';
import type { IsolationView } from '../lib/view/cluster-view';
import type { NodeMessage } from './common/node-red';
import type { IsolationSource } from './common/cluster-registry';

/**
 * The second output's message: the state once the flows have started ("serving" or "self-fence"),
 * then every change: stop ("self-fence") or serve again ("rejoined").
 */
interface IsolationMessage extends NodeMessage {
  topic: 'serving' | 'self-fence' | 'rejoined';
  payload: {
    /** false: stop serving now; true: serve again. */
    serve: boolean;
    me: string;
    state: IsolationState['state'];
    reason: string;
    reachable: string[];
    voters: string[];
    needed: number;
    at: string;
  };
}

interface Res {
  status(code: number): Res;
  json(v: unknown): void;
}


export = function (RED: RED) {
  function P2pHeartbeatNode(this: Node, config: HeartbeatConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    let parsed: NodeSettings;
    try {
      parsed = parseSettings(config);
    } catch (e) {
      node.error(`p2p-heartbeat: ${(e as Error).message}`);
      node.status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
      return;
    }
    // Its own status through `status` (the store's shows only by the rule of common/store-user.ts).
    const { store, files, status } = useStore(RED, node, config.store);
    if (!store || !files) return;

    const settings = parsed.heartbeat;
    const timeout = settings.timeoutMs ?? HEARTBEAT_DEFAULTS.timeoutMs;
    // Half the probe timeout: past that, a timeout may be this VM's lateness, not the peer's. A
    // check started one timeout after the lateness ended is clean: that is the hold-off.
    const meter = new StarvationMeter({ lagThresholdMs: timeout / 2, holdOffMs: timeout, cpuThreshold: parsed.cpuThreshold });
    // A self-fenced VM catches up with the majority (the store's digest exchange) before it serves again.
    const sync = (files as { syncAll?: () => Promise<void> }).syncAll;
    const catchUp = typeof sync === 'function' ? () => sync.call(files) : undefined;
    const iso = new IsolationMonitor({ files, settings: parsed.isolation, starvation: meter, catchUp });
    let hb: Heartbeat;
    try {
      hb = new Heartbeat({ files, settings, starvation: meter, quorum: iso });
    } catch (e) {
      node.error(`p2p-heartbeat: ${(e as Error).message}`);
      node.status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
      return;
    }
    // For the metrics endpoint (nodes/common/metrics-hook.ts).
    registry.addHeartbeat(node.id, { heartbeat: hb, starvedEvents: () => meter.starvedEvents });

    // Re-examination countdowns for the editor's cluster sidebar (only when one starts, moves or ends).
    const countdowns = new Map<string, number>();
    const reportCountdowns = () => {
      const now = Date.now();
      const seen = new Set<string>();
      for (const w of hb.summary()) {
        if (w.remainingMs === undefined) continue;
        seen.add(w.target);
        const until = now + w.remainingMs;
        if (Math.abs((countdowns.get(w.target) ?? 0) - until) > 200) {
          countdowns.set(w.target, until);
          registry.countdown({ target: w.target, what: 'confirm', until });
        }
      }
      for (const t of countdowns.keys()) {
        if (seen.has(t)) continue;
        countdowns.delete(t);
        registry.countdown({ target: t, what: 'confirm', until: 0 });
      }
    };

    const say = (id: string, values: Record<string, string>) => t(`p2p-heartbeat.status.${id}`, values);
    const render = () => {
      reportCountdowns();
      // The isolation state wins over the watches' line while this VM must not serve.
      status(isolationStatus(iso.state(), iso.stopAsserted) ?? statusOf(hb.summary(), files.identity.hostname, meter.starvedAt(), say));
    };
    // Re-render often enough for the re-examination countdown.
    const ticker = setInterval(render, 250);

    hb.on('failure', (r: FailureReport) => {
      node.log(t('p2p-heartbeat.log.failure', { target: r.target, kind: r.kind, reason: r.reason, priority: r.priority, decision: r.decision }));
      node.send({ topic: 'failure', payload: r });
      render();
    });
    hb.on('recovered-by-itself', (r: RecoveredReport) => {
      node.send({ topic: 'recovered-by-itself', payload: r });
      render();
    });
    hb.on('stood-down', (x: { target: string; winner: string; reason: string }) => node.log(t('p2p-heartbeat.log.stoodDown', { target: x.target, reason: x.reason })));
    hb.on('warn', (w: string) => node.warn(t('p2p-heartbeat.warn.monitor', { message: w })));
    hb.on('no-quorum', (x: { target: string; reason: string }) => node.warn(`${x.target} failed here, but ${x.reason}`));

    const isolationMsg = (topic: IsolationMessage['topic'], st: IsolationState): IsolationMessage => ({
      topic,
      payload: {
        serve: topic !== 'self-fence',
        me: files.identity.hostname,
        state: st.state,
        reason: st.why,
        reachable: st.reachable,
        voters: st.voters,
        needed: st.needed,
        at: new Date().toISOString(),
      },
    });
    // A message sent before the flows have started may find no node downstream: the state is
    // sent once they have (or after 1 s at the latest), then every change.
    let flowsStarted = false;
    let closed = false;
    iso.on('self-fence', (st: IsolationState) => {
      node.warn(`self-fence: ${st.why}`);
      if (flowsStarted) node.send([null, isolationMsg('self-fence', st)]);
      render();
    });
    iso.on('rejoined', (st: IsolationState) => {
      node.log(`rejoined: ${st.why}`);
      if (flowsStarted) node.send([null, isolationMsg('rejoined', st)]);
      render();
    });
    const onFlowsStarted = () => {
      if (flowsStarted || closed) return;
      flowsStarted = true;
      clearTimeout(startFallback);
      RED.events?.removeListener('flows:started', onFlowsStarted);
      try {
        const st = iso.state();
        node.send([null, isolationMsg(iso.stopAsserted || st.stop ? 'self-fence' : 'serving', st)]);
      } catch (e) {
        node.warn(`isolation state: ${(e as Error).message}`);
      }
    };
    RED.events?.on('flows:started', onFlowsStarted);
    const startFallback = setTimeout(onFlowsStarted, 1000);
    iso.on('majority', (has: boolean) => hb.quorumChanged(has));
    iso.on('state', () => render());
    iso.on('warn', (w: string) => node.warn(w));
    const source: IsolationSource = {
      check: (target, now) => iso.check(target, now),
      view: (): IsolationView => {
        const st = iso.state();
        return { state: st.state, stopped: iso.stopAsserted, reachable: st.reachable, voters: st.voters, needed: st.needed, why: st.why };
      },
    };
    hb.on('status', render);

    node.on('input', (msg, send, done) => {
      try {
        msg.payload = {
          me: files.identity.hostname,
          watching: hb.summary(),
          settings: hb.settings,
          starvation: { lastLagMs: meter.lastLagMs, maxLagMs: meter.maxLagMs, cpuStall: meter.lastCpuStall, events: meter.starvedEvents, now: meter.starvedAt() ?? null },
          isolation: { ...source.view(), settings: iso.settings },
        };
        send(msg);
        done();
      } catch (e) {
        done(e as Error);
      }
    });

    meter.start();
    hb.start();
    iso.start();
    registry.setIsolationGate(files, source);
    render();

    node.on('close', (_removed, done) => {
      clearInterval(ticker);
      for (const t of countdowns.keys()) registry.countdown({ target: t, what: 'confirm', until: 0 });
      closed = true;
      clearTimeout(startFallback);
      RED.events?.removeListener('flows:started', onFlowsStarted);
      registry.setIsolationGate(files, undefined, source);
      iso.stop();
      iso.removeAllListeners();
      registry.removeHeartbeat(node.id);
      hb.stop();
      meter.stop();
      hb.removeAllListeners();
      done();
    });
  }

  RED.nodes.registerType('p2p-heartbeat', P2pHeartbeatNode);

  // The operator re-admits a fenced server (the sidebar's button): body {hostname}.
  RED.httpAdmin.post('/p2p-ha/readmit', RED.auth.needsPermission('p2p-ha.write'), (req: { body?: { hostname?: unknown } }, res: Res) => {
    const files = registry.primary();
    if (!files) {
      res.status(503).json({ error: 'no p2p-store runs in this Node-RED' });
      return;
    }
    readmit(files, req.body?.hostname)
      .then((r) => res.json({ ok: true, line: r.line }))
      .catch((e: Error) => {
        const code = e instanceof ReadmitError ? (e.kind === 'bad-name' ? 400 : e.kind === 'not-in-group' ? 404 : 409) : 500;
        res.status(code).json({ error: e.message });
      })
      .catch(() => undefined);
  });
};
