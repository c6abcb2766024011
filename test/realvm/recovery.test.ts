// A failure of a server whose service runs in a real guest, recovered from a suspended real OD
// (issue 13, check (a), without Node-RED processes: see the report). The server is a re-identified
// clone of the ODS serving HTTP through its own loopback forward; it hangs (virsh suspend); the
// failure is detected by the package's monitor with its defaults (service check every 1 s, 3 s
// re-examination: harness/real/guest-recovery.ts watchService); the package's
// backup plan fences it with `virsh destroy`, resumes the OD, waits for the OD's SSH banner, runs
// the installation procedure on the real server (which gives the OD the server's function), and
// edits the files; the service then answers from the OD. Times are printed, never asserted.
import * as assert from 'assert';
import { fromMember, fromProblem } from '../../lib/records/records';
import { startGuestBed, type GuestBed } from '../../harness/real/guest-env';
import { hangAndDetect, installProcedureOnHost, makeVm, recoverWithMethod, resetServer, scenarioFiles, type GuestVm } from '../../harness/real/guest-recovery';
import { MemoryFiles } from '../support/memory-files';
import { requireGuestBed } from './realvm-env';

describe('real guests: a failed server recovered from a suspended real OD', function () {
  this.timeout(600000);
  let bed: GuestBed | undefined;
  let server: GuestVm;
  let od: GuestVm;

  before(async function () {
    this.timeout(900000);
    requireGuestBed(this);
    bed = await startGuestBed();
    const scratch = new MemoryFiles({ hostname: 'M1', address: '127.0.0.1', realServer: 'RSREAL', services: '-' });
    server = await makeVm(bed, 'rv-s1', '10.0.2.41', scratch);
    od = await makeVm(bed, 'rv-od9', '10.0.2.49', scratch);
    await resetServer(bed, server);
    await installProcedureOnHost(bed, [server.name]);
  });

  after(async function () {
    this.timeout(120000);
    await bed?.stop();
  });

  it('detects the hang, fences the guest, resumes the OD, installs, and the service answers from the OD', async () => {
    const b = bed!;
    const files = scenarioFiles([server], [od]);
    const { t0, detectMs } = await hangAndDetect(b, server);
    const run = await recoverWithMethod(b, files, server, new Map([[od.name, od]]));
    const totalMs = performance.now() - t0;
    assert.strictEqual(run.result.fence, 'destroyed');
    assert.strictEqual(await b.driver.domstate(server.name), 'shut off');
    assert.strictEqual(await b.driver.domstate(od.name), 'running');
    assert.deepStrictEqual(files.records('available-od'), []);
    // The failed server stays in the group as fenced (out of the ring, until re-admitted).
    assert.deepStrictEqual(files.records('group').map(fromMember).filter((m) => m.state !== 'fenced').map((m) => m.hostname), ['rv-s1b']);
    assert.strictEqual(fromMember(files.get('group', 'rv-s1')!).state, 'fenced');
    assert.strictEqual(fromProblem(files.get('problem', server.name)!).status, 'recovered');
    const t = run.result.timings;
    console.log(
      `      detect ${Math.round(detectMs)} ms, then to service ${Math.round(run.toServiceMs)} ms (fence ${Math.round(t.fence)}, place ${Math.round(t.place)}, ` +
        `resume ${Math.round(t.resume)}, install incl. readiness ${Math.round(t.install)}, edits ${Math.round(t.edits)}); kill to service ${Math.round(totalMs)} ms`,
    );
  });
});
