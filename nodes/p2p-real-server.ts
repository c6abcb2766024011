// p2p-real-server: the config node of one real server (KVM host) reached over SSH. It owns the one
// SSH connection to that host, shared by every node that uses it (reconnected with backoff, closed
// on redeploy), and exposes the hypervisor driver as `driver`. Nodes that use it register for
// status fan-out: the connection's state shows on each of them.
import { SshConnection, type ConnectionState, type HvError } from '../lib/hv/ssh-connection';
import { VirshDriver } from '../lib/hv/virsh-driver';
import { readRealServerSettings, type RealServerConfig } from '../lib/hv/real-server-settings';
import { finishWithin } from './common/close';

/** Close handlers must finish well inside Node-RED's 15 s. */
const CLOSE_DEADLINE_MS = 5000;

type Status = { fill: string; shape: string; text: string };

function statusOf(state: ConnectionState, err?: HvError): Status {
  switch (state) {
    case 'connected':
      return { fill: 'green', shape: 'dot', text: 'connected' };
    case 'connecting':
      return { fill: 'blue', shape: 'ring', text: 'connecting' };
    case 'disconnected':
      return { fill: 'red', shape: 'ring', text: err ? `${err.kind}: ${err.message}`.slice(0, 80) : 'disconnected' };
    case 'closed':
      return { fill: 'grey', shape: 'ring', text: 'closed' };
    default:
      return { fill: 'grey', shape: 'ring', text: 'idle' };
  }
}

export = function (RED: any) {
  function P2pRealServerNode(this: any, config: RealServerConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const users = new Set<any>();
    let current: Status = statusOf('idle');
    node.rsName = (config.name ?? '').trim();

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

    const connect = (): SshConnection | undefined => {
      if (!node.credentials?.privateKey) {
        // The normal state of a freshly imported flow (credentials are never exported): say what
        // to do, without an error in the log.
        node.failure = 'set the private key (credential) of this real server';
        node.warn(`p2p-real-server: ${node.failure}`);
        fanOut({ fill: 'red', shape: 'ring', text: node.failure });
        return undefined;
      }
      try {
        const s = readRealServerSettings(config, node.credentials);
        const c = new SshConnection(s.ssh);
        node.connection = c;
        node.driver = new VirshDriver(c, { uri: s.uri, label: s.name });
        c.on('state', (state: ConnectionState, err?: HvError) => {
          fanOut(statusOf(state, err));
          if (state === 'disconnected' && err) node.warn(`${s.name}: ${err.kind}: ${err.message}`);
        });
        // Connect now so a wrong key or host shows at deploy, not at the first failure.
        c.connect().catch(() => undefined);
        return c;
      } catch (e) {
        node.failure = (e as Error).message;
        node.error(`p2p-real-server: ${node.failure}`);
        fanOut({ fill: 'red', shape: 'ring', text: node.failure.slice(0, 80) });
        return undefined;
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
