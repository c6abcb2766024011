// p2p-real-server: the config node of one real server (KVM host) reached over SSH. It owns the one
// SSH connection to that host, shared by every node that uses it (reconnected with backoff, closed
// on redeploy), and exposes the hypervisor driver as `driver`. Nodes that use it may register for
// the connection's status (`register(user)`: the user's status() is called on each change).
// Its fields accept `${NAME}`; the private key is the credential, or else read once at start from
// a key file or an environment variable (never logged).
import * as fs from 'fs';
import { SshConnection, type ConnectionState, type HvError } from '../lib/hv/ssh-connection';
import { VirshDriver } from '../lib/hv/virsh-driver';
import { KeyError, privateKeyFrom, readRealServerSettings, type RealServerConfig } from '../lib/hv/real-server-settings';
import { EnvValueError, resolveEnv } from '../lib/records/env-value';
import { finishWithin } from './common/close';
import { translator, type Translate } from './common/i18n';

/** Close handlers must finish well inside Node-RED's 15 s. */
const CLOSE_DEADLINE_MS = 5000;

type Status = { fill: string; shape: string; text: string };

function statusOf(t: Translate, state: ConnectionState, err?: HvError): Status {
  switch (state) {
    case 'connected':
      return { fill: 'green', shape: 'dot', text: t('p2p-real-server.status.connected') };
    case 'connecting':
      return { fill: 'blue', shape: 'ring', text: t('p2p-real-server.status.connecting') };
    case 'disconnected':
      return {
        fill: 'red',
        shape: 'ring',
        text: err ? t('p2p-real-server.status.failed', { kind: err.kind, message: err.message }).slice(0, 80) : t('p2p-real-server.status.disconnected'),
      };
    case 'closed':
      return { fill: 'grey', shape: 'ring', text: t('p2p-real-server.status.closed') };
    default:
      return { fill: 'grey', shape: 'ring', text: t('p2p-real-server.status.idle') };
  }
}

export = function (RED: any) {
  function P2pRealServerNode(this: any, config: RealServerConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const users = new Set<any>();
    let current: Status = statusOf(t, 'idle');
    try {
      node.rsName = resolveEnv((config.name ?? '').trim(), 'real server name', process.env);
    } catch {
      node.rsName = '';
    }

    const fanOut = (s: Status) => {
      current = s;
      for (const u of users) u.status(s);
    };
    node.register = (user: any) => {
      users.add(user);
      user.status(current);
    };
    node.deregister = (user: any) => {
      users.delete(user);
    };
    node.connectionStatus = () => current;

    const refuse = (why: string, level: 'warn' | 'error') => {
      node.failure = why;
      node[level](`p2p-real-server: ${why}`);
      fanOut({ fill: 'red', shape: 'ring', text: why.slice(0, 80) });
      return undefined;
    };

    const connect = (): SshConnection | undefined => {
      let key: { key: string; source: string };
      try {
        key = privateKeyFrom(config, node.credentials ?? {}, process.env, (p) => fs.readFileSync(p, 'utf8'));
      } catch (e) {
        if (e instanceof KeyError && e.kind === 'none') {
          // The normal state of a freshly imported flow (credentials are never exported): say what
          // to do, without an error in the log.
          return refuse(t('p2p-real-server.errors.noKey'), 'warn');
        }
        if (e instanceof EnvValueError) return refuse(t('p2p-real-server.errors.envUnset', { field: e.field, variable: e.variable }), 'error');
        if (e instanceof KeyError) return refuse(t(`p2p-real-server.errors.${e.kind}`, e.values), 'error');
        return refuse(t('p2p-real-server.errors.key', { reason: (e as Error).message }), 'error');
      }
      try {
        const s = readRealServerSettings(config, { ...node.credentials, privateKey: key.key }, process.env);
        node.rsName = s.name;
        const c = new SshConnection(s.ssh);
        node.connection = c;
        node.driver = new VirshDriver(c, { uri: s.uri, label: s.name });
        node.keySource = key.source;
        c.on('state', (state: ConnectionState, err?: HvError) => {
          fanOut(statusOf(t, state, err));
          if (state === 'disconnected' && err) node.warn(t('p2p-real-server.warn.disconnected', { name: s.name, kind: err.kind, message: err.message }));
        });
        // Connect now so a wrong key or host shows at deploy, not at the first failure.
        c.connect().catch(() => undefined);
        return c;
      } catch (e) {
        if (e instanceof EnvValueError) return refuse(t('p2p-real-server.errors.envUnset', { field: e.field, variable: e.variable }), 'error');
        return refuse((e as Error).message, 'error');
      }
    };
    const conn = connect();

    node.on('close', (_removed: boolean, done: () => void) => {
      users.clear();
      if (!conn) return done();
      finishWithin(conn.close(), CLOSE_DEADLINE_MS, done);
    });
  }

  RED.nodes.registerType('p2p-real-server', P2pRealServerNode, {
    credentials: {
      privateKey: { type: 'password' },
      passphrase: { type: 'password' },
    },
  });
};
