// p2p-od-replicator: keeps on every live real server as many ODs as the average number of VMs per
// live real server, rounded up (lib/recovery/od-pool.ts), recomputed whenever the files change.
// This manager replicates only for the real servers the rule of lib/recovery/replicator-lock.ts
// gives it; the others stand by. One clone at a time per real server, real servers in parallel.
// Every step leaves as a msg (topic `replication/<step>`); a msg in evaluates now and sends the
// plan (topic `od-pool`).
import type { ChangeEvent } from '../lib/records/cluster-api';
import { procedureVariables } from '../lib/recovery/install-procedure';
import { checkDir, DEFAULT_PROCEDURE_DIR } from '../lib/recovery/install-procedure';
import { planPool, type Identity } from '../lib/recovery/od-pool';
import { replicateOne, type ReplicationEvent } from '../lib/recovery/od-replication';
import { replicatesFor } from '../lib/recovery/replicator-lock';
import { deployIdentity } from '../lib/recovery/role';
import { guestReplicationHooks, guestSeedHooks } from '../lib/hv/guest-reidentify';
import type { CommandRunner } from '../lib/hv/ssh-connection';

type GuestDriver = {
  runner: CommandRunner;
  reset(name: string): Promise<void>;
  destroy(name: string): Promise<void>;
  start(name: string): Promise<void>;
  dumpxml(name: string): Promise<string>;
  makeIsoImage(path: string, label: string, files: Record<string, string>): Promise<void>;
};
import { NAME_RE } from '../lib/records/files';
import type { NodeMessage, RED } from './common/node-red';
import { realServerDrivers, seconds } from './common/real-servers';
import { useStore } from './common/store-user';
import { common, translator } from './common/i18n';
import { finishWithin } from './common/close';

interface ReplicatorConfig {
  name?: string;
  store?: string;
  ods?: string;
  /**
   * seed (default): the identity on a seed volume before the first boot, one boot, readiness with
   * the new host key pinned; guest: the shipped od-setup.sh inside the clone over SSH, restart,
   * readiness.
   */
  reidentify?: 'seed' | 'guest' | 'admin-api' | 'procedure' | 'none';
  /** Login user inside the ODS image (guest mode), default root. */
  guestUser?: string;
  /** The ODS's SSH host key fingerprint (guest mode), pinned for the first login into a clone. */
  odsHostKey?: string;
  adminPort?: string | number;
  procedureDir?: string;
  interval?: string | number;
  debounce?: string | number;
}

const WATCHED = new Set(['group', 'realserver', 'available-od', 'reservation', 'problem']);
const CLOSE_DEADLINE_MS = 10_000;

