// npm run demo [-- --vms 6 --real-servers 3] — the loopback demo cluster: Node-RED VMs (S1..S6
// by default) on simulated real servers (RS1..RS3: SSH servers answering virsh/virt-clone), one
// suspended original server (OD) per real server, the cluster flow deployed on every VM (store, real servers, load collector,
// heartbeat, backup starter, OD replicator). It prints each editor's URL and reads commands:
//   kill S2          SIGKILL a VM: its watcher fences it and starts S2b on the least loaded host
//   fail RS3         a whole real server dies (its SSH endpoint and its VMs)
//   stop-service S4  S4's service answers 503 (a service fault, re-examined for 3 s)
//   files S1         print S1's group, problem, realserver and available-od files
//   quit             stop everything (Ctrl-C does the same)
// Nothing it started outlives it.
import * as readline from 'readline';
import { RecoveryCluster, rsOf } from './recovery/recovery-cluster';
import { httpRequest } from './http';

const HELP = `Commands:
  kill S2          SIGKILL a VM; its P1 watcher fences it and starts a backup (S2b) from a suspended OD
  fail RS3         a whole real server fails: its VMs come back on the other two, the pool refills
  stop-service S4  S4's service answers 503: a service fault, confirmed after 3 s
  files S1         print S1's management files
  quit             stop everything (or Ctrl-C)`;

/** A whole-number option `--name N` within [min, max]; exits with a message otherwise. */
function option(name: string, def: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min || v > max) {
    console.error(`--${name} needs a whole number from ${min} to ${max}`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const vms = option('vms', 6, 2, 20);
  const realServers = option('real-servers', 3, 1, 9);
  console.log(`starting the demo cluster: ${vms} VMs, ${realServers} simulated real servers, ${realServers} suspended ODs (20-60 s on 2 cores)…`);
  let rc: RecoveryCluster | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping every VM and real server…');
    await rc?.stop().catch((e: Error) => console.error(e.message));
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  rc = await RecoveryCluster.start({ replicator: true, vms, realServers });
  const c = rc;
  // Identities set aside for new ODs (the reservation file): three per real server, enough to
  // refill the pools after a whole real server fails. The replicators clone from them at once:
  // the pools start at one OD each, below the target (the average number of VMs per real server).
  for (let rs = 1; rs <= realServers; rs++) {
    for (let k = 1; k <= 3; k++) {
      const od = `OD${rs}${k}`;
      const ip = c.spareIp((rs - 1) * 3 + k - 1);
      c.reservedIps.set(od, ip);
      const r = await c.edit('S1', `reservation, Add, ${od}, ${ip}, RS${rs}`);
      if (r.status !== 200) throw new Error(`reserving ${od}: ${JSON.stringify(r.body)}`);
    }
  }
  console.log('\nThe cluster is up. Editors (open one, then the "cluster" tab of the sidebar):');
  for (const name of c.memberNames) {
    const vm = c.vm(name);
    console.log(`  ${name}  ${vm.url}/   on ${rsOf(name, realServers)}   pid ${vm.pid}`);
  }
  c.sims.forEach((s, i) => console.log(`  RS${i + 1} (simulated real server) ssh ${s.address}:${s.port}`));
  console.log(`\n${HELP}\n`);

  const run = async (line: string) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (!cmd) return;
    try {
      if (cmd === 'quit' || cmd === 'exit') return void stop(0);
      if (cmd === 'help') return console.log(HELP);
      if (!arg || !/^[A-Za-z0-9]+$/.test(arg)) return console.log(`"${cmd}" needs a name, e.g. ${cmd} S2`);
      if (cmd === 'kill') {
        await c.cluster.kill(c.vm(arg), 'SIGKILL');
        console.log(`${arg} killed; watch the sidebar timeline, or: files S1`);
      } else if (cmd === 'fail') {
        await c.killRealServer(arg);
        console.log(`${arg} failed with its VMs`);
      } else if (cmd === 'stop-service') {
        const vm = c.vm(arg);
        const r = await httpRequest(`${vm.url}/svc-stop`, { method: 'POST', body: '', timeoutMs: 5000 });
        console.log(`${arg}'s service: ${r.body}`);
      } else if (cmd === 'files') {
        for (const f of ['group', 'problem', 'realserver', 'available-od']) console.log(`--- ${arg}: ${f}\n${c.fileOf(arg, f).trim()}`);
      } else console.log(`unknown command "${cmd}"\n${HELP}`);
    } catch (e) {
      console.log(`${cmd} ${arg}: ${(e as Error).message}`);
    }
  };
  if (process.stdin.isTTY || process.env.P2P_DEMO_COMMANDS === 'stdin') {
    const rl = readline.createInterface({ input: process.stdin, prompt: 'demo> ' });
    rl.on('line', (line) => void run(line).then(() => rl.prompt()));
    rl.prompt();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
