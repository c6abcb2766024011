// Maintenance mode (lib/ops/maintenance.ts): requests parsed strictly, the edits they make, the
// load collector keeping a host's maintenance, the placer skipping it, and the heartbeat giving no
// verdict on a VM in maintenance (fake time over the in-memory replicated store).
import * as assert from 'assert';
import { inMaintenance, maintenanceEdit, MaintenanceError, parseMaintenanceRequest, setMaintenance } from '../../lib/ops/maintenance';
import { loadEdits } from '../../lib/hv/load-edits';
import { odRows, place, realServerRows } from '../../lib/recovery/placement';
import { FailureReport, Heartbeat } from '../../lib/monitor/heartbeat';
import type { CheckResult } from '../../lib/monitor/target-monitor';
import { MemoryFiles } from '../support/memory-files';
import { FakeClock } from '../support/fake-clock';
import { SimNet } from '../support/sim-cluster';

const group = [
  ['S1', '127.0.1.1', 'RS1', 'tcp:80'],
  ['S2', '127.0.1.2', 'RS2', 'tcp:80'],
  ['S3', '127.0.1.3', 'RS3', '-'],
];
const realserver = [
  ['RS1', '0.20', '1', 'up'],
  ['RS2', '0.10', '1', 'up'],
  ['RS3', '0.90', '1', 'down'],
];
const files = () => new MemoryFiles({ hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: 'tcp:80' }, { group, realserver });

