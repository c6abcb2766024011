// Table 1 of the note rebuilt on real guests (issue 13): real libvirt 9.0 with the QEMU driver,
// Debian-kernel guests under software emulation (this machine's KVM runs no stock kernel), a real
// OpenSSH sshd as the real server's SSH. Measures, on the same guests in the same run:
//   - OD creation with the package's default replication (mode seed): clone, fix-xml, seed (the
//     identity written before the first boot: the note's "settings"), start, boot (to the SSH
//     banner), verify (login with the new host key pinned, hostname), restart (none: 0), suspend;
//   - the method, one failure: detect (the package's TargetMonitor with its defaults: check every
//     1 s, probe timeout 0.5 s, service re-examination 3 s), fence, place, resume, install (with
//     the OD's SSH readiness, started at the resume, beside the fence), role, files, to service, total;
//   - the method, two failures at once;
//   - baseline 1: cold start of a shut-off backup (fence, virsh start, readiness, install);
//   - baseline 2: the conventional method, one central manager with a central HTTP file server,
//     failures handled in turn: one, two, three failures.
// The last line is one JSON object. Rounds: REAL_VM_RUNS (default 2).
import * as os from 'os';
import { startGuestBed, guestBedMissing, type GuestBed } from '../harness/real/guest-env';
import {
  bringUp,
  hangAndDetect,
  installProcedure,
  installProcedureOnHost,
  makeVm,
  recoverColdStart,
  recoverConventional,
  recoverWithMethod,
  resetOd,
  resetServer,
  RS,
  scenarioFiles,
  startFileServer,
  type GuestVm,
} from '../harness/real/guest-recovery';
import { MemoryFiles } from '../test/support/memory-files';
import { summarize } from './stats';
import { MONITOR_DEFAULTS } from '../lib/monitor/target-monitor';

const RUNS = Math.max(1, Number(process.env.REAL_VM_RUNS) || 2);
const NOTE = {
  start_one_suspended_s: 2.17,
  start_two_at_once_s: 2.27,
  start_one_not_suspended_s: 14.0,
  file_server_one_s: 4.41,
  file_server_two_s: 7.76,
  file_server_not_suspended_s: 20.1,
  od_creation_s: 66.4,
  od_clone_s: 35.6,
  od_settings_s: 30.8,
  reexamination_service_s: 3,
};

const r3 = (ms: number) => Math.round(ms) / 1000;
const sec = (xs: number[]) => {
  const s = summarize(xs.map((x) => x / 1000));
  return { n: s.n, p50: s.p50, p99: s.p99, min: s.min, max: s.max };
};

/** Two at a time at most: software-emulated boots on 2 cores. */
async function inPairs<T>(items: T[], f: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 2) await Promise.all(items.slice(i, i + 2).map(f));
}

