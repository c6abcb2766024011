// `npm run demo` starts the demo cluster, serves every editor, and stops cleanly on SIGINT with no
// process left behind.
import { strict as assert } from 'assert';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { httpRequest } from '../../harness/http';
import { pidAlive } from '../../harness/procs';
import { waitFor } from '../../harness/wait';

/** Processes started by the launcher running in `launcherPid` (it marks them in their environment). */
function childrenOf(launcherPid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = fs.readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (env.split('\0').includes(`P2P_HA_LAUNCHER_PID=${launcherPid}`)) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe('npm run demo', function () {
  this.timeout(240_000);
  let demo: ChildProcess | undefined;
  let out = '';

  after(() => {
    if (demo && demo.exitCode === null) demo.kill('SIGKILL');
  });

  it('starts the cluster, serves all editors, and stops on SIGINT leaving nothing running', async () => {
    demo = spawn(process.execPath, [path.join(__dirname, '..', '..', 'harness', 'demo.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stdout!.on('data', (d) => (out += d));
    demo.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => demo!.on('exit', (code) => resolve(code)));
    await waitFor(() => out.includes('Commands:') || demo!.exitCode !== null, { what: 'the demo to print its commands', timeoutMs: 180_000, intervalMs: 250 });
    assert.equal(demo.exitCode, null, `the demo exited early:\n${out}`);
    const urls = Array.from(out.matchAll(/^\s+(S\d)\s+(http:\/\/127\.[\d.]+:\d+)\//gm)).map((m) => m[2]);
    assert.equal(urls.length, 6, `six editors listed:\n${out}`);
    for (const url of urls) {
      const r = await httpRequest(url + '/', { timeoutMs: 10_000 });
      assert.equal(r.status, 200, url);
      assert.match(r.body, /Node-RED/);
    }
    const started = childrenOf(demo.pid!);
    assert.ok(started.length >= 9, `six VMs and three ODs running (found ${started.length})`);
    demo.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 60_000))]);
    assert.equal(code, 0, `demo exit: ${code}\n${out.slice(-2000)}`);
    await waitFor(() => started.every((pid) => !pidAlive(pid)), { what: 'every demo VM gone', timeoutMs: 10_000 });
    assert.deepEqual(childrenOf(demo.pid!), []);
    assert.match(out, /stopped\./);
  });
});
