// Preload for bench:memory (node --require, allowed in NODE_OPTIONS): lets the bench ask a running
// Node-RED process for its own memory figures, which /proc cannot give (V8 heap used, external,
// array buffers). The bench writes <dir>/<pid>.req (JSON: {n, settle?, snapshot?}) and sends
// SIGURG (ignored by default; Node-RED exits on SIGUSR2); the probe answers in <dir>/<pid>-<n>.json with process.memoryUsage() and the V8 heap
// spaces. `settle` runs full garbage collections first (gc exposed here, in the bench's process
// only, through v8.setFlagsFromString: the product sets no V8 flags); `snapshot` also writes a
// heap snapshot (after the collections) to <dir>/<pid>-<n>.heapsnapshot. The answer's `scavenges`
// counts the young-generation collections since the process started (how much it allocates).
// MEMORY_ALLOC_PROFILE=1: V8's sampling heap profiler records every allocation from the start,
// collected objects included (what a process allocates, not what it keeps), written at exit to
// <dir>/<VM name>-<pid>.heapprofile (Chrome DevTools format).
import * as fs from 'fs';
import * as inspector from 'inspector';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';
import { PerformanceObserver, constants } from 'perf_hooks';

export interface ProbeRequest {
  n: number;
  settle?: boolean;
  snapshot?: boolean;
}

export interface ProbeAnswer {
  n: number;
  memory: NodeJS.MemoryUsage;
  heap: v8.HeapInfo;
  spaces: { name: string; sizeMb: number; usedMb: number }[];
  /** Young-generation collections (scavenges) since the process started. */
  scavenges: number;
}

const dir = process.env.MEMORY_PROBE_DIR;
if (dir) {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
  let scavenges = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (((e as unknown as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
  }).observe({ entryTypes: ['gc'] });
  if (process.env.MEMORY_ALLOC_PROFILE) {
    const session = new inspector.Session();
    session.connect();
    session.post('HeapProfiler.enable');
    // Both include flags exist in V8 11 (Node 20) though @types/node does not list them.
    session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
    process.once('exit', () => {
      session.post('HeapProfiler.stopSampling', (err, res) => {
        if (!err) fs.writeFileSync(path.join(dir, `${process.env.P2P_HA_VM_NAME ?? 'node'}-${process.pid}.heapprofile`), JSON.stringify(res.profile));
      });
    });
  }
  process.on('SIGURG', () => {
    void (async () => {
      const req = JSON.parse(fs.readFileSync(path.join(dir, `${process.pid}.req`), 'utf8')) as ProbeRequest;
      if (req.settle || req.snapshot) {
        // Twice with a pause between: weak callbacks and finalizers of the first round free more.
        gc();
        await new Promise((r) => setTimeout(r, 500));
        gc();
      }
      if (req.snapshot) v8.writeHeapSnapshot(path.join(dir, `${process.pid}-${req.n}.heapsnapshot`));
      const answer: ProbeAnswer = {
        n: req.n,
        memory: process.memoryUsage(),
        heap: v8.getHeapStatistics(),
        spaces: v8.getHeapSpaceStatistics().map((s) => ({ name: s.space_name, sizeMb: mb(s.space_size), usedMb: mb(s.space_used_size) })),
        scavenges,
      };
      const out = path.join(dir, `${process.pid}-${req.n}.json`);
      fs.writeFileSync(`${out}.tmp`, JSON.stringify(answer));
      fs.renameSync(`${out}.tmp`, out);
    })().catch((e) => process.stderr.write(`memory probe: ${String(e)}\n`));
  });
}
