// Evacuating a real server (lib/ops/evacuate.ts) over the in-memory files and fake hypervisor
// drivers: the host and each VM go into maintenance, each VM is shut down cleanly (destroyed only
// past the deadline), its role moves to an OD on another host, in natural order; the VM running
// the evacuation refuses to evacuate its own host.
import * as assert from 'assert';
import { evacuateHost } from '../../lib/ops/evacuate';
import type { PlanDriver } from '../../lib/recovery/backup-plan';
import { MemoryFiles } from '../support/memory-files';
import { authorityRefusal } from '../../lib/sem/edit-authority';

function fakeDriver(name: string, log: string[], opts: { stubborn?: string[]; procedureFails?: boolean; startFails?: boolean; shutdownFails?: boolean } = {}) {
  const state = new Map<string, string>();
  const d: PlanDriver & { shutdown(n: string): Promise<void>; start(n: string): Promise<void>; state: Map<string, string> } = {
    state,
    async start(n) {
      log.push(`${name} start ${n}`);
      if (opts.startFails) throw new Error(`error: Failed to start domain '${n}'`);
      state.set(n, 'running');
    },
    async destroy(n) {
      log.push(`${name} destroy ${n}`);
      state.set(n, 'shut off');
    },
    async autostartOff(n) {
      log.push(`${name} autostart-off ${n}`);
    },
    async shutdown(n) {
      log.push(`${name} shutdown ${n}`);
      if (opts.shutdownFails) throw Object.assign(new Error(`error: Failed to shutdown domain '${n}'`), { kind: 'failed' });
      if (!opts.stubborn?.includes(n)) state.set(n, 'shut off');
    },
    async suspend(n) {
      log.push(`${name} suspend ${n}`);
      state.set(n, 'paused');
    },
    async domstate(n) {
      return state.get(n) ?? 'running';
    },
    async resume(n) {
      log.push(`${name} resume ${n}`);
      state.set(n, 'running');
    },
    async runFile(p) {
      log.push(`${name} run ${p}`);
      if (opts.procedureFails) throw Object.assign(new Error(`${p} exited 3: cannot configure`), { kind: 'procedure-failed' });
      return { stdout: '', stderr: '', code: 0 };
    },
  };
  return d;
}

function setup() {
  const files = new MemoryFiles(
    { hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: '-' },
    {
      group: [
        ['S1', '127.0.1.1', 'RS1', '-'],
        ['S2', '127.0.1.2', 'RS2', '-'],
        ['S3', '127.0.1.3', 'RS3', '-'],
        ['S5', '127.0.1.5', 'RS2', '-'],
      ],
      realserver: [['RS1', '0.30', '1', 'up'], ['RS2', '0.20', '2', 'up'], ['RS3', '0.30', '1', 'up']],
      'available-od': [['OD1', '127.0.1.121', 'RS1'], ['OD2', '127.0.1.122', 'RS2'], ['OD3', '127.0.1.123', 'RS3']],
    },
  );
  const log: string[] = [];
  return { files, log };
}

