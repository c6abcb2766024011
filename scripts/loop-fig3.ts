// Runs the Fig. 3 cluster test (a whole real server fails) N times in a row, each in its own mocha
// process: the check that it passes without a retry. Every run is counted; a failure prints the
// test's error and the tail of its output (add --stop to stop at the first failure).
//   node dist/scripts/loop-fig3.js 20 [--stop]
// Prints one line per run and, last, one JSON object: {"loop":"fig3","runs":..,"passed":..,
// "failed":..,"p50_ms":..,"p99_ms":..}. Exit code 0 only if every run passed.
import { spawnSync } from 'child_process';
import * as path from 'path';

const runs = Math.max(1, Math.min(100, Number(process.argv[2]) || 20));
const stopOnFailure = process.argv.includes('--stop');
const root = path.join(__dirname, '..', '..');
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const testFile = path.join(root, 'dist', 'test', 'cluster', 'recovery.test.js');

const times: number[] = [];
let passed = 0;
let failed = 0;
for (let i = 1; i <= runs; i++) {
  const t0 = Date.now();
  // Every wait in the test has its deadline; this one bounds a run that hangs anyway.
  const r = spawnSync(process.execPath, [mocha, '--config', path.join(root, '.mocharc.json'), testFile, '--grep', 'Fig. 3'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 6 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = Date.now() - t0;
  const ok = r.status === 0 && /1 passing/.test(r.stdout) && !/failing/.test(r.stdout);
  times.push(ms);
  if (ok) passed++;
  else failed++;
  const why = ok ? '' : ((/\n\s+(?:AssertionError|Error)[^\n]*/.exec(r.stdout)?.[0] ?? r.error?.message ?? `exit ${r.status}`).trim().slice(0, 300));
  console.log(`run ${i}/${runs}: ${ok ? 'passed' : 'FAILED'} in ${ms} ms${why ? `: ${why}` : ''}`);
  if (!ok) {
    console.log(r.stdout.split('\n').slice(-60).join('\n'));
    console.log(r.stderr.split('\n').slice(-20).join('\n'));
    if (stopOnFailure) break;
  }
}
const sorted = [...times].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
console.log(JSON.stringify({ loop: 'fig3', runs: passed + failed, passed, failed, p50_ms: q(0.5), p99_ms: q(0.99) }));
process.exit(failed === 0 ? 0 : 1);
