// p2p-store: the config node that owns this runtime's replicated management file store
// (lib/replicated-store.ts): this VM's identity, the files' folder, the cluster secret, the SEM
// settings. Every other node of the package reads and edits the files through it.
// Identity fields accept `${NAME}` and, left empty, come from P2P_HOSTNAME, P2P_ADDRESS,
// P2P_REAL_SERVER, P2P_SERVICES (hostname defaults to os.hostname()), so one exported flow serves
// every VM and every OD clone (common/store-identity.ts). A role taken by a role call and not yet
// in the flow (its deploy did not happen: a crash after the answer, or a deploy that failed) is in
// the store folder's role file: the store starts as that role, says so, and deploys the flow to
// persist it (lib/recovery/role-file.ts).
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore, DEFAULT_SEM_PORT, StoreStatus, validateIdentity, type StoreOptions } from '../lib/sem/replicated-store';
import { parkStore, takeParkedStore } from './common/store-handover';
import { EnvValueError } from '../lib/records/env-value';
import { MissingIdentityError, storeIdentity } from './common/store-identity';
import type { RED } from './common/node-red';
import type { StoreListener, StoreNode } from './common/store-user';
import { translator } from './common/i18n';
import { registry } from './common/cluster-registry';
import { finishWithin } from './common/close';
import { installRoleEndpoint, persistRole } from './common/role-endpoint';
import { onUnsavedChange, readRoleFile, removeRoleFile, roleFilePath, setUnsaved, unsavedWhy } from './common/role-persist';
import { startIdentity, type StartChoice } from '../lib/recovery/role-file';

interface StoreConfig {
  name?: string;
  hostname?: string;
  address?: string;
  realServer?: string;
  services?: string;
  folder?: string;
  port?: string | number;
  seeds?: string;
  syncInterval?: string | number;
  requestTimeout?: string | number;
  autoJoin?: boolean;
  /** End of the cluster-secret rotation window (ISO time): until then the previous secret (a
   * credential) is accepted too. */
  previousUntil?: string;
  /** Benchmarks only (not in the editor): `true` turns signing and encryption off. */
  insecureWire?: boolean;
  /** Not in the editor: 1 makes the store speak wire version 1 exactly as the release before
   * version 2 (docs/operations.md, "Upgrading"); anything else: the current version. */
  protocolVersion?: string | number;
}

const CLOSE_DEADLINE_MS = 10_000;

