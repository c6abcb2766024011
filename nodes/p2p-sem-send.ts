// p2p-sem-send: applies the edit carried by a msg to the management files and sends it to every
// peer (SEM); the msg goes on with which peers acknowledged and after how long.
import type { EditResult } from '../lib/records/cluster-api';
import { mapList } from '../lib/records/lists';
import type { Node, NodeMessage, NodeStatus, RED, SendFn, DoneFn } from './common/node-red';
import { short, useStore } from './common/store-user';
import { common, translator } from './common/i18n';
import { ThrottledStatus } from './common/status-throttle';

interface SendConfig {
  name?: string;
  store?: string;
}

export = function (RED: RED) {
  function P2pSemSendNode(this: Node, config: SendConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const { files, status } = useStore(RED, node, config.store);
    // Two statuses per edit (sending, then its outcome), each translated and pushed to the editor,
    // cost the sender more than an edit's own work in a stream of edits (issue 16's profiles): they
    // are shown at most four times a second, the latest one last, and translated only when shown.
    const shown = new ThrottledStatus<() => NodeStatus>((make) => status(make()));
    node.on('close', () => shown.close());

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (!files) return done(new Error(common(t, 'noWorkingStore')));
      shown.set(() => ({ fill: 'blue', shape: 'dot', text: t('p2p-sem-send.status.sending') }));
      let pending: Promise<EditResult>;
      try {
        pending = files.edit(msg.payload as never);
      } catch (e) {
        // A malformed edit is refused before anything is applied or sent.
        shown.set(() => ({ fill: 'red', shape: 'ring', text: short((e as Error).message) }));
        return done(e as Error);
      }
      pending.then(
        (result) => {
          const peers = result.acked.length + result.failed.length;
          const slowest = result.acked.reduce((m, a) => Math.max(m, a.ms), 0);
          const v = { acked: result.acked.length, peers, ms: slowest.toFixed(1), missing: mapList(result.failed, (f) => f.peer).join(' ') };
          shown.set(() =>
            result.failed.length === 0
              ? { fill: 'green', shape: 'dot', text: t('p2p-sem-send.status.acked', v) }
              : { fill: 'yellow', shape: 'ring', text: short(t('p2p-sem-send.status.partial', v)) },
          );
          msg.edit = msg.payload;
          msg.payload = result;
          send(msg);
          done();
        },
        (e: Error) => {
          shown.set(() => ({ fill: 'red', shape: 'ring', text: short(e.message) }));
          done(e);
        },
      );
    });
  }

  RED.nodes.registerType('p2p-sem-send', P2pSemSendNode);
};
