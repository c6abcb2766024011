// One light "VM" of bench:scale: a bare Node.js process running this package's ReplicatedStore
// (the same lib/sem code, the same HTTP routes, keep-alive client, journal and text files as the
// p2p-store node) without a Node-RED runtime around it, so that 100 of them fit on a 2-core machine.
// It is driven by its parent over the IPC channel: edit, digest, member count, missing keys. Configuration comes
// in the SCALE_VM environment variable (JSON).
import { ReplicatedStore } from '../lib/sem/replicated-store';
import type { Edit } from '../lib/records/cluster-api';
import type { FileName } from '../lib/records/files';
import { fromMember } from '../lib/records/records';

/** One light VM's settings, passed by bench/scale-cluster.ts in SCALE_VM (JSON). */
export interface VmConfig {
  hostname: string;
  address: string;
  port: number;
  folder: string;
  seeds: string[];
  syncIntervalMs: number;
  requestTimeoutMs: number;
  /** The wire version to speak (default: the current one); 1 for a rolling upgrade's old VMs. */
  protocolVersion?: 1 | 2;
}

export type VmCommand =
  | { cmd: 'edit'; edit: Edit }
  | { cmd: 'digest' }
  | { cmd: 'members' }
  | { cmd: 'versions' }
  | { cmd: 'rounds' }
  | { cmd: 'answers' }
  | { cmd: 'pairKeys' }
  | { cmd: 'missing'; file: FileName; keys: string[] }
  | { cmd: 'stop' };
export type VmRequest = VmCommand & { id: number };

const cfg = JSON.parse(process.env.SCALE_VM ?? '{}') as VmConfig;
const store = new ReplicatedStore({
  identity: { hostname: cfg.hostname, address: cfg.address, realServer: 'RS1', services: '-' },
  folder: cfg.folder,
  port: cfg.port,
  secret: 'scale-bench-secret',
  seeds: cfg.seeds,
  syncIntervalMs: cfg.syncIntervalMs,
  requestTimeoutMs: cfg.requestTimeoutMs,
  protocolVersion: cfg.protocolVersion,
});
store.on('warning', () => undefined);

// The parent gone (killed), this process must not linger.
process.on('disconnect', () => {
  void store.stop().finally(() => process.exit(0));
});

process.on('message', (m: VmRequest) => {
  const reply = (body: unknown) => process.send?.({ id: m.id, ...(body as object) });
  const run = async () => {
    switch (m.cmd) {
      case 'edit': {
        const r = await store.edit(m.edit);
        return { ms: r.ms, acked: r.acked.length, failed: r.failed.length, why: r.failed.map((f) => `${f.peer}: ${f.error}`), peers: r.acked.map((a) => [a.peer, a.ms]) };
      }
      case 'digest':
        return { digest: store.digest() };
      case 'missing':
        return { missing: m.keys.filter((k) => !store.get(m.file, k)) };
      case 'members':
        return { members: store.records('group').length };
      case 'versions':
        return { versions: store.peerWireVersions() };
      case 'rounds':
        return store.roundCounts();
      case 'answers':
        return store.answersAccepted();
      case 'pairKeys':
        // Members whose group record publishes an X25519 key (answers by pair key need both ends').
        return { published: store.records('group').filter((r) => fromMember(r).dhKey !== '-').length };
      case 'stop':
        await store.stop();
        setImmediate(() => process.exit(0));
        return {};
    }
  };
  run().then(reply, (e: Error) => reply({ error: e.message }));
});

store.start().then(
  () => process.send?.({ id: 0, started: true }),
  (e: Error) => {
    process.send?.({ id: 0, error: e.message });
    process.exit(1);
  },
);
