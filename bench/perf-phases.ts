// The on-CPU time of one SEM VM by phase of an edit, from `perf script` output of a process run with
// NODE_OPTIONS=--perf-basic-prof (docs/performance.md, sixth pass, says how to record it). Each sample is
// given to the first phase below whose pattern matches any frame of its stack: optimised JavaScript
// inlines its callees, so a stack often lacks the function that did the work, and a phase is
// recognised by what it calls as well (e.g. `writeGeneric` under SEM code = the frame writes).
// The order matters: the bench's own HTTP request first (SEM never calls into express), then the
// specific SEM phases, then the generic ones.
//
//   node dist/bench/perf-phases.js <perf script output> [CPU ms per edit of that process]
//
// Prints a table and, last, one JSON line: share per phase, and ms per edit when given.
import * as fs from 'fs';

const SEM = String.raw`/dist/lib/sem/|/dist/nodes/|/dist/lib/ops/`;
export const PHASES: [string, RegExp][] = (
  [
    ['bench request: express, http in, http response, HTTP server', String.raw`express/|body-parser|cookie-parser|/cors/|21-httpin\.js|on-finished|raw-body|_http_server|_http_outgoing|_http_incoming|finalhandler|parseurl|HTTPParser|llhttp`],
    ['SEM commit: Ed25519 signature of the diff', String.raw`signOneShot`],
    ['SEM answers: MAC, open, pair tag, parse (answerOf)', String.raw`answerOf|sem-http\.js:477|pair-key|verifyMessage|verifyOneShot|wire-crypto\.js.*open`],
    ['SEM frames: encode and write, one per peer (with the kernel loopback send)', String.raw`writeGeneric|writevGeneric|encodeFrame|tcp_sendmsg`],
    ['SEM frames: read and cut answers (socket data, FrameReader, match)', String.raw`sem-stream-frame\.js|sem-stream\.js`],
    ['SEM request: seal and MAC once, pair header per peer', String.raw`createCipherWithIV|Cipheriv|wire-crypto|sem-protocol\.js:.*mac|Hmac|requestHeader|prepare`],
    ['SEM own save: journal line, text files', String.raw`durable-files|atomic-write|path_openat|ext4_create|renameat|ext4_rename|do_unlinkat|ext4_file_write|ext4_buffered_write|ext4_sync_file|uv__fs_`],
    ['SEM log', String.raw`sem-log\.js`],
    ["'sent' and 'change' listeners: metrics, status", String.raw`metrics-hook|/lib/ops/metrics|status-throttle|store-user|cluster-registry|safeEmit|emitChange`],
    ['p2p-sem-send and Node-RED msg delivery', String.raw`p2p-sem-send|@node-red/|node-red/`],
    ['SEM commit: checks, apply, encode, fan-out, promises', SEM],
    ['socket reads before JavaScript (uv__read: answers and requests)', String.raw`uv__read`],
    ['epoll, scheduler', String.raw`epoll|__schedule`],
    ['V8 GC', String.raw`GC|Heap|Scavenge|MarkCompact|Sweeper`],
    ['V8 compiler', String.raw`Compile|Turbofan|Maglev|Optimiz|Baseline`],
  ] as [string, string][]
).map(([n, r]) => [n, new RegExp(r)]);
export const OTHER = 'other (microtasks, timers, libc, V8 runtime)';

/** Samples of `perf script` text by phase. */
export function phasesOf(script: string): { total: number; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  let total = 0;
  for (const block of script.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => l.trim());
    if (lines.length < 2) continue;
    const stack = lines.slice(1).join('\n');
    total += 1;
    const phase = PHASES.find(([, r]) => r.test(stack))?.[0] ?? OTHER;
    counts.set(phase, (counts.get(phase) ?? 0) + 1);
  }
  return { total, counts };
}

if (require.main === module) {
  const [file, perEdit] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/perf-phases.js <perf script output> [CPU ms per edit]');
    process.exit(2);
  }
  const ms = perEdit ? Number(perEdit) : undefined;
  const { total, counts } = phasesOf(fs.readFileSync(file, 'utf8'));
  const rows = [...counts].sort((a, b) => b[1] - a[1]);
  for (const [phase, n] of rows) {
    const share = n / total;
    console.log(`${(share * 100).toFixed(1).padStart(5)} %  ${String(n).padStart(6)}${ms ? `  ${(share * ms).toFixed(2).padStart(5)} ms` : ''}  ${phase}`);
  }
  console.log(
    JSON.stringify({
      bench: 'perf-phases',
      samples: total,
      cpu_ms_per_edit: ms,
      phases: Object.fromEntries(rows.map(([p, n]) => [p, ms ? { share: Math.round((n / total) * 1000) / 1000, ms: Math.round((n / total) * ms * 100) / 100 } : { share: Math.round((n / total) * 1000) / 1000 }])),
    }),
  );
}