describe('ops: maintenance mode', () => {
  it('parses the three request shapes and refuses anything else with a clear error', () => {
    assert.deepStrictEqual(parseMaintenanceRequest({ vm: 'S2', on: true }), { kind: 'vm', name: 'S2', on: true });
    assert.deepStrictEqual(parseMaintenanceRequest({ realServer: 'RS1', on: 'off' }), { kind: 'realserver', name: 'RS1', on: false });
    assert.deepStrictEqual(parseMaintenanceRequest({ kind: 'realserver', name: 'RS1', on: 'on' }), { kind: 'realserver', name: 'RS1', on: true });
    const bad: unknown[] = [
      null,
      'S2',
      [],
      { on: true },
      { vm: 'S2', realServer: 'RS1', on: true },
      { vm: 'S2; rm -rf /', on: true },
      { vm: 'S2', on: 'yes' },
      { vm: 'S2' },
      { kind: 'host', name: 'RS1', on: true },
    ];
    for (const b of bad) assert.throws(() => parseMaintenanceRequest(b), MaintenanceError, JSON.stringify(b));
  });

  it('a VM: group state maintenance and back to member (default, so the record is as before)', async () => {
    const f = files();
    const on = await setMaintenance(f, { vm: 'S2', on: true });
    assert.strictEqual(on.changed, true);
    assert.strictEqual(on.line, 'group, Mod, S2, 127.0.1.2, RS2, tcp:80, S2, 127.0.1.2, RS2, tcp:80, maintenance');
    assert.deepStrictEqual(inMaintenance(f), { vms: ['S2'], realServers: [] });
    assert.strictEqual((await setMaintenance(f, { vm: 'S2', on: true })).changed, false, 'twice is once');
    await setMaintenance(f, { vm: 'S2', on: false });
    assert.deepStrictEqual(f.get('group', 'S2'), group[1]);
  });

  it('a real server: state maintenance, back to up; unknown names and fenced VMs refused, nothing changed', async () => {
    const f = files();
    await setMaintenance(f, { realServer: 'RS2', on: true });
    assert.deepStrictEqual(f.get('realserver', 'RS2'), ['RS2', '0.10', '1', 'maintenance']);
    assert.deepStrictEqual(inMaintenance(f).realServers, ['RS2']);
    await setMaintenance(f, { realServer: 'RS2', on: false });
    assert.strictEqual(f.get('realserver', 'RS2')![3], 'up');
    // Off for a host that is not in maintenance changes nothing (a down host stays down).
    assert.strictEqual(maintenanceEdit(f, { kind: 'realserver', name: 'RS3', on: false }), undefined);
    await assert.rejects(setMaintenance(f, { vm: 'S9', on: true }), /S9 is not in the group file/);
    await assert.rejects(setMaintenance(f, { realServer: 'RS9', on: true }), /RS9 is not in the realserver file/);
    const g = new MemoryFiles(f.identity, { group: [['S2', '127.0.1.2', 'RS2', '-', 'fenced']] });
    await assert.rejects(setMaintenance(g, { vm: 'S2', on: true }), /fenced/);
    assert.strictEqual(f.lines.length, 2);
  });

  it('the load collector keeps a host in maintenance (up or unreachable) and still updates its figures', () => {
    const cur = [['RS1', '0.20', '1', 'maintenance']];
    const up = loadEdits([{ realServer: 'RS1', ok: true, load: 0.9, vmCount: 0 }], cur, 0.1);
    assert.deepStrictEqual(up.map((e) => e.record), [['RS1', '0.90', '0', 'maintenance']]);
    const down = loadEdits([{ realServer: 'RS1', ok: false, error: 'rebooting' }], cur, 0.1);
    assert.deepStrictEqual(down, []);
  });

  it('the placer puts nothing on a host in maintenance, even the least loaded', () => {
    const rs = realServerRows([
      ['RS1', '0.50', '2', 'up'],
      ['RS2', '0.10', '1', 'maintenance'],
    ]);
    const ods = odRows([
      ['OD1', '127.0.1.121', 'RS1'],
      ['OD2', '127.0.1.122', 'RS2'],
    ]);
    const p = place(rs, ods);
    assert.strictEqual(p.realServer, 'RS1');
    assert.strictEqual(p.candidates.find((c) => c.realServer === 'RS2')!.reason, 'state maintenance');
  });

  describe('the heartbeat gives no verdict on a VM in maintenance', () => {
    const names = ['S1', 'S2', 'S3', 'S4'];
    let beats: Heartbeat[] = [];
    afterEach(() => beats.forEach((b) => b.stop()));

    function start() {
      const clock = new FakeClock();
      const net = new SimNet(clock, 20);
      const g = names.map((h, i) => [h, `127.0.1.${i + 1}`, 'RS1', '-']);
      const dead = new Set<string>();
      const failures: FailureReport[] = [];
      const check = async (m: { hostname: string }): Promise<CheckResult> =>
        dead.has(m.hostname) ? { ok: false, kind: 'network', reason: 'ping: manager-not-answering' } : { ok: true };
      const peers = names.map((h, i) => net.add({ hostname: h, address: `127.0.1.${i + 1}`, realServer: 'RS1', services: '-' }, g));
      beats = peers.map((f) => {
        const hb = new Heartbeat({ files: f, clock, check, ping: async (m) => !dead.has(m.hostname) });
        hb.on('failure', (r: FailureReport) => failures.push(r));
        hb.start();
        return hb;
      });
      return { clock, net, peers, dead, failures };
    }

    it('S2 stopped in maintenance: no problem record, no failure; back to member: watched again, a real stop is a failure', async () => {
      const c = start();
      await c.clock.advance(2_000);
      await setMaintenance(c.peers[3], { vm: 'S2', on: true }); // set from S4, replicated to all
      await c.clock.advance(500);
      assert.deepStrictEqual(beats[0].summary().map((w) => w.target), ['S4'], 'S1 watches only S4 (P2) now');
      // S2 is stopped (its manager goes with it) for the reboot: nobody records anything.
      c.dead.add('S2');
      c.net.down.add('S2');
      await c.clock.advance(10_000);
      assert.strictEqual(c.failures.length, 0);
      for (const p of c.peers.filter((_, i) => i !== 1)) assert.strictEqual(p.get('problem', 'S2'), undefined);
      // Back from the reboot, out of maintenance: watched again by S1 (P1) and S3 (P2).
      c.dead.delete('S2');
      c.net.down.delete('S2');
      await setMaintenance(c.peers[0], { vm: 'S2', on: false });
      await c.clock.advance(2_000);
      assert.deepStrictEqual(beats[0].summary().map((w) => `${w.priority} ${w.target}`).sort(), ['P1 S2', 'P2 S4']);
      assert.strictEqual(c.failures.length, 0);
      c.dead.add('S2');
      await c.clock.advance(6_000);
      assert.deepStrictEqual(
        c.failures.map((f) => `${f.detectedBy} ${f.target}`),
        ['S1 S2'],
      );
    });
  });
});
