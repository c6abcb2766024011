// npm run bench:hv — every driver operation over SSH (OpenSSH sshd, one kept connection, as the
// p2p-real-server node keeps it) against a real libvirtd (test driver), p50/p99 over RUNS runs,
// beside the same command line run locally with /bin/sh (no SSH), so SSH's cost is a ratio.
// Last line: one JSON object.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startLibvirtd, type Libvirtd } from '../harness/real/libvirtd';
import { LocalRunner } from '../harness/real/local-runner';
import { missingMessage, missingPrograms } from '../harness/real/programs';
import { startSshd, type Sshd, connectionTo } from '../harness/real/sshd';
import { SshConnection } from '../lib/hv/ssh-connection';
import { VirshDriver } from '../lib/hv/virsh-driver';

const RUNS = Number(process.env.HV_BENCH_RUNS ?? 30);

function xml(name: string, mac: string): string {
  return (
    `<domain type='test'><name>${name}</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>` +
    `<os><type arch='i686'>hvm</type></os><devices><interface type='network'><mac address='${mac}'/>` +
    `<source network='default'/></interface></devices></domain>`
  );
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const r2 = (x: number) => Math.round(x * 100) / 100;

/** One operation: optional setup before each timed call and cleanup after (not timed). */
interface Op {
  name: string;
  setup?: (d: VirshDriver, i: number) => Promise<void>;
  run: (d: VirshDriver, i: number) => Promise<unknown>;
  cleanup?: (d: VirshDriver, i: number) => Promise<void>;
}

async function measure(d: VirshDriver, op: Op): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (op.setup) await op.setup(d, i);
    const t0 = process.hrtime.bigint();
    await op.run(d, i);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (op.cleanup) await op.cleanup(d, i);
  }
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const missing = missingPrograms();
  if (missing.length) {
    console.error(missingMessage(missing));
    process.exitCode = 1;
    return;
  }
  let libvirtd: Libvirtd | undefined;
  let sshd: Sshd | undefined;
  let conn: SshConnection | undefined;
  const localDir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-hv-bench-'));
  try {
    libvirtd = await startLibvirtd();
    sshd = await startSshd({ env: { LIBVIRT_DEFAULT_URI: libvirtd.uri } });
    conn = connectionTo(sshd);
    const tc = process.hrtime.bigint();
    await conn.connect();
    const connectMs = Number(process.hrtime.bigint() - tc) / 1e6;
    const ssh = new VirshDriver(conn, { uri: libvirtd.uri });
    const local = new VirshDriver(new LocalRunner(), { uri: libvirtd.uri });
    const targets: [string, VirshDriver, string][] = [
      ['ssh', ssh, sshd.userDir],
      ['local', local, localDir],
    ];
    // A template (shut off) and a running domain for the state operations.
    await local.define(xml('bench-ods', '52:54:00:bb:00:01'));
    await local.define(xml('bench-vm', '52:54:00:bb:00:02'));
    await local.start('bench-vm');

    const ops = (dir: string): Op[] => [
      { name: 'list', run: (d) => d.listDomains() },
      { name: 'domstate', run: (d) => d.domstate('bench-vm') },
      { name: 'domiflist', run: (d) => d.domiflist('bench-vm') },
      { name: 'suspend', run: (d) => d.suspend('bench-vm'), cleanup: (d) => d.resume('bench-vm') },
      { name: 'resume', setup: (d) => d.suspend('bench-vm'), run: (d) => d.resume('bench-vm') },
      { name: 'managedsave', run: (d) => d.managedsave('bench-vm'), cleanup: (d) => d.start('bench-vm') },
      { name: 'start', setup: (d) => d.destroy('bench-vm'), run: (d) => d.start('bench-vm') },
      { name: 'destroy', run: (d) => d.destroy('bench-vm'), cleanup: (d) => d.start('bench-vm') },
      { name: 'shutdown', run: (d) => d.shutdown('bench-vm'), cleanup: (d) => d.start('bench-vm') },
      { name: 'define', run: (d, i) => d.define(xml(`bench-def${i}`, '52:54:00:bb:01:01')), cleanup: (d, i) => d.undefine(`bench-def${i}`) },
      { name: 'undefine', setup: (d, i) => d.define(xml(`bench-def${i}`, '52:54:00:bb:01:01')).then(() => undefined), run: (d, i) => d.undefine(`bench-def${i}`) },
      {
        name: 'clone',
        run: (d, i) => d.clone('bench-ods', `bench-od${i}`, `52:54:00:bb:02:${(i % 256).toString(16).padStart(2, '0')}`),
        cleanup: (d, i) => d.undefine(`bench-od${i}`),
      },
      { name: 'hostLoad', run: (d) => d.hostLoad() },
      { name: 'hostMemory', run: (d) => d.hostMemory() },
      { name: 'copyFile', run: (d) => d.copyFile(`${dir}/install.sh`, 'echo "installing $TARGET"\n'.repeat(20)) },
      { name: 'runFile', setup: (d) => d.copyFile(`${dir}/install.sh`, 'echo "installing $TARGET"\n'), run: (d) => d.runFile(`${dir}/install.sh`, { TARGET: 'S2' }) },
    ];

    const result: Record<string, Record<string, number>> = {};
    const names = ops('/').map((o) => o.name);
    for (const name of names) {
      const row: Record<string, number> = {};
      for (const [label, d, dir] of targets) {
        const op = ops(dir).find((o) => o.name === name)!;
        const t = await measure(d, op);
        row[`${label}_p50_ms`] = r2(pct(t, 50));
        row[`${label}_p99_ms`] = r2(pct(t, 99));
      }
      row.ratio = r2(row.ssh_p50_ms / row.local_p50_ms);
      result[name] = row;
      console.log(
        `${name.padEnd(12)} ssh p50 ${row.ssh_p50_ms.toFixed(1).padStart(7)} ms  p99 ${row.ssh_p99_ms.toFixed(1).padStart(7)} ms | ` +
          `local p50 ${row.local_p50_ms.toFixed(1).padStart(7)} ms  p99 ${row.local_p99_ms.toFixed(1).padStart(7)} ms | x${row.ratio}`,
      );
    }
    console.log(
      JSON.stringify({
        bench: 'hv',
        runs: RUNS,
        target: 'OpenSSH sshd + libvirtd 9.0 test driver (test:///default), one kept ssh2 connection',
        connect_ms: r2(connectMs),
        cpus: os.cpus().length,
        loadavg: os.loadavg().map(r2),
        ops: result,
      }),
    );
  } finally {
    await conn?.close();
    await sshd?.stop();
    await libvirtd?.stop();
    fs.rmSync(localDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
