// p2p-heartbeat: this VM's heartbeat monitor (lib/monitor/heartbeat.ts) as a node. It watches the
// targets the operation file gives this VM, records each suspicion in the replicated problem file,
// and sends a confirmed failure (topic "failure") for the recovery flow, or a suspicion that went
// away (topic "recovered-by-itself"). Any input message is answered with what it watches.
import { FailureReport, Heartbeat, HEARTBEAT_DEFAULTS, RecoveredReport } from '../lib/monitor/heartbeat';
import { HeartbeatConfig, NodeSettings, parseSettings, statusOf } from '../lib/monitor/node-settings';
import { StarvationMeter } from '../lib/monitor/starvation';
import type { Node, RED } from './common/node-red';
import { short, storeStatusToNode, useStore } from './common/store-user';
import { registry } from './common/cluster-registry';


export = function (RED: RED) {
  function P2pHeartbeatNode(this: Node, config: HeartbeatConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    let parsed: NodeSettings;
    try {
      parsed = parseSettings(config);
    } catch (e) {
      node.error(`p2p-heartbeat: ${(e as Error).message}`);
      node.status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
      return;
    }
    const { store, files } = useStore(RED, node, config.store);
    if (!store || !files) return;
    // This node shows its own status (the store's while it starts or fails, see render): stop the
    // store's status fan-out, which would overwrite it.
    store.deregister(node);

    const settings = parsed.heartbeat;
    const timeout = settings.timeoutMs ?? HEARTBEAT_DEFAULTS.timeoutMs;
    // Half the probe timeout: past that, a timeout may be this VM's lateness, not the peer's. A
    // check started one timeout after the lateness ended is clean: that is the hold-off.
    const meter = new StarvationMeter({ lagThresholdMs: timeout / 2, holdOffMs: timeout, cpuThreshold: parsed.cpuThreshold });
    let hb: Heartbeat;
    try {
      hb = new Heartbeat({ files, settings, starvation: meter });
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
          registry.countdown({ target: w.target, what: `${w.kind ?? 'failure'} confirmed`, until });
        }
      }
      for (const t of countdowns.keys()) {
        if (seen.has(t)) continue;
        countdowns.delete(t);
        registry.countdown({ target: t, what: 'confirm', until: 0 });
      }
    };

    let lastStatus = '';
    const render = () => {
      reportCountdowns();
      const s = store.storeStatus();
      // Until the store runs, its own state is what matters.
      const st = s.state === 'starting' || s.state === 'error' ? storeStatusToNode(s) : statusOf(hb.summary(), files.identity.hostname, meter.starvedAt());
      const key = JSON.stringify(st);
      if (key !== lastStatus) {
        lastStatus = key;
        node.status(st);
      }
    };
    // The store's status fan-out writes over ours; re-render often enough for the countdown.
    const ticker = setInterval(render, 250);

    hb.on('failure', (r: FailureReport) => {
      node.log(`${r.target} failed (${r.kind}, ${r.reason}); handled here as ${r.priority}: ${r.decision}`);
      node.send({ topic: 'failure', payload: r });
      render();
    });
    hb.on('recovered-by-itself', (r: RecoveredReport) => {
      node.send({ topic: 'recovered-by-itself', payload: r });
      render();
    });
    hb.on('stood-down', (x: { target: string; winner: string; reason: string }) => node.log(`${x.target}: standing down, ${x.reason}`));
    hb.on('warn', (w: string) => node.warn(w));
    hb.on('status', render);

    node.on('input', (msg, send, done) => {
      try {
        msg.payload = {
          me: files.identity.hostname,
          watching: hb.summary(),
          settings: hb.settings,
          starvation: { lastLagMs: meter.lastLagMs, maxLagMs: meter.maxLagMs, cpuStall: meter.lastCpuStall, events: meter.starvedEvents, now: meter.starvedAt() ?? null },
        };
        send(msg);
        done();
      } catch (e) {
        done(e as Error);
      }
    });

    meter.start();
    hb.start();
    render();

    node.on('close', (_removed, done) => {
      clearInterval(ticker);
      for (const t of countdowns.keys()) registry.countdown({ target: t, what: 'confirm', until: 0 });
      registry.removeHeartbeat(node.id);
      hb.stop();
      meter.stop();
      hb.removeAllListeners();
      done();
    });
  }

  RED.nodes.registerType('p2p-heartbeat', P2pHeartbeatNode);
};
