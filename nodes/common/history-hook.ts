// The lasting history's hook into the runtime (lib/ops/history.ts): every step of the sidebar's
// timeline is appended to <userDir>/p2p-ha-history/, the timeline is loaded back from it when the
// runtime starts (so the sidebar shows the last failovers after a restart), and GET
// /p2p-ha/history (permission p2p-ha.read; ?since=03:00&until=..&target=S2&limit=N) serves it to
// the command line and any tool. Installed once per runtime by the sidebar plugin.
import * as os from 'os';
import * as path from 'path';
import { History, parseWhen } from '../../lib/ops/history';
import { registry } from './cluster-registry';
import type { RED } from './node-red';

/** How many past steps the sidebar gets back at start. */
const RESTORE = 300;

export function historyDir(red: Pick<RED, 'settings'>): string {
  return path.join(red.settings.userDir ?? path.join(os.homedir(), '.node-red'), 'p2p-ha-history');
}

export function installHistory(red: RED): History | undefined {
  let history: History;
  try {
    history = new History({ dir: historyDir(red) });
  } catch (e) {
    red.log.warn(`p2p-ha history: cannot use ${historyDir(red)}: ${(e as Error).message}`);
    return undefined;
  }
  registry.restore(history.read({ limit: RESTORE }));
  let warned = false;
  registry.setRecorder((e) => {
    try {
      history.append(e);
    } catch (err) {
      if (!warned) red.log.warn(`p2p-ha history: ${(err as Error).message}`);
      warned = true;
    }
  });
  red.httpAdmin.get(
    '/p2p-ha/history',
    red.auth.needsPermission('p2p-ha.read'),
    (req: { query?: Record<string, string | undefined> }, res: { status(c: number): { json(v: unknown): void }; json(v: unknown): void }) => {
      try {
        const q = req.query ?? {};
        const limit = q.limit === undefined ? undefined : Math.max(1, Math.min(100_000, Number(q.limit) || 1000));
        res.json(
          history.read({
            since: q.since ? parseWhen(q.since) : undefined,
            until: q.until ? parseWhen(q.until) : undefined,
            target: q.target || undefined,
            limit,
          }),
        );
      } catch (e) {
        res.status(400).json({ error: (e as Error).message });
      }
    },
  );
  return history;
}