export = function (RED: RED) {
  function P2pStoreNode(this: StoreNode, config: StoreConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const users = new Set<StoreListener>();
    let status: StoreStatus = { state: 'starting', text: 'starting', message: { id: 'starting' } };
    let store: ReplicatedStore | undefined;
    /** The store's settings but its identity (store-handover.ts). */
    let settings = '';
    /** The store was handed over running by the previous instance (a role call's deploy). */
    let adopted = false;
    /** A handed store that could not be taken is stopping: this one listens after it. */
    let startAfter: Promise<void> | undefined;

    /** The role this store started as from its role file (to be deployed into the flow). */
    let fromRoleFile: Extract<StartChoice, { use: 'file' }> | undefined;

    node.storeStatus = () => status;
    node.register = (user: StoreListener) => {
      users.add(user);
      user.storeChanged(status);
    };
    node.deregister = (user: StoreListener) => {
      users.delete(user);
    };
    /** The store's own status, before the role's "flow not saved" is added to it. */
    let own: StoreStatus = status;
    const setStatus = (s: StoreStatus) => {
      own = s;
      const why = unsavedWhy(node.id);
      // A role the flow does not hold yet: degraded (yellow), with the reason, until a deploy saves it.
      status = why && (s.state === 'ok' || s.state === 'degraded') ? { state: 'degraded', text: `${s.text}; flow not saved: ${why}` } : s;
      for (const u of users) u.storeChanged(status);
    };
    const stopFollowing = onUnsavedChange(node.id, () => setStatus(own));

    const fail = (why: string) => {
      node.failure = why;
      node.error(`p2p-store: ${why}`);
      setStatus({ state: 'error', text: why });
    };

    const create = (): ReplicatedStore | undefined => {
      if (!node.credentials?.secret) {
        // The normal state of a freshly imported flow (credentials are never exported): say what
        // to do, without an error in the log.
        node.failure = t('p2p-store.errors.noSecret');
        node.warn(`p2p-store: ${node.failure}`);
        setStatus({ state: 'error', text: node.failure });
        return undefined;
      }
      const previous = node.credentials.previousSecret;
      const until = config.previousUntil ? Date.parse(config.previousUntil) : NaN;
      if (previous && config.previousUntil && !Number.isFinite(until)) {
        fail(t('p2p-store.errors.badPreviousUntil', { value: JSON.stringify(config.previousUntil) }));
        return undefined;
      }
      try {
        const userDir = RED.settings.userDir ?? path.join(os.homedir(), '.node-red');
        const folder = config.folder ? path.resolve(userDir, config.folder) : path.join(userDir, 'p2p-ha');
        const start = roleAtStart(validateIdentity(storeIdentity(config, process.env)), folder);
        const options: StoreOptions = {
          identity: start.identity,
          folder,
          port: Number(config.port) || DEFAULT_SEM_PORT,
          secret: node.credentials.secret,
          ...(previous && Number.isFinite(until) ? { previousSecret: { secret: previous, until } } : {}),
          seeds: (start.use === 'file' ? start.seeds : undefined) ?? config.seeds ?? '',
          syncIntervalMs: Number(config.syncInterval) || 2000,
          requestTimeoutMs: Number(config.requestTimeout) || 2000,
          autoJoin: config.autoJoin !== false,
          wireSecurity: config.insecureWire !== true,
          protocolVersion: Number(config.protocolVersion) === 1 ? 1 : undefined,
        };
        // Everything but the identity and the seeds (read only at a start): a store handed over
        // by a role call's deploy is taken only if these are what it was made with.
        const { identity, seeds: _seeds, ...rest } = options;
        settings = JSON.stringify(rest);
        const handed = takeParkedStore(node.id, settings, validateIdentity(identity));
        if (handed.adopted) {
          adopted = true;
          return handed.adopted;
        }
        startAfter = handed.stopping;
        return new ReplicatedStore(options);
      } catch (e) {
        // An unset ${NAME} or a value (typed or substituted) the store refuses: nothing starts.
        if (e instanceof EnvValueError) fail(t('p2p-store.errors.envUnset', { field: e.field, variable: e.variable }));
        else if (e instanceof MissingIdentityError) fail(t('p2p-store.errors.emptyField', { field: e.field, variable: e.variable }));
        else fail((e as Error).message);
        return undefined;
      }
    };
    /**
     * What this store starts as: its flow's identity, or the role in its folder's role file when
     * the flow still gives the identity it had before that role (the deploy did not happen).
     */
    function roleAtStart(flow: ReturnType<typeof validateIdentity>, folder: string): StartChoice {
      let choice: StartChoice;
      try {
        choice = startIdentity(flow, readRoleFile(folder));
      } catch (e) {
        node.warn(`p2p-store: ${(e as Error).message}: the role file is ignored, the flow's identity ${flow.hostname} is used`);
        return { use: 'flow', identity: flow, removeFile: false };
      }
      if (choice.use === 'file') {
        node.warn(`p2p-store: ${choice.why}: starting as ${choice.identity.hostname} (kept in ${roleFilePath(folder)}), and deploying the flow to persist it`);
        setUnsaved(node.id, `runs as ${choice.identity.hostname} from its role file; the flow still says ${flow.hostname}`);
        fromRoleFile = choice;
        return choice;
      }
      if (choice.why) node.log(`p2p-store: ${choice.why}`);
      if (choice.removeFile) {
        const removed = removeRoleFile(folder);
        if (removed !== true) node.warn(`p2p-store: the role file ${roleFilePath(folder)} could not be removed: ${removed}`);
        setUnsaved(node.id, undefined);
      }
      return choice;
    }

    store = create();
    node.files = store;

    const onWarning = (w: string) => node.warn(w);
    if (store) {
      const s = store;
      registry.addStore(node.id, s);
      s.on('status', setStatus);
      s.on('warning', onWarning);
      if (adopted) {
        // Already listening under this identity: nothing to load or start.
        setStatus(s.status);
        node.log(t('p2p-store.log.listening', { address: s.identity.address, port: s.port, folder: s.folder }));
      } else {
        (startAfter ?? Promise.resolve()).then(() => s.start()).then(
          () => node.log(t('p2p-store.log.listening', { address: s.identity.address, port: s.port, folder: s.folder })),
          (e: Error) => fail(e.message),
        );
      }
    }

    // Started as the role of its role file: once the flows run (a deploy in the middle of the
    // runtime's start would find them half-made), deploy the flow with that role, in the role
    // calls' queue. Its failure is said by persistRole (error log, status).
    let closed = false;
    let persistTimer: NodeJS.Timeout | undefined;
    const persistFromFile = () => {
      clearTimeout(persistTimer);
      RED.events?.removeListener('flows:started', persistFromFile);
      if (closed || !fromRoleFile || !store) return;
      const r = fromRoleFile;
      fromRoleFile = undefined;
      persistRole(RED, node.id, { ...r.identity, autoJoin: store.autoJoin, ...(r.seeds !== undefined ? { seeds: r.seeds } : {}) }).catch(() => undefined);
    };
    if (fromRoleFile && store) {
      RED.events?.on('flows:started', persistFromFile);
      persistTimer = setTimeout(persistFromFile, 1000);
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      clearTimeout(persistTimer);
      RED.events?.removeListener('flows:started', persistFromFile);
      stopFollowing();
      registry.removeStore(node.id);
      if (!store) return done();
      store.off('status', setStatus);
      store.off('warning', onWarning);
      // A role call's deploy: the store, already switched to the new identity, runs on for the next instance.
      if (!removed && parkStore(node.id, store, settings)) return done();
      finishWithin(store.stop(), CLOSE_DEADLINE_MS, done);
    });
  }

  // Key rotation and revocation (docs/security.md): admin calls on one VM's store, behind the
  // editor's authentication with the package's write permission.
  type Res = { status(n: number): Res; json(v: unknown): void };
  const withStore = (id: string, res: Res): ReplicatedStore | undefined => {
    const n = RED.nodes.getNode(id) as StoreNode | null;
    const files = n?.files;
    if (!(files instanceof ReplicatedStore)) {
      res.status(404).json({ error: `no running p2p-store ${JSON.stringify(String(id))}` });
      return undefined;
    }
    return files;
  };
  RED.httpAdmin.post('/p2p-ha/store/:id/rotate-key', RED.auth.needsPermission('p2p-ha.write'), (req: { params: { id: string } }, res: Res) => {
    const s = withStore(req.params.id, res);
    if (!s) return;
    s.rotateKey().then(
      (publicKey) => res.json({ hostname: s.identity.hostname, publicKey }),
      (e: Error) => res.status(409).json({ error: e.message }),
    );
  });
  RED.httpAdmin.post('/p2p-ha/store/:id/revoke', RED.auth.needsPermission('p2p-ha.write'), (req: { params: { id: string }; body?: { hostname?: unknown } }, res: Res) => {
    const s = withStore(req.params.id, res);
    if (!s) return;
    const hostname = req.body?.hostname;
    if (typeof hostname !== 'string') return void res.status(400).json({ error: 'body must be {"hostname": "..."}' });
    s.revoke(hostname).then(
      (r) => res.json({ revoked: hostname, line: r.line, acked: r.acked.map((a) => a.peer), failed: r.failed.map((f) => f.peer) }),
      (e: Error) => res.status(409).json({ error: e.message }),
    );
  });

  // The signed role call another VM sends to make this VM a backup (no editor permission: the call
  // is authenticated by its VM signature, lib/sem/admin-call.ts).
  installRoleEndpoint(RED);

  RED.nodes.registerType('p2p-store', P2pStoreNode, {
    credentials: { secret: { type: 'password' }, previousSecret: { type: 'password' } },
  });
};
