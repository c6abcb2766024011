// npm run bench — every benchmark in turn, each in its own process (the machine is shared: one at
// a time), then one JSON object with all their results on the last line.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const BENCHES = ['sem-sync', 'detect', 'failover', 'hv'];

function run(file: string): Promise<{ code: number | null; last: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      out += d;
    });
    child.on('close', (code) => resolve({ code, last: out.trim().split('\n').pop() ?? '' }));
  });
}

(async () => {
  const results: unknown[] = [];
  let failed = 0;
  for (const name of BENCHES) {
    const file = path.join(__dirname, `${name}.js`);
    if (!fs.existsSync(file)) continue;
    console.log(`\n=== bench ${name} ===`);
    const r = await run(file);
    try {
      results.push(JSON.parse(r.last));
    } catch {
      failed++;
      results.push({ bench: name, error: `exit ${r.code}, no JSON result` });
    }
  }
  console.log(JSON.stringify({ bench: 'all', results }));
  process.exit(failed ? 1 : 0);
})();
