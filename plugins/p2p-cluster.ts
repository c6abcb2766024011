// The cluster sidebar's runtime half: serves the cluster view at GET /p2p-ha/cluster (permission
// checked) and pushes it to every open editor over RED.comms whenever the files or a failover
// step change (at most every 250 ms).
import { buildView } from '../lib/view/cluster-view';
import { registry } from '../nodes/common/cluster-registry';
import { installHistory } from '../nodes/common/history-hook';
import { installMetrics } from '../nodes/common/metrics-hook';
import type { RED as RuntimeRED } from '../nodes/common/node-red';
import * as path from 'path';
import { translator } from '../nodes/common/i18n';

type PluginRED = RuntimeRED & { plugins: { registerPlugin(id: string, def: object): void } };

const TOPIC = 'p2p-ha/cluster';
const THROTTLE_MS = 250;

export = function (RED: PluginRED) {
  // This plugin's catalogue: plugins/locales/<lang>/p2p-cluster.json beside this file.
  const t = translator(RED, path.join(__dirname, 'locales', 'en-US'));
  const view = () => {
    const files = registry.primary();
    return files ? buildView(files, registry.timeline, registry.activeCountdowns()) : null;
  };

  let timer: NodeJS.Timeout | undefined;
  const publish = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      try {
        RED.comms?.publish(TOPIC, view(), true);
      } catch (e) {
        RED.log.warn(t('p2p-cluster.warn.publish', { message: (e as Error).message }));
      }
    }, THROTTLE_MS);
    timer.unref?.();
  };
  registry.on('changed', publish);

  RED.plugins.registerPlugin('p2p-cluster-sidebar', { type: 'p2p-ha-sidebar' });
  // The lasting history: the timeline is kept on disk and loaded back at start (issue 15).
  installHistory(RED);
  // The Prometheus metrics endpoint GET /p2p-ha/metrics (issue 15).
  installMetrics(RED);

  RED.httpAdmin.get('/p2p-ha/cluster', RED.auth.needsPermission('p2p-ha.read'), (_req: unknown, res: { json(v: unknown): void }) => {
    res.json(view());
  });
};
