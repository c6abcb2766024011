// p2p-sem-receive: shows the replication live. One msg per diff applied to this VM's files
// (output 1) and one per refused message with its reason (output 2). The diffs themselves are
// received by the p2p-store's endpoint; this node only reports them.
import type { ChangeEvent, RefusalEvent } from '../lib/records/cluster-api';
import type { Node, RED } from './common/node-red';
import { short, useStore } from './common/store-user';
import { translator } from './common/i18n';
import { ThrottledStatus } from './common/status-throttle';

interface ReceiveConfig {
  name?: string;
  store?: string;
  /** Also report edits made on this VM. */
  includeLocal?: boolean;
  /** Only these files (empty: all). */
  files?: string;
}

export = function (RED: RED) {
  function P2pSemReceiveNode(this: Node, config: ReceiveConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const { files, status } = useStore(RED, node, config.store);
    if (!files) return;
    const only = new Set((config.files ?? '').split(/[\s,]+/).filter(Boolean));
    let count = 0;
    // One status per diff would cost more than the diff (translation, the editor's push): the
    // count and last line are shown at most four times a second.
    const applied = new ThrottledStatus<{ count: number; line: string }>((v) =>
      status({ fill: 'green', shape: 'dot', text: short(t('p2p-sem-receive.status.applied', v)) }),
    );

    const onChange = (c: ChangeEvent) => {
      if (c.local && !config.includeLocal) return;
      if (only.size && !only.has(c.file)) return;
      count++;
      applied.set({ count, line: c.line });
      node.send([{ topic: c.file, payload: c }, null]);
    };
    const onRefused = (r: RefusalEvent) => {
      applied.close();
      node.warn(t('p2p-sem-receive.warn.refused', { from: r.from, reason: r.reason }));
      status({ fill: 'yellow', shape: 'ring', text: short(t('p2p-sem-receive.status.refused', { reason: r.reason })) });
      node.send([null, { topic: 'refused', payload: r }]);
    };
    files.on('change', onChange);
    files.on('refused', onRefused);
    node.on('close', (_removed, done) => {
      files.off('change', onChange);
      files.off('refused', onRefused);
      applied.close();
      done();
    });
  }

  RED.nodes.registerType('p2p-sem-receive', P2pSemReceiveNode);
};