describe('ops: evacuating a real server', () => {
  it('moves S2 then S5 off RS2 after a clean shutdown, onto ODs of the other hosts; RS2 stays in maintenance', async () => {
    const { files, log } = setup();
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log)]));
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async () => undefined });
    assert.deepStrictEqual(r.failed, []);
    assert.deepStrictEqual(r.moved.map((m) => `${m.vm}->${m.backup} on ${m.realServer} (${m.stop})`), ['S2->S2b on RS1 (shut down)', 'S5->S5b on RS3 (shut down)']);
    assert.ok(log.indexOf('RS2 shutdown S2') < log.indexOf('RS2 shutdown S5'), 'in order');
    assert.ok(!log.some((l) => l.includes('destroy')), 'nothing destroyed');
    assert.ok(!log.includes('RS2 resume OD2'), 'no OD of the evacuated host used');
    // The moved VMs stay in the group as fenced (lib/recovery/backup-plan.ts): the serving members are these.
    const serving = files.records('group').filter((g) => g[4] !== 'fenced');
    assert.deepStrictEqual(serving.map((g) => `${g[0]} ${g[2]}`).sort(), ['S1 RS1', 'S2b RS1', 'S3 RS3', 'S5b RS3']);
    assert.strictEqual(files.get('realserver', 'RS2')![3], 'maintenance');
    assert.strictEqual(files.get('problem', 'S2')![3], 'recovered');
  });

  it('a VM that does not stop within the deadline is destroyed; one with nowhere to go is not stopped: it keeps serving as a member', async () => {
    const { files, log } = setup();
    files.data.set('available-od', [['OD1', '127.0.1.121', 'RS1']]);
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log, { stubborn: ['S2'] })]));
    let t = 0;
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async (ms) => void (t += ms), now: () => t }, { shutdownWaitMs: 5000, pollMs: 1000 });
    assert.ok(log.includes('RS2 destroy S2'), 'destroyed past the deadline');
    assert.deepStrictEqual(r.moved.map((m) => `${m.vm} ${m.stop}`), ['S2 destroyed']);
    assert.strictEqual(r.failed.length, 1);
    assert.strictEqual(r.failed[0].vm, 'S5');
    assert.strictEqual(r.failed[0].outcome, 'kept-serving');
    assert.match(r.failed[0].error, /nowhere to go/);
    assert.ok(!log.includes('RS2 shutdown S5'), 'S5 was not stopped');
    assert.strictEqual(files.get('group', 'S5')![4], undefined, 'S5 a plain member');
    assert.strictEqual(files.get('problem', 'S5'), undefined);
  });

  it('a move that fails after the stop (installation procedure): the VM is started again in place, in maintenance, the OD put back to sleep', async () => {
    const { files, log } = setup();
    files.data.set('group', files.records('group').filter((g) => g[0] !== 'S5'));
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log, { procedureFails: rs !== 'RS2' })]));
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async () => undefined });
    assert.deepStrictEqual(r.moved, []);
    assert.deepStrictEqual(r.failed.map((f) => [f.vm, f.outcome]), [['S2', 'restarted-in-place']]);
    assert.match(r.failed[0].error, /cannot configure/);
    assert.ok(log.indexOf('RS2 shutdown S2') < log.indexOf('RS2 start S2'), 'stopped, then started again');
    assert.strictEqual(drivers.get('RS2')!.state.get('S2'), 'running');
    assert.strictEqual(files.get('group', 'S2')![4], 'maintenance', 'watched again once the operator ends maintenance');
    assert.strictEqual(files.get('problem', 'S2'), undefined, 'no failure left on record for a serving VM');
    // The OD that was resumed for it sleeps again: never a second copy.
    const used = [...drivers.values()].flatMap((d) => [...d.state.entries()].filter(([n, s]) => n.startsWith('OD') && s === 'running'));
    assert.deepStrictEqual(used, []);
    // Every edit passes the receivers' edit authority (G4: fenced -> maintenance by any member).
    const g = files.applied.find((e) => e.file === 'group' && e.record[0] === 'S2' && e.record[4] === 'maintenance' && e.before?.[4] === 'fenced');
    assert.ok(g, 'fenced -> maintenance written');
    assert.strictEqual(authorityRefusal('S1', g!, files), null);
  });

  it('a start in place that fails too: left fenced, both reasons in the answer', async () => {
    const { files, log } = setup();
    files.data.set('group', files.records('group').filter((g) => g[0] !== 'S5'));
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log, { procedureFails: rs !== 'RS2', startFails: rs === 'RS2' })]));
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async () => undefined });
    assert.deepStrictEqual(r.failed.map((f) => [f.vm, f.outcome]), [['S2', 'left-fenced']]);
    assert.match(r.failed[0].error, /cannot configure.*not started again in place: error: Failed to start domain 'S2'/);
    assert.strictEqual(files.get('group', 'S2')![4], 'fenced');
    assert.strictEqual(files.get('problem', 'S2')![3], 'failed', 'the reason stays on record');
  });

  it('a shutdown that fails: nothing was stopped, the VM keeps serving as a member', async () => {
    const { files, log } = setup();
    files.data.set('group', files.records('group').filter((g) => g[0] !== 'S5'));
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log, { shutdownFails: rs === 'RS2' })]));
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async () => undefined });
    assert.deepStrictEqual(r.failed.map((f) => [f.vm, f.outcome]), [['S2', 'kept-serving']]);
    assert.strictEqual(drivers.get('RS2')!.state.get('S2') ?? 'running', 'running');
    assert.strictEqual(files.get('group', 'S2')![4], undefined, 'a plain member again');
    assert.strictEqual(files.get('problem', 'S2'), undefined);
  });

  it('refuses to evacuate the host of the VM running it, and a host without a driver', async () => {
    const { files } = setup();
    await assert.rejects(evacuateHost('RS1', { files, driver: () => fakeDriver('RS1', []) }), /S1 runs on RS1/);
    await assert.rejects(evacuateHost('RS2', { files, driver: () => undefined }), /no driver configured for real server RS2/);
    assert.strictEqual(files.lines.length, 0, 'nothing changed');
  });
});
