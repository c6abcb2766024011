// p2p-maintenance: puts a VM or a real server into maintenance and takes it out again
// (lib/ops/maintenance.ts), from a msg (`payload: { vm: 'S2', on: true }`) or from the admin
// endpoint POST /p2p-ha/maintenance (permission p2p-ha.write; the command line `p2p-ha
// maintenance` uses it). GET /p2p-ha/maintenance (p2p-ha.read) says who is in maintenance. The
// node's output is the result of each request; its status counts what is in maintenance now.
// `payload: { evacuate: 'RS1' }` (or POST /p2p-ha/evacuate, p2p-ha.write) evacuates a real server
// (lib/ops/evacuate.ts): its VMs' roles move, one after the other, to ODs on other hosts after a
// clean shutdown; the role step uses this node's admin port (as the backup starter's) and
// a call signed by this VM's key.
import { inMaintenance, MaintenanceError, setMaintenance } from '../lib/ops/maintenance';
import { evacuateHost, type EvacuationResult } from '../lib/ops/evacuate';
import { timelineEntry } from '../lib/ops/failover-steps';
import { checkDir, DEFAULT_PROCEDURE_DIR } from '../lib/recovery/install-procedure';
import { assignRole as giveRole } from '../lib/recovery/role';
import { NAME_RE } from '../lib/records/files';
import { realServerDrivers } from './common/real-servers';
import type { ChangeEvent } from '../lib/records/cluster-api';
import type { DoneFn, Node, NodeMessage, RED, SendFn } from './common/node-red';
import { registry } from './common/cluster-registry';
import { answerWithoutStore, short, useStore } from './common/store-user';
import { finishWithin } from './common/close';

interface MaintenanceConfig {
  name?: string;
  store?: string;
  adminPort?: string | number;
  procedureDir?: string;
}

/** The evacuation of this runtime's p2p-maintenance node (the admin endpoint uses the first one). */
type Evacuate = (realServer: string) => Promise<EvacuationResult>;
const evacuators = new Map<string, Evacuate>();

interface Res {
  status(code: number): Res;
  json(v: unknown): void;
}

export = function (red: RED) {
  function P2pMaintenanceNode(this: Node, config: MaintenanceConfig) {
    red.nodes.createNode(this, config);
    const node = this;
    const { files } = useStore(red, node, config.store);
    if (!files) {
      answerWithoutStore(node);
      return;
    }

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

    const adminPort = Number(config.adminPort || 1880);
    let procedureDir = DEFAULT_PROCEDURE_DIR;
    try {
      procedureDir = checkDir((config.procedureDir || DEFAULT_PROCEDURE_DIR).trim());
    } catch {
      /* refused when an evacuation runs */
    }
    const abort = new AbortController();
    let evacuating: Promise<unknown> | undefined;
    const evacuate: Evacuate = async (realServer) => {
      if (typeof realServer !== 'string' || !NAME_RE.test(realServer)) throw new MaintenanceError(`evacuate: ${JSON.stringify(realServer)} is not a real server name`);
      if (!Number.isInteger(adminPort) || adminPort < 1 || adminPort > 65535) throw new MaintenanceError(`admin port ${config.adminPort} is not 1-65535`);
      if (evacuating) throw new MaintenanceError('an evacuation is already running here');
      const drivers = realServerDrivers(red);
      const run = evacuateHost(
        realServer,
        {
          files,
          driver: (rs) => drivers.get(rs),
          assignRole: (role) =>
            giveRole(role, {
              url: `http://${role.address}:${adminPort}`,
              signer: files,
              timeoutMs: 5000,
              seeds: files.identity.address,
              semPort: files.port,
              readyTimeoutMs: 10_000,
            }),
          onStep: (vm, e) => {
            node.status({ fill: 'blue', shape: 'ring', text: short(`evacuating ${realServer}: ${vm} ${e.step}`) });
            registry.step(timelineEntry(e, files.identity.hostname, Date.now(), e.step === 'fence' ? 'shut down (evacuation)' : undefined));
          },
          signal: abort.signal,
        },
        { procedureDir },
      );
      evacuating = run.catch(() => undefined);
      try {
        const r = await run;
        // A move that failed: where the VM was left, and why (the sidebar's timeline and the history).
        for (const f of r.failed) registry.step({ target: f.vm, step: `evacuation failed: ${f.outcome}`, at: Date.now(), by: files.identity.hostname, detail: f.error });
        return r;
      } finally {
        evacuating = undefined;
        show();
      }
    };
    evacuators.set(node.id, evacuate);

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      const p = msg.payload as { evacuate?: unknown } | undefined;
      if (p && typeof p === 'object' && 'evacuate' in p) {
        evacuate(p.evacuate as string).then(
          (r) => {
            msg.topic = 'evacuated';
            msg.payload = r;
            send(msg);
            done(r.failed.length ? new Error(`evacuation of ${r.realServer}: ${r.failed.map((f) => `${f.vm}: ${f.error}`).join('; ')}`) : undefined);
          },
          (e: Error) => {
            node.status({ fill: 'red', shape: 'ring', text: short(e.message) });
            done(e);
          },
        );
        return;
      }
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
      evacuators.delete(node.id);
      abort.abort();
      // An SSH command under way ends with its own deadline; do not wait past 10 s.
      finishWithin(evacuating ?? Promise.resolve(), 10_000, done);
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
  red.httpAdmin.post('/p2p-ha/evacuate', red.auth.needsPermission('p2p-ha.write'), (req: { body?: { realServer?: unknown } }, res: Res) => {
    const run = evacuators.values().next().value as Evacuate | undefined;
    if (!run) return res.status(409).json({ error: 'deploy a p2p-maintenance node on this VM first (its admin port is where the backups are given their role)' });
    run(req.body?.realServer as string).then(
      (r) => res.status(r.failed.length ? 500 : 200).json(r),
      (e: Error) => res.status(e instanceof MaintenanceError ? 400 : 409).json({ error: e.message }),
    );
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
