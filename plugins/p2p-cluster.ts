// The cluster sidebar's runtime half: serves the cluster view at GET /p2p-ha/cluster (permission
// checked) and pushes it over RED.comms whenever the files or a failover step change (at most
// every 250 ms) to the editor sessions whose user holds p2p-ha.read: the push is sent per session
// (the runtime's 'comms' event with a session), never retained for everyone, so an editor user
// without the permission sees over the websocket no more than the HTTP route gives them.
import { buildView } from '../lib/view/cluster-view';
import { registry } from '../nodes/common/cluster-registry';
import { installHistory } from '../nodes/common/history-hook';
import { installMetrics } from '../nodes/common/metrics-hook';
import type { RED as RuntimeRED } from '../nodes/common/node-red';
import * as path from 'path';
import { translator } from '../nodes/common/i18n';
import { scopeAllows } from '../nodes/common/permissions';

type PluginRED = RuntimeRED & {
  plugins: { registerPlugin(id: string, def: object): void };
  events: { on(e: string, l: (ev: any) => void): void; emit(e: string, ev: unknown): void };
};
const PERMISSION = 'p2p-ha.read';

const TOPIC = 'p2p-ha/cluster';
const THROTTLE_MS = 250;

export = function (RED: PluginRED) {
  // This plugin's catalogue: plugins/locales/<lang>/p2p-cluster.json beside this file.
  const t = translator(RED, path.join(__dirname, 'locales', 'en-US'));
  const view = () => {
    const files = registry.primary();
    return files ? buildView(files, registry.timeline, registry.activeCountdowns()) : null;
  };

  // Editor sessions allowed to see the cluster. Without adminAuth a session has no user (everyone
  // may read, as the HTTP route lets them); with it, the user's permissions decide.
  const allowed = new Set<string>();
  const mayRead = (user: { permissions?: unknown } | undefined) => (user ? scopeAllows(user.permissions, PERMISSION) : !RED.settings.adminAuth);
  const sendTo = (session: string) => {
    try {
      RED.events.emit('comms', { topic: TOPIC, data: view(), retain: false, session });
    } catch (e) {
      RED.log.warn(`p2p-ha sidebar: ${(e as Error).message}`);
    }
  };
  RED.events.on('comms:connection-added', (ev: { session?: string; user?: { permissions?: unknown } }) => {
    if (!ev?.session || !mayRead(ev.user)) return;
    allowed.add(ev.session);
    sendTo(ev.session);
  });
  RED.events.on('comms:connection-removed', (ev: { session?: string }) => {
    if (ev?.session) allowed.delete(ev.session);
  });

  let timer: NodeJS.Timeout | undefined;
  const publish = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      for (const session of allowed) sendTo(session);
    }, THROTTLE_MS);
    timer.unref?.();
  };
  registry.on('changed', publish);

  RED.plugins.registerPlugin('p2p-cluster-sidebar', { type: 'p2p-ha-sidebar' });
  // The lasting history: the timeline is kept on disk and loaded back at start (issue 15).
  installHistory(RED);
  // The Prometheus metrics endpoint GET /p2p-ha/metrics (issue 15).
  installMetrics(RED);

  RED.httpAdmin.get('/p2p-ha/cluster', RED.auth.needsPermission(PERMISSION), (_req: unknown, res: { json(v: unknown): void }) => {
    res.json(view());
  });
};
