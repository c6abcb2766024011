// p2p-sem-send: applies the edit carried by a msg to the management files and sends it to every
// peer (SEM); the msg goes on with which peers acknowledged and after how long.
import type { EditResult } from '../lib/records/cluster-api';
import type { Node, NodeMessage, RED, SendFn, DoneFn } from './common/node-red';
import { short, useStore } from './common/store-user';

interface SendConfig {
  name?: string;
  store?: string;
}

export = function (RED: RED) {
  function P2pSemSendNode(this: Node, config: SendConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const { files } = useStore(RED, node, config.store);

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (!files) return done(new Error('p2p-sem-send: no working p2p-store'));
      node.status({ fill: 'blue', shape: 'dot', text: 'sending…' });
      let pending: Promise<EditResult>;
      try {
        pending = files.edit(msg.payload as never);
      } catch (e) {
        // A malformed edit is refused before anything is applied or sent.
        node.status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
        return done(e as Error);
      }
      pending.then(
        (result) => {
          const peers = result.acked.length + result.failed.length;
          const slowest = result.acked.reduce((m, a) => Math.max(m, a.ms), 0);
          node.status(
            result.failed.length === 0
              ? { fill: 'green', shape: 'dot', text: `${result.acked.length}/${peers} peers in ${slowest.toFixed(1)} ms` }
              : {
                  fill: 'yellow',
                  shape: 'ring',
                  text: short(`${result.acked.length}/${peers} acked; no ack from ${result.failed.map((f) => f.peer).join(' ')}`),
                },
          );
          msg.edit = msg.payload;
          msg.payload = result;
          send(msg);
          done();
        },
        (e: Error) => {
          node.status({ fill: 'red', shape: 'ring', text: short(e.message) });
          done(e);
        },
      );
    });
  }

  RED.nodes.registerType('p2p-sem-send', P2pSemSendNode);
};
