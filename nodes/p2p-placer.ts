// p2p-placer: takes a failure msg (from p2p-heartbeat) and picks the real server and the OD for its
// backup from the realserver and available-od files (lib/recovery/placement.ts). The msg goes on
// with msg.placement (the choice and every candidate with its score); when no real server can
// take it, done(err) with the reason and the candidates on msg.placement.candidates.
// payload.targets = [{target, realServer}, ...] places several at once, spread (Fig. 3).
import { odRows, place, placeMany, PlacementError, realServerRows } from '../lib/recovery/placement';
import type { NodeMessage, RED } from './common/node-red';
import { short, useStore } from './common/store-user';
import { common, translator } from './common/i18n';

interface PlacerConfig {
  name?: string;
  store?: string;
}

export = function (RED: RED) {
  function P2pPlacerNode(this: any, config: PlacerConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const { files, status } = useStore(RED, node, config.store);

    node.on('input', (msg: NodeMessage, send: (m: NodeMessage) => void, done: (e?: Error) => void) => {
      try {
        if (!files) throw new Error(common(t, 'noWorkingStore'));
        const p = (msg.payload ?? {}) as { target?: unknown; realServer?: unknown; targets?: unknown };
        const rs = realServerRows(files.records('realserver'));
        const ods = odRows(files.records('available-od'));
        if (Array.isArray(p.targets)) {
          const targets = p.targets.map((x: { target?: unknown; realServer?: unknown }) => {
            if (typeof x?.target !== 'string') throw new Error(t('p2p-placer.errors.badTargets'));
            return { target: x.target, realServer: typeof x.realServer === 'string' ? x.realServer : '' };
          });
          const r = placeMany(targets, rs, ods);
          msg.placements = r.placements;
          const ok = r.placements.filter((x) => x.placement).length;
          status({ fill: ok === targets.length ? 'green' : 'yellow', shape: 'dot', text: t('p2p-placer.status.placedMany', { ok, all: targets.length }) });
          send(msg);
          return done();
        }
        if (typeof p.target !== 'string' || p.target === '') throw new Error(common(t, 'noTarget'));
        try {
          const choice = place(rs, ods);
          msg.placement = choice;
          status({ fill: 'green', shape: 'dot', text: short(t('p2p-placer.status.placed', { target: p.target, od: choice.od, rs: choice.realServer })) });
          send(msg);
          done();
        } catch (e) {
          if (e instanceof PlacementError) msg.placement = { error: e.message, candidates: e.candidates };
          throw e;
        }
      } catch (e) {
        status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
        done(e as Error);
      }
    });
  }
  RED.nodes.registerType('p2p-placer', P2pPlacerNode);
};
