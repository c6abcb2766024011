// Evacuating a real server (lib/ops/evacuate.ts) over the in-memory files and fake hypervisor
// drivers: the host and each VM go into maintenance, each VM is shut down cleanly (destroyed only
// past the deadline), its role moves to an OD on another host, in natural order; the VM running
// the evacuation refuses to evacuate its own host.
import * as assert from 'assert';
import { evacuateHost } from '../../lib/ops/evacuate';
import type { PlanDriver } from '../../lib/recovery/backup-plan';
import { MemoryFiles } from '../support/memory-files';

function fakeDriver(name: string, log: string[], opts: { stubborn?: string[] } = {}) {
  const state = new Map<string, string>();
  const d: PlanDriver & { shutdown(n: string): Promise<void> } = {
    async destroy(n) {
      log.push(`${name} destroy ${n}`);
      state.set(n, 'shut off');
    },
    async autostartOff(n) {
      log.push(`${name} autostart-off ${n}`);
    },
    async shutdown(n) {
      log.push(`${name} shutdown ${n}`);
      if (!opts.stubborn?.includes(n)) state.set(n, 'shut off');
    },
    async suspend(n) {
      log.push(`${name} suspend ${n}`);
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

  it('a VM that does not stop within the deadline is destroyed; one that cannot move is reported and left fenced (stopped, not replaced)', async () => {
    const { files, log } = setup();
    files.data.set('available-od', [['OD1', '127.0.1.121', 'RS1']]);
    const drivers = new Map(['RS1', 'RS2', 'RS3'].map((rs) => [rs, fakeDriver(rs, log, { stubborn: ['S2'] })]));
    let t = 0;
    const r = await evacuateHost('RS2', { files, driver: (rs) => drivers.get(rs), sleep: async (ms) => void (t += ms), now: () => t }, { shutdownWaitMs: 5000, pollMs: 1000 });
    assert.ok(log.includes('RS2 destroy S2'), 'destroyed past the deadline');
    assert.deepStrictEqual(r.moved.map((m) => `${m.vm} ${m.stop}`), ['S2 destroyed']);
    assert.strictEqual(r.failed.length, 1);
    assert.strictEqual(r.failed[0].vm, 'S5');
    assert.match(r.failed[0].error, /no available OD|no real server can take/);
    assert.strictEqual(files.get('group', 'S5')![4], 'fenced');
  });

  it('refuses to evacuate the host of the VM running it, and a host without a driver', async () => {
    const { files } = setup();
    await assert.rejects(evacuateHost('RS1', { files, driver: () => fakeDriver('RS1', []) }), /S1 runs on RS1/);
    await assert.rejects(evacuateHost('RS2', { files, driver: () => undefined }), /no driver configured for real server RS2/);
    assert.strictEqual(files.lines.length, 0, 'nothing changed');
  });
});
