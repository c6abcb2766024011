// A p2p-store config node for the node tests of this branch, built on the real ReplicatedStore:
// the package's own p2p-store node was not on main yet when these tests were written. It exposes
// what the real one promises: `files` (ClusterFiles, loaded at construction) and `ready`.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../../lib/replicated-store';

export = function (RED: any) {
  function StoreShim(this: any, config: { address: string; port: number }) {
    RED.nodes.createNode(this, config);
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-hv-store-'));
    const store = new ReplicatedStore({
      identity: { hostname: 'S1', address: config.address, realServer: 'RS1', services: '-' },
      folder,
      port: Number(config.port),
      secret: 'node-test-secret',
      syncIntervalMs: 60000,
    });
    this.files = store;
    this.ready = store.start();
    this.on('close', (done: () => void) => {
      store.stop().finally(() => {
        fs.rmSync(folder, { recursive: true, force: true });
        done();
      });
    });
  }
  RED.nodes.registerType('p2p-store', StoreShim);
};
