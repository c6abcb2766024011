// p2p-placer: takes a failure msg (from p2p-heartbeat) and picks the real server and the OD for its
// backup from the realserver and available-od files (lib/recovery/placement.ts). The msg goes on
// with msg.placement (the choice and every candidate with its score); when no real server can
// take it, done(err) with the reason and the candidates on msg.placement.candidates.
// payload.targets = [{target, realServer}, ...] places several at once, spread (Fig. 3).
import { odRows, place, placeMany, PlacementError, realServerRows } from '../lib/recovery/placement';
import type { NodeMessage, RED } from './common/node-red';
import { useStore } from './common/store-user';

interface PlacerConfig {
  name?: string;
  store?: string;
}

export = function (RED: RED) {
  function P2pPlacerNode(this: any, config: PlacerConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const { files } = useStore(RED, node, config.store);

    node.on('input', (msg: NodeMessage, send: (m: NodeMessage) => void, done: (e?: Error) => void) => {
      try {
        if (!files) throw new Error('no p2p-store configured (or it failed to start)');
        const p = (msg.payload ?? {}) as { target?: unknown; realServer?: unknown; targets?: unknown };
        const rs = realServerRows(files.records('realserver'));
        const ods = odRows(files.records('available-od'));
        if (Array.isArray(p.targets)) {
          const targets = p.targets.map((t: { target?: unknown; realServer?: unknown }) => {
            if (typeof t?.target !== 'string') throw new Error('payload.targets must be a list of {target, realServer}');
            return { target: t.target, realServer: typeof t.realServer === 'string' ? t.realServer : '' };
          });
          const r = placeMany(targets, rs, ods);
          msg.placements = r.placements;
          const ok = r.placements.filter((x) => x.placement).length;
          node.status({ fill: ok === targets.length ? 'green' : 'yellow', shape: 'dot', text: `${ok}/${targets.length} placed` });
          send(msg);
          return done();
        }
        if (typeof p.target !== 'string' || p.target === '') throw new Error('payload.target (the failed server) is missing');
        try {
          const choice = place(rs, ods);
          msg.placement = choice;
          node.status({ fill: 'green', shape: 'dot', text: `${p.target}: ${choice.od} on ${choice.realServer}` });
          send(msg);
          done();
        } catch (e) {
          if (e instanceof PlacementError) msg.placement = { error: e.message, candidates: e.candidates };
          throw e;
        }
      } catch (e) {
        node.status({ fill: 'red', shape: 'ring', text: (e as Error).message.slice(0, 60) });
        done(e as Error);
      }
    });
  }
  RED.nodes.registerType('p2p-placer', P2pPlacerNode);
};