async function main(): Promise<void> {
  const missing = guestBedMissing();
  if (missing) throw new Error(`bench:real-vm cannot run: ${missing}`);
  let bed: GuestBed | undefined;
  let fileServer: Awaited<ReturnType<typeof startFileServer>> | undefined;
  try {
    const loadStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
    const tBed = performance.now();
    bed = await startGuestBed();
    const bedMs = performance.now() - tBed;
    const scratch = new MemoryFiles({ hostname: 'M1', address: '127.0.0.1', realServer: RS, services: '-' });
    const servers: GuestVm[] = [];
    const ods: GuestVm[] = [];
    const creation: Record<string, number[]> = { clone: [], fixXml: [], seed: [], start: [], boot: [], verify: [], restart: [], suspend: [], total: [] };
    for (let i = 1; i <= 3; i++) {
      for (const [list, name, addr] of [
        [servers, `rv-s${i}`, `10.0.2.${40 + i}`],
        [ods, `rv-od${i}`, `10.0.2.${50 + i}`],
      ] as [GuestVm[], string, string][]) {
        const vm = await makeVm(bed, name, addr, scratch);
        list.push(vm);
        const t = vm.made.timings;
        const st = vm.made.reidentifySteps ?? {};
        creation.clone.push(t.clone);
        creation.fixXml.push(t.fixXml);
        creation.seed.push(t.seed);
        creation.start.push(t.start);
        creation.boot.push(st.boot ?? 0);
        creation.verify.push(st.verify ?? 0);
        creation.restart.push(st.restart ?? 0);
        creation.suspend.push(t.suspend);
        creation.total.push(t.total);
        console.log(`made ${name}: ${Math.round(t.total)} ms ${JSON.stringify({ ...t, ...st }, (_k, v) => (typeof v === 'number' ? Math.round(v) : v))}`);
      }
    }
    await inPairs(servers, (s) => resetServer(bed!, s));
    await installProcedureOnHost(bed, servers.map((s) => s.name));
    const proc = installProcedure(`${bed.guestDir}/guest_key`);
    const odByName = new Map(ods.map((o) => [o.name, o]));
    const restore = async () => {
      await inPairs(servers, (s) => resetServer(bed!, s));
      await inPairs(ods, (o) => resetOd(bed!, o));
    };

    const m1: Record<string, number[]> = { detect: [], fence: [], place: [], resume: [], install: [], role: [], files: [], to_service: [], total: [] };
    const m2: number[] = [];
    const cold: Record<string, number[]> = { fence: [], start_to_ssh: [], install: [], to_service: [] };
    const conv: number[][] = [[], [], []];
    const resumeToSsh: number[] = [];

    for (let round = 1; round <= RUNS; round++) {
      // The method, one failure, detection included.
      {
        const files = scenarioFiles(servers, ods);
        const { t0, detectMs: detect } = await hangAndDetect(bed, servers[0]);
        const run = await recoverWithMethod(bed, files, servers[0], odByName);
        const t = run.result.timings;
        m1.detect.push(detect);
        m1.fence.push(t.fence);
        m1.place.push(t.place);
        m1.resume.push(t.resume);
        m1.install.push(t.install);
        m1.role.push(t.role);
        m1.files.push(t.edits);
        m1.to_service.push(run.toServiceMs);
        m1.total.push(performance.now() - t0);
        console.log(`round ${round} method/1: detect ${Math.round(detect)} + to service ${Math.round(run.toServiceMs)} ms (fence ${Math.round(t.fence)}, resume ${Math.round(t.resume)}, install ${Math.round(t.install)}; load ${os.loadavg()[0].toFixed(1)})`);
        await restore();
      }
      // The method, two failures at once (detection excluded: both plans start together).
      {
        const files = scenarioFiles(servers, ods);
        await Promise.all(servers.slice(0, 2).map((s) => bed!.driver.suspend(s.name)));
        const runs = await Promise.all(servers.slice(0, 2).map((s) => recoverWithMethod(bed!, files, s, odByName)));
        m2.push(Math.max(...runs.map((r) => r.toServiceMs)));
        console.log(`round ${round} method/2: ${runs.map((r) => Math.round(r.toServiceMs)).join(' ms, ')} ms`);
        await restore();
      }
      // Resume to SSH of a suspended OD (the premise of the method).
      for (const o of ods) {
        resumeToSsh.push(await bringUp(bed, o, 'resume'));
        await bed.driver.suspend(o.name);
      }
      // Baseline 1: cold start of a shut-off backup.
      {
        await bed.driver.destroy(ods[0].name);
        await bed.driver.suspend(servers[0].name);
        const c = await recoverColdStart(bed, servers[0], ods[0]);
        cold.fence.push(c.fenceMs);
        cold.start_to_ssh.push(c.startMs);
        cold.install.push(c.installMs);
        cold.to_service.push(c.toServiceMs);
        console.log(`round ${round} cold start: ${Math.round(c.toServiceMs)} ms`);
        await restore();
      }
      // Baseline 2: the conventional method with a central file server, 1, 2, 3 failures.
      for (let k = 1; k <= 3; k++) {
        const content = new Map<string, string>();
        content.set('/files/available-od', ods.map((o) => `${o.name}, ${o.address}, ${RS}`).join('\n') + '\n');
        content.set('/files/group', servers.map((s) => `${s.name}, ${s.address}, ${RS}, http:80/`).join('\n') + '\n');
        for (const s of servers) content.set(`/procedures/${s.name}.sh`, proc);
        fileServer = await startFileServer(content);
        const failed = servers.slice(0, k);
        await Promise.all(failed.map((s) => bed!.driver.suspend(s.name)));
        const times = await recoverConventional(bed, fileServer.port, failed, ods);
        conv[k - 1].push(times[times.length - 1]);
        console.log(`round ${round} conventional/${k}: ${times.map(Math.round).join(' ms, ')} ms (${fileServer.requests()} file-server requests)`);
        await fileServer.close();
        fileServer = undefined;
        await restore();
      }
    }

    const summary = (o: Record<string, number[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, sec(v)]));
    const m1Total = summarize(m1.total).p50;
    const share = Object.fromEntries(
      ['detect', 'fence', 'place', 'resume', 'install', 'role', 'files'].map((k) => [k, Math.round((summarize(m1[k]).p50 / m1Total) * 1000) / 1000]),
    );
    console.log(
      JSON.stringify({
        bench: 'real-vm',
        target: 'libvirt 9.0 QEMU driver, Debian 6.1 kernel guests (256 MiB, 1 vCPU) under software emulation (TCG), real OpenSSH sshd as the real server',
        rounds: RUNS,
        cpus: os.cpus().length,
        loadavg_start: loadStart,
        loadavg_end: os.loadavg().map((x) => Math.round(x * 100) / 100),
        detection: { check_every_s: MONITOR_DEFAULTS.intervalMs / 1000, probe_timeout_s: MONITOR_DEFAULTS.timeoutMs / 1000, reexamination_service_s: MONITOR_DEFAULTS.reexamServiceMs / 1000, source: 'lib/monitor/target-monitor.ts MONITOR_DEFAULTS (p2p-heartbeat defaults)' },
        bed_start_s: r3(bedMs),
        units: 'seconds; p50/p99 over the rounds (small n: read min/max too)',
        od_creation: {
          ...summary(creation),
          mode: 'seed: identity on a cidata volume before the first boot; one boot, no restart',
          note: { total: NOTE.od_creation_s, clone: NOTE.od_clone_s, settings: NOTE.od_settings_s },
        },
        resume_to_ssh: { ...sec(resumeToSsh), note_machines: '0.25-0.65 s (notes, same machines)' },
        method_one_failure: { ...summary(m1), share_of_total_p50: share, note_start_one: NOTE.start_one_suspended_s, note_reexamination: NOTE.reexamination_service_s },
        method_two_at_once: { to_service: sec(m2), note: NOTE.start_two_at_once_s },
        baseline_cold_start: { ...summary(cold), note: NOTE.start_one_not_suspended_s, note_file_server: NOTE.file_server_not_suspended_s },
        baseline_file_server: {
          one: { to_service: sec(conv[0]), note: NOTE.file_server_one_s },
          two: { to_service: sec(conv[1]), note: NOTE.file_server_two_s },
          three: { to_service: sec(conv[2]), note: null },
        },
      }),
    );
  } finally {
    await fileServer?.close();
    await bed?.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