export = function (RED: RED) {
  function P2pOdReplicatorNode(this: any, config: ReplicatorConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const { files, status } = useStore(RED, node, config.store);
    const odsTemplate = (config.ods || 'ODS').trim();
    const mode = config.reidentify === 'procedure' || config.reidentify === 'none' || config.reidentify === 'admin-api' || config.reidentify === 'guest' ? config.reidentify : 'seed';
    const inGuest = mode === 'guest' || mode === 'seed';
    const guestUser = (config.guestUser || 'root').trim();
    const odsHostKey = (config.odsHostKey || '').trim() || undefined;
    const adminPort = Number(config.adminPort || 1880);
    const intervalMs = seconds(config.interval, 30, 1, 3600);
    const debounceMs = seconds(config.debounce, 0.5, 0, 60);
    let settingsError: string | undefined;
    let procedureDir = DEFAULT_PROCEDURE_DIR;
    try {
      procedureDir = checkDir((config.procedureDir || DEFAULT_PROCEDURE_DIR).trim());
    } catch (e) {
      settingsError = (e as Error).message;
    }
    if (!NAME_RE.test(odsTemplate.replace('{rs}', 'RS'))) settingsError = t('p2p-od-replicator.errors.badOds', { ods: JSON.stringify(odsTemplate) });
    if (!Number.isInteger(adminPort) || adminPort < 1 || adminPort > 65535) settingsError = common(t, 'badAdminPort', { port: String(config.adminPort) });
    if (inGuest) {
      if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(guestUser)) settingsError = `guest user ${JSON.stringify(guestUser)} is not a user name`;
      if (odsHostKey && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(odsHostKey)) settingsError = 'ODS host key must be SHA256:... as ssh-keygen -lf prints it';
      if (!node.credentials?.guestKey) settingsError = 'guest re-identification needs the guest login key (credential)';
    }

    const inFlight = new Set<string>();
    const workers = new Map<string, Promise<void>>();
    const lastError = new Map<string, string>();
    const abort = new AbortController();
    let debounce: NodeJS.Timeout | undefined;
    let ticker: NodeJS.Timeout | undefined;
    let closed = false;

    const say = (fill: 'red' | 'green' | 'blue' | 'grey', shape: 'ring' | 'dot', text: string) => {
      if (!closed) status({ fill, shape, text: text.slice(0, 60) });
    };

    const poolFiles = () => ({
      group: files!.records('group'),
      realserver: files!.records('realserver'),
      availableOd: files!.records('available-od'),
      reservation: files!.records('reservation'),
    });

    const reidentify = (rs: string) => async (id: Identity & { mac: string }) => {
      if (mode === 'none') return;
      if (mode === 'admin-api') {
        // A signed call (lib/sem/admin-call.ts): the clone's current name is the ODS's, not known
        // here, so the call is bound to the clone's address only.
        await deployIdentity(
          { hostname: id.od, address: id.address, realServer: id.realServer, services: '-', autoJoin: false, seeds: '' },
          { url: `http://${id.address}:${adminPort}`, signer: files!, timeoutMs: 5000, readyTimeoutMs: 60_000 },
        );
        return;
      }
      const d = realServerDrivers(RED).get(rs);
      if (!d) throw new Error(t('p2p-od-replicator.errors.noRealServer', { rs }));
      const v = procedureVariables({ target: id.od, targetAddress: id.address, backup: id.od, backupAddress: id.address, od: id.od, realServer: rs, services: '-' });
      await d.runFile(`${procedureDir}/od-setup.sh`, { ...v, MAC: id.mac });
    };

    /** One real server's worker: clone until its need is met or a step fails. */
    const work = async (rs: string) => {
      for (;;) {
        if (closed || !files) return;
        if (!replicatesFor(files.identity.hostname, { group: files.records('group'), problem: files.records('problem'), realserver: files.records('realserver') }).includes(rs)) return;
        const need = planPool(poolFiles(), inFlight).needs.find((n) => n.realServer === rs);
        const id = need?.identities[0];
        if (!need || !id) {
          if (need && need.missingIdentities > 0) lastError.set(rs, t('p2p-od-replicator.errors.noReservation', { rs, missing: need.missingIdentities }));
          return;
        }
        const driver = realServerDrivers(RED).get(rs);
        if (!driver) {
          lastError.set(rs, t('p2p-od-replicator.errors.noRealServer', { rs }));
          return;
        }
        inFlight.add(id.od);
        try {
          say('blue', 'ring', t('p2p-od-replicator.status.cloning', { od: id.od, rs }));
          const guestDriver = driver as Partial<GuestDriver>;
          if (inGuest && !(guestDriver.runner && guestDriver.reset && guestDriver.dumpxml && guestDriver.makeIsoImage)) {
            lastError.set(rs, `${rs}: its driver cannot reach guests (no runner/reset/dumpxml/makeIsoImage)`);
            return;
          }
          const login = { username: guestUser, privateKey: node.credentials.guestKey, signal: abort.signal };
          const guest =
            mode === 'seed'
              ? guestSeedHooks(guestDriver as GuestDriver, login)
              : mode === 'guest'
                ? guestReplicationHooks(guestDriver as GuestDriver, { ...login, odsFingerprint: odsHostKey })
                : undefined;
          const r = await replicateOne(id, {
            files,
            driver,
            ods: odsTemplate.replace('{rs}', rs),
            ...(guest ?? { reidentify: reidentify(rs) }),
            signal: abort.signal,
            onStep: (e: ReplicationEvent) => {
              if (closed) return;
              say(e.step === 'failed' ? 'red' : 'blue', 'ring', t('p2p-od-replicator.status.step', { od: e.od, step: t(`p2p-od-replicator.steps.${e.step}`) }));
              node.send({ topic: `replication/${e.step}`, payload: e });
            },
          });
          lastError.delete(rs);
          if (r.outcome === 'stood-down') return;
        } catch (e) {
          lastError.set(rs, t('p2p-od-replicator.errors.failed', { od: id.od, rs, message: (e as Error).message }));
          if (!closed) node.warn(lastError.get(rs));
          return;
        } finally {
          inFlight.delete(id.od);
        }
      }
    };

    const evaluate = () => {
      if (closed || !files || settingsError) return;
      const mine = replicatesFor(files.identity.hostname, { group: files.records('group'), problem: files.records('problem'), realserver: files.records('realserver') });
      for (const rs of mine) {
        if (workers.has(rs)) continue;
        const w = work(rs)
          .catch((e) => void lastError.set(rs, (e as Error).message))
          .finally(() => {
            workers.delete(rs);
            render();
          });
        workers.set(rs, w);
      }
      render();
    };

    const render = () => {
      if (closed || !files) return;
      if (settingsError) return say('red', 'ring', settingsError);
      const errs = [...lastError.values()];
      if (errs.length) return say('red', 'ring', errs[0]);
      const mine = replicatesFor(files.identity.hostname, { group: files.records('group'), problem: files.records('problem'), realserver: files.records('realserver') });
      if (workers.size) return say('blue', 'ring', t('p2p-od-replicator.status.cloningOn', { rs: [...workers.keys()].join(' ') }));
      if (!mine.length) return say('grey', 'ring', t('p2p-od-replicator.status.standingBy'));
      const plan = planPool(poolFiles(), inFlight);
      const have = plan.needs.filter((n) => mine.includes(n.realServer)).map((n) => `${n.realServer} ${n.have}/${n.target}`);
      say('green', 'dot', have.join(', '));
    };

    const schedule = () => {
      clearTimeout(debounce);
      debounce = setTimeout(evaluate, debounceMs);
    };

    const onChange = (c: ChangeEvent) => {
      if (WATCHED.has(c.file)) schedule();
    };

    if (settingsError) say('red', 'ring', settingsError);
    if (files) {
      files.on('change', onChange);
      schedule();
      const tick = () => {
        evaluate();
        if (!closed) ticker = setTimeout(tick, intervalMs);
      };
      ticker = setTimeout(tick, intervalMs);
    }

    node.on('input', (msg: NodeMessage, send: (m: NodeMessage) => void, done: (e?: Error) => void) => {
      try {
        if (settingsError) throw new Error(settingsError);
        if (!files) throw new Error(common(t, 'noWorkingStore'));
        evaluate();
        msg.topic = 'od-pool';
        msg.payload = {
          plan: planPool(poolFiles(), inFlight),
          replicatesFor: replicatesFor(files.identity.hostname, { group: files.records('group'), problem: files.records('problem'), realserver: files.records('realserver') }),
          cloning: [...inFlight],
          errors: Object.fromEntries(lastError),
        };
        send(msg);
        done();
      } catch (e) {
        done(e as Error);
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      abort.abort();
      clearTimeout(debounce);
      clearTimeout(ticker);
      files?.off('change', onChange);
      finishWithin(Promise.all([...workers.values()]), CLOSE_DEADLINE_MS, done);
    });
  }
  RED.nodes.registerType('p2p-od-replicator', P2pOdReplicatorNode, {
    credentials: { guestKey: { type: 'password' } },
  });
};
