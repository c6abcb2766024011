// p2p-placer: shows and explains where the backup of a failed server goes, computed with THE
// decider the backup starter uses (lib/recovery/placement-decider.ts: the failures in hand placed
// together), so what it shows is what the starter will do. Output 1: the msg with msg.placement
// (the choice and every candidate with its score), ALWAYS passed on, also when nothing fits
// (msg.placement = {error, candidates}): the starter must still fence the failed server and
// record the failure. Output 2: only the msgs where nothing fits, with the reason.
// payload.targets = [{target, realServer}, ...] places several at once, spread (Fig. 3).
import { placeMany, PlacementError, odRows, realServerRows } from '../lib/recovery/placement';
import { decidePlacement } from '../lib/recovery/placement-decider';
import { fromMember } from '../lib/records/records';
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

    node.on('input', (msg: NodeMessage, send: (m: (NodeMessage | null)[]) => void, done: (e?: Error) => void) => {
      try {
        if (!files) throw new Error(common(t, 'noWorkingStore'));
        const p = (msg.payload ?? {}) as { target?: unknown; realServer?: unknown; targets?: unknown };
        if (Array.isArray(p.targets)) {
          const targets = p.targets.map((x: { target?: unknown; realServer?: unknown }) => {
            if (typeof x?.target !== 'string') throw new Error(t('p2p-placer.errors.badTargets'));
            return { target: x.target, realServer: typeof x.realServer === 'string' ? x.realServer : '' };
          });
          const r = placeMany(targets, realServerRows(files.records('realserver')), odRows(files.records('available-od')));
          msg.placements = r.placements;
          const ok = r.placements.filter((x) => x.placement).length;
          status({ fill: ok === targets.length ? 'green' : 'yellow', shape: 'dot', text: t('p2p-placer.status.placedMany', { ok, all: targets.length }) });
          send([msg, null]);
          return done();
        }
        if (typeof p.target !== 'string' || p.target === '') throw new Error(common(t, 'noTarget'));
        const g = files.get('group', p.target);
        const realServer = typeof p.realServer === 'string' ? p.realServer : g ? fromMember(g).realServer : '';
        try {
          const choice = decidePlacement(files, p.target, realServer);
          msg.placement = choice;
          status({ fill: 'green', shape: 'dot', text: short(t('p2p-placer.status.placed', { target: p.target, od: choice.od, rs: choice.realServer })) });
          send([msg, null]);
        } catch (e) {
          if (!(e instanceof PlacementError)) throw e;
          // Nothing fits: the failure goes on (output 1) so it is still fenced and recorded failed,
          // and the reason leaves on output 2.
          msg.placement = { error: e.message, candidates: e.candidates };
          node.status({ fill: 'red', shape: 'ring', text: `${p.target}: no fit`.slice(0, 60) });
          const why: NodeMessage = { topic: 'no-placement', payload: { target: p.target, reason: e.message, candidates: e.candidates } };
          send([msg, why]);
        }
        done();
      } catch (e) {
        status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
        done(e as Error);
      }
    });
  }
  RED.nodes.registerType('p2p-placer', P2pPlacerNode);
};
