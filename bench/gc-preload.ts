// Preload for bench:sem (node --require, allowed in NODE_OPTIONS): prints each of V8's garbage
// collections on stdout (the launcher's stdout.log of each VM) as one line
// `gc <epoch ms of its start> <pause ms> <minor|major|incremental|weakcb>`; ./gc-stats.ts counts
// them over the bench's measured window and finds the samples each one delayed (docs/performance.md,
// ninth pass: the slowest 1 % of the edits are scavenges).
// Always on in bench:sem (GC_LOG=0 leaves it out): a perf_hooks 'gc' observer is one callback at
// the end of each collection and one write per batch of entries, i.e. per collection, not per edit
// (S1 runs 3-20 collections in 200 edits), against 2-3 ms of CPU per edit.
import * as fs from 'fs';
import { constants, PerformanceObserver, performance } from 'perf_hooks';

const KIND: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

new PerformanceObserver((list) => {
  let out = '';
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
    out += `gc ${(performance.timeOrigin + e.startTime).toFixed(2)} ${e.duration.toFixed(3)} ${KIND[kind] ?? kind}\n`;
  }
  fs.writeSync(1, out);
}).observe({ entryTypes: ['gc'] });
