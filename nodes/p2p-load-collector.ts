// p2p-load-collector: every interval, reads each configured real server's load and VM count over
// SSH and writes the realserver file through SEM, only when a value changed beyond a threshold
// (lib/hv/load-edits.ts), so the diff stream stays quiet. An unreachable real server is marked
// `down`. A message in triggers a round now; each round sends its readings and edits out.
import { loadEdits, readRealServer, type RoundResult } from '../lib/hv/load-edits';
import type { DoneFn, Node, NodeMessage, RED as NodeRed, SendFn } from './common/node-red';
import { short, useStore } from './common/store-user';
import { finishWithin } from './common/close';

interface CollectorConfig {
  name?: string;
  store?: string;
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
    const capacity = config.capacity !== false;
    // The store's state shows here until a round has something to say (red when there is no store).
    const { files } = useStore(RED, node, config.store);
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<RoundResult> | undefined;
    let closed = false;

    /** The p2p-real-server config nodes of this runtime (every configured real server). */
    const realServers = () => {
      const out: any[] = [];
      RED.nodes.eachNode((n) => {
        if (n.type !== 'p2p-real-server') return;
        const rs = RED.nodes.getNode(n.id) as any;
        if (rs && rs.rsName) out.push(rs);
      });
      return out;
    };

    const round = async (): Promise<RoundResult> => {
      if (!files) throw new Error('no p2p-store configured (or it failed to start)');
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
        if (errors.length) node.status({ fill: 'red', shape: 'ring', text: short(errors[0]) });
        else if (down) node.status({ fill: 'yellow', shape: 'ring', text: `${readings.length - down} up, ${down} down` });
        else node.status({ fill: 'green', shape: 'dot', text: `${readings.length} up, ${edits.length} edit(s)` });
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
          if (!closed) node.status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
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
