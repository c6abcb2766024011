// p2p-load-collector: every interval, reads each configured real server's load and VM count over
// SSH and writes the realserver file through SEM, only when a value changed beyond a threshold
// (lib/hv/load-edits.ts), so the diff stream stays quiet. An unreachable real server is marked
// `down`. A message in triggers a round now; each round sends its readings and edits out.
// The collector reads the real server its `realServer` property names (one collector per real
// server: the reference is what makes Node-RED count the p2p-real-server config node as used). A
// flow from before that property (none set) keeps the old behaviour, every configured real server,
// with a warning at start.
import { loadEdits, readRealServer, type RoundResult } from '../lib/hv/load-edits';
import type { DoneFn, Node, NodeMessage, RED as NodeRed, SendFn } from './common/node-red';
import { short, useStore } from './common/store-user';
import { common, translator } from './common/i18n';
import { finishWithin } from './common/close';

interface CollectorConfig {
  name?: string;
  store?: string;
  /** The p2p-real-server this collector reads (empty in flows from before: every one). */
  realServer?: string;
  interval?: string | number;
  threshold?: string | number;
  /** Read free memory and vCPUs too (default on; off for hosts without /proc/meminfo access). */
  capacity?: boolean;
}

/** Node-RED's RED with the one call this node needs beyond the shared shape. */
type RED = NodeRed & { nodes: NodeRed['nodes'] & { eachNode(cb: (n: { id: string; type: string }) => void): void } };

export = function (RED: RED) {
  function P2pLoadCollectorNode(this: Node, config: CollectorConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const intervalMs = Math.max(1000, Number(config.interval ?? 10) * 1000 || 10000);
    const threshold = Math.max(0, Number(config.threshold ?? 0.1) || 0);
    const t = translator(RED);
    const capacity = config.capacity !== false;
    // The store's state shows here until a round has something to say (red when there is no store).
    const { files, status } = useStore(RED, node, config.store);
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<RoundResult> | undefined;
    let closed = false;

    const own = config.realServer ? (RED.nodes.getNode(config.realServer) as any) : undefined;
    if (config.realServer && !own) status({ fill: 'red', shape: 'ring', text: t('p2p-load-collector.status.noRealServer') });
    if (!config.realServer) node.warn(t('p2p-load-collector.warn.allRealServers'));

    /** The real servers this collector reads: its own, or (older flows) every configured one. */
    const realServers = () => {
      if (config.realServer) return own ? [own] : [];
      const out: any[] = [];
      RED.nodes.eachNode((n) => {
        if (n.type !== 'p2p-real-server') return;
        const rs = RED.nodes.getNode(n.id) as any;
        if (rs && rs.rsName) out.push(rs);
      });
      return out;
    };

    const round = async (): Promise<RoundResult> => {
      if (!files) throw new Error(common(t, 'noWorkingStore'));
      if (config.realServer && !own) throw new Error(t('p2p-load-collector.status.noRealServer'));
      const readings = await Promise.all(realServers().map((rs) => readRealServer(rs.rsName, rs.driver, rs.failure, capacity)));
      const edits = loadEdits(readings, files.records('realserver'), threshold);
      const errors: string[] = [];
      for (const e of edits) {
        try {
          await files.edit(e);
        } catch (err) {
          errors.push(`${e.op} ${e.record[0]}: ${(err as Error).message}`);
        }
      }
      const down = readings.filter((r) => !r.ok).length;
      if (!closed) {
        const one = readings.length === 1 ? readings[0] : undefined;
        if (errors.length) status({ fill: 'red', shape: 'ring', text: short(errors[0]) });
        else if (one && !one.ok) status({ fill: 'yellow', shape: 'ring', text: short(t('p2p-load-collector.status.down', { rs: one.realServer, error: one.error ?? '' })) });
        else if (one && one.ok) status({ fill: 'green', shape: 'dot', text: t('p2p-load-collector.status.one', { rs: one.realServer, load: one.load.toFixed(2), vms: one.vmCount, edits: edits.length }) });
        else if (down) status({ fill: 'yellow', shape: 'ring', text: t('p2p-load-collector.status.someDown', { up: readings.length - down, down }) });
        else status({ fill: 'green', shape: 'dot', text: t('p2p-load-collector.status.allUp', { up: readings.length, edits: edits.length }) });
      }
      return { readings, edits, errors };
    };

    /** One round at a time: a slow host must not pile up rounds. */
    const collect = (): Promise<RoundResult> => {
      if (!running) running = round().finally(() => (running = undefined));
      return running;
    };

    const tick = () => {
      collect()
        .then((r) => {
          if (r.edits.length && !closed) node.send({ topic: 'realserver', payload: r });
        })
        .catch((e) => {
          if (!closed) status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
        })
        .finally(() => {
          if (!closed) timer = setTimeout(tick, intervalMs);
        });
    };

    if (files) timer = setTimeout(tick, 0);

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      collect().then(
        (r) => {
          msg.topic = 'realserver';
          msg.payload = r;
          send(msg);
          done(r.errors.length ? new Error(r.errors.join('; ')) : undefined);
        },
        (e) => done(e as Error),
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      clearTimeout(timer);
      // A round under way may still be waiting for SSH: do not wait longer than a few seconds.
      finishWithin(running ?? Promise.resolve(), 5000, done);
    });
  }

  RED.nodes.registerType('p2p-load-collector', P2pLoadCollectorNode);
};
