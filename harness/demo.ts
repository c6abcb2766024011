// npm run demo — the loopback demo cluster: N Node-RED VMs (default 6), each on its own
// 127.0.x.y address with this package installed and the cluster flow deployed, and prints each
// editor's URL and how to make something happen. Ctrl-C stops everything it started.
//   npm run demo -- --vms 6
import * as fs from 'fs';
import * as path from 'path';
import { startCluster, Cluster } from './cluster/launcher';
import { allocLoopbackRange, pickPortFreeOnAll } from './net';
import { waitFor } from './wait';
import { semFlow } from './flows/sem-flow';

function option(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1 || v > 50) {
    console.error(`--${name} needs a whole number from 1 to 50`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const vms = option('vms', 6);
  const range = allocLoopbackRange();
  const ips = Array.from({ length: vms }, (_, i) => range.ip(i + 1));
  const semPort = await pickPortFreeOnAll(ips);
  const secret = 'demo-cluster-secret';
  console.log(`starting ${vms} Node-RED VMs on ${ips[0]}..${ips[ips.length - 1]} (about 3 s per VM on 2 cores)…`);
  let cluster: Cluster | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping every VM…');
    await cluster?.stopAll();
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  cluster = await startCluster({
    count: vms,
    ips,
    flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret, seeds: ips }),
  });
  const c = cluster;
  await waitFor(
    () => c.vms.every((vm) => (fs.readFileSync(path.join(vm.userDir, 'p2p-ha', 'group'), 'utf8').match(/^S\d/gm) ?? []).length === vms),
    { what: 'every VM in every group file', timeoutMs: 60_000, intervalMs: 250 },
  );
  console.log('\nThe cluster is up. Editors:');
  for (const vm of c.vms) console.log(`  ${vm.name}  ${vm.url}/   files: ${path.join(vm.userDir, 'p2p-ha')}`);
  const s1 = c.vms[0];
  console.log(`
Try:
  edit S1's files, and watch the diff arrive in every other editor's debug sidebar:
    curl -s -X POST -H 'Content-Type: text/plain' --data 'available-od, Add, OD1, 127.0.2.1, RS1' ${s1.url}/p2p-test/edit
  read the replicated files:   cat ${path.join(c.vms[1].userDir, 'p2p-ha', 'available-od')}
  stop a VM:                   kill -STOP <pid>   (pids: ${c.vms.map((v) => `${v.name}=${v.pid}`).join(' ')})

Ctrl-C stops everything.`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
