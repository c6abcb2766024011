// p2p-maintenance: puts a VM or a real server into maintenance and takes it out again
// (lib/ops/maintenance.ts), from a msg (`payload: { vm: 'S2', on: true }`) or from the admin
// endpoint POST /p2p-ha/maintenance (permission p2p-ha.write; the command line `p2p-ha
// maintenance` uses it). GET /p2p-ha/maintenance (p2p-ha.read) says who is in maintenance. The
// node's output is the result of each request; its status counts what is in maintenance now.
import { inMaintenance, MaintenanceError, setMaintenance } from '../lib/ops/maintenance';
import type { ChangeEvent } from '../lib/records/cluster-api';
import type { DoneFn, Node, NodeMessage, RED, SendFn } from './common/node-red';
import { registry } from './common/cluster-registry';
import { short, useStore } from './common/store-user';

interface MaintenanceConfig {
  name?: string;
  store?: string;
}

interface Res {
  status(code: number): Res;
  json(v: unknown): void;
}

export = function (red: RED) {
  function P2pMaintenanceNode(this: Node, config: MaintenanceConfig) {
    red.nodes.createNode(this, config);
    const node = this;
    const { files } = useStore(red, node, config.store);
    if (!files) return;

    const show = () => {
      const m = inMaintenance(files);
      const names = [...m.vms, ...m.realServers];
      if (names.length === 0) node.status({ fill: 'green', shape: 'dot', text: 'none in maintenance' });
      else node.status({ fill: 'blue', shape: 'ring', text: short(`maintenance: ${names.join(' ')}`) });
    };
    const onChange = (c: ChangeEvent) => {
      if (c.file === 'group' || c.file === 'realserver') show();
    };
    files.on('change', onChange);
    show();

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      setMaintenance(files, msg.payload).then(
        (r) => {
          msg.topic = 'maintenance';
          msg.payload = r;
          show();
          send(msg);
          done();
        },
        (e: Error) => {
          node.status({ fill: 'red', shape: 'ring', text: short(e.message) });
          done(e);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      files.off('change', onChange);
      done();
    });
  }
  red.nodes.registerType('p2p-maintenance', P2pMaintenanceNode);

  // The admin endpoints work on this runtime's store whether or not a p2p-maintenance node is in
  // the flow (the command line and the sidebar need no node).
  red.httpAdmin.get('/p2p-ha/maintenance', red.auth.needsPermission('p2p-ha.read'), (_req: unknown, res: Res) => {
    const files = registry.primary();
    if (!files) return res.status(503).json({ error: 'no p2p-store running in this runtime' });
    res.json(inMaintenance(files));
  });
  red.httpAdmin.post('/p2p-ha/maintenance', red.auth.needsPermission('p2p-ha.write'), (req: { body?: unknown }, res: Res) => {
    const files = registry.primary();
    if (!files) return res.status(503).json({ error: 'no p2p-store running in this runtime' });
    setMaintenance(files, req.body).then(
      (r) => res.json(r),
      (e: Error) => res.status(e instanceof MaintenanceError ? 400 : 409).json({ error: e.message }),
    );
  });
};
