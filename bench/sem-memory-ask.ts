// The bench side of bench/sem-memory-probe.ts: ask a process that preloads the probe for its
// memory figures (request file + SIGURG, answer file), within a deadline.
import * as fs from 'fs';
import * as path from 'path';
import type { ProbeAnswer, ProbeRequest } from './sem-memory-probe';

let next = 0;

export async function askProbe(pid: number, dir: string, req: Omit<ProbeRequest, 'n'> = {}, timeoutMs = 120_000): Promise<ProbeAnswer> {
  const n = ++next;
  fs.writeFileSync(path.join(dir, `${pid}.req`), JSON.stringify({ n, ...req }));
  process.kill(pid, 'SIGURG');
  const out = path.join(dir, `${pid}-${n}.json`);
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(out)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not answer the memory probe within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return JSON.parse(fs.readFileSync(out, 'utf8')) as ProbeAnswer;
}

/** Where the probe writes the heap snapshot of an answer. */
export function snapshotPath(pid: number, dir: string, a: ProbeAnswer): string {
  return path.join(dir, `${pid}-${a.n}.heapsnapshot`);
}
