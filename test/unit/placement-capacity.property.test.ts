// Capacity-aware placement (lib/recovery/placement.ts), as properties over random clusters
// (fast-check): a backup never goes where it does not fit; several placed at once never overcommit
// a host; N sequential failures keep the hosts within one VM of each other when capacity allows;
// stale figures rank last; members of one service group are kept apart.
import * as assert from 'assert';
import fc from 'fast-check';
import { doesNotFit, place, placeMany, PlacementError, serviceGroupHosts, type OdRow, type RealServerRow } from '../../lib/recovery/placement';
import { fromRealServer, toRealServer } from '../../lib/records/records';
import { validateRecord } from '../../lib/records/files';
import { decidePlacement } from '../../lib/recovery/placement-decider';
import type { RecordFields } from '../../lib/records/files';

const NOW = Date.parse('2026-01-01T03:00:00.000Z');

const hostArb = fc.record({
  load: fc.double({ min: 0, max: 4, noNaN: true }),
  vmCount: fc.integer({ min: 0, max: 12 }),
  state: fc.constantFrom('up', 'up', 'up', 'down', 'maintenance'),
  freeMemMiB: fc.option(fc.integer({ min: 0, max: 16384 }), { nil: undefined }),
  freeVcpus: fc.option(fc.integer({ min: -4, max: 16 }), { nil: undefined }),
  ods: fc.integer({ min: 0, max: 3 }),
});
const needArb = fc.record({
  memMiB: fc.option(fc.integer({ min: 256, max: 8192 }), { nil: undefined }),
  vcpus: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
});

function cluster(hosts: { load: number; vmCount: number; state: string; freeMemMiB?: number; freeVcpus?: number; ods: number }[]) {
  const rs: RealServerRow[] = hosts.map((h, i) => ({
    realServer: `RS${i + 1}`,
    load: h.load,
    vmCount: h.vmCount,
    state: h.state,
    freeMemMiB: h.freeMemMiB,
    freeVcpus: h.freeVcpus,
    measuredAt: NOW - 1000,
  }));
  const ods: OdRow[] = hosts.flatMap((h, i) => Array.from({ length: h.ods }, (_, k) => ({ od: `OD${i + 1}-${k}`, address: `10.0.${i}.${k + 1}`, realServer: `RS${i + 1}` })));
  return { rs, ods };
}

describe('placement: capacity, freshness, spread (properties)', () => {
  it('a backup is never placed where it does not fit; when none is placed, no up host with an OD fits', () => {
    fc.assert(
      fc.property(fc.array(hostArb, { minLength: 1, maxLength: 6 }), needArb, (hosts, need) => {
        const { rs, ods } = cluster(hosts);
        try {
          const p = place(rs, ods, { need, now: NOW });
          const host = rs.find((r) => r.realServer === p.realServer)!;
          assert.strictEqual(host.state, 'up');
          assert.strictEqual(doesNotFit(host, need), undefined);
          if (need.memMiB !== undefined && host.freeMemMiB !== undefined) assert.ok(host.freeMemMiB >= need.memMiB);
          if (need.vcpus !== undefined && host.freeVcpus !== undefined) assert.ok(host.freeVcpus >= need.vcpus);
          assert.strictEqual(p.od.startsWith(`OD${p.realServer.slice(2)}-`), true);
        } catch (e) {
          if (!(e instanceof PlacementError)) throw e;
          for (const r of rs) {
            const hasOd = ods.some((o) => o.realServer === r.realServer);
            assert.ok(r.state !== 'up' || !hasOd || doesNotFit(r, need) !== undefined, `${r.realServer} could have taken it`);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('several backups placed at once never overcommit a host', () => {
    fc.assert(
      fc.property(fc.array(hostArb, { minLength: 1, maxLength: 5 }), fc.array(needArb, { minLength: 1, maxLength: 8 }), (hosts, needs) => {
        const { rs, ods } = cluster(hosts);
        const targets = needs.map((need, i) => ({ target: `S${i + 1}`, realServer: 'RSX', need }));
        const r = placeMany(targets, rs, ods, { now: NOW });
        const used = new Map<string, { mem: number; cpu: number }>();
        const odsUsed = new Set<string>();
        for (const x of r.placements) {
          if (!x.placement) continue;
          assert.ok(!odsUsed.has(x.placement.od), 'one OD once');
          odsUsed.add(x.placement.od);
          const need = targets.find((t) => t.target === x.target)!.need;
          const u = used.get(x.placement.realServer) ?? { mem: 0, cpu: 0 };
          u.mem += need.memMiB ?? 0;
          u.cpu += need.vcpus ?? 0;
          used.set(x.placement.realServer, u);
        }
        for (const [name, u] of used) {
          const h = rs.find((x) => x.realServer === name)!;
          if (h.freeMemMiB !== undefined) assert.ok(u.mem <= h.freeMemMiB, `${name}: ${u.mem} MiB placed, ${h.freeMemMiB} free`);
          if (h.freeVcpus !== undefined) assert.ok(u.cpu <= Math.max(0, h.freeVcpus), `${name}: ${u.cpu} vCPU placed, ${h.freeVcpus} free`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('after N sequential VM failures the hosts stay within one VM of each other (load per VM equal, noise below half a VM)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.nat(), fc.double({ min: -0.04, max: 0.04, noNaN: true })), { minLength: 1, maxLength: 30 }),
        (nHosts, perHost, steps) => {
          const perVm = 0.1;
          const counts = Array.from({ length: nHosts }, () => perHost);
          let odSeq = 0;
          const noise = new Array<number>(nHosts).fill(0);
          for (const [pick, jitter] of steps) {
            // A VM of a random non-empty host fails (its host stays up), figures as the collector read them.
            const live = counts.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
            const from = live[pick % live.length];
            counts[from] -= 1;
            noise[from] = jitter;
            const rs: RealServerRow[] = counts.map((c, i) => ({
              realServer: `RS${i + 1}`,
              load: Math.max(0, c * perVm + noise[i]),
              vmCount: c,
              state: 'up',
              freeMemMiB: 64 * 1024,
              freeVcpus: 64,
              measuredAt: NOW,
            }));
            const ods: OdRow[] = counts.map((_, i) => ({ od: `OD${++odSeq}`, address: `10.0.0.${i + 1}`, realServer: `RS${i + 1}` }));
            const p = place(rs, ods, { need: { memMiB: 1024, vcpus: 1 }, now: NOW });
            counts[Number(p.realServer.slice(2)) - 1] += 1;
            assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts.join(' ')}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('equal hosts: backups placed one after another fill them evenly (ties spread)', () => {
    const rs: RealServerRow[] = [1, 2, 3].map((i) => ({ realServer: `RS${i}`, load: 0.2, vmCount: 2, state: 'up', measuredAt: NOW }));
    const ods: OdRow[] = [1, 2, 3].flatMap((i) => [0, 1].map((k) => ({ od: `OD${i}${k}`, address: `10.0.${i}.${k}`, realServer: `RS${i}` })));
    const r = placeMany(['S1', 'S2', 'S3', 'S4', 'S5', 'S6'].map((t) => ({ target: t, realServer: 'RSX' })), rs, ods, { now: NOW });
    const hosts = r.placements.map((p) => p.placement!.realServer);
    for (const h of ['RS1', 'RS2', 'RS3']) assert.strictEqual(hosts.filter((x) => x === h).length, 2, hosts.join(' '));
  });

  it('stale figures rank after fresh ones and say their age', () => {
    const rs: RealServerRow[] = [
      { realServer: 'RS1', load: 0.0, vmCount: 0, state: 'up', measuredAt: NOW - 600_000 },
      { realServer: 'RS2', load: 0.9, vmCount: 3, state: 'up', measuredAt: NOW - 5_000 },
    ];
    const ods: OdRow[] = [
      { od: 'OD1', address: '10.0.0.1', realServer: 'RS1' },
      { od: 'OD2', address: '10.0.0.2', realServer: 'RS2' },
    ];
    const p = place(rs, ods, { now: NOW, maxAgeMs: 180_000 });
    assert.strictEqual(p.realServer, 'RS2');
    const stale = p.candidates.find((c) => c.realServer === 'RS1')!;
    assert.strictEqual(stale.fresh, false);
    assert.strictEqual(stale.ageMs, 600_000);
    // Only stale figures: still placed (a stale host is better than no backup).
    assert.strictEqual(place([rs[0]], ods, { now: NOW }).realServer, 'RS1');
  });

  it('anti-affinity: a backup avoids the hosts of its service group, placed together too', () => {
    const group = [
      ['S1', '10.0.1.1', 'RS1', 'tcp:80'],
      ['S2', '10.0.1.2', 'RS2', 'tcp:80'],
      ['S3', '10.0.1.3', 'RS3', 'tcp:5432'],
    ];
    assert.deepStrictEqual(serviceGroupHosts(group, 'S2'), ['RS1']);
    const rs: RealServerRow[] = [
      { realServer: 'RS1', load: 0.1, vmCount: 1, state: 'up' },
      { realServer: 'RS3', load: 0.5, vmCount: 3, state: 'up' },
    ];
    const ods: OdRow[] = [
      { od: 'OD1', address: '10.0.0.1', realServer: 'RS1' },
      { od: 'OD3', address: '10.0.0.3', realServer: 'RS3' },
      { od: 'OD4', address: '10.0.0.4', realServer: 'RS3' },
    ];
    assert.strictEqual(place(rs, ods, { serviceGroupOn: serviceGroupHosts(group, 'S2'), now: NOW }).realServer, 'RS3');
    const r = placeMany(
      [
        { target: 'W1', realServer: 'RS2', serviceGroup: 'web' },
        { target: 'W2', realServer: 'RS2', serviceGroup: 'web' },
      ],
      rs,
      ods,
      { now: NOW },
    );
    assert.deepStrictEqual(r.placements.map((p) => p.placement!.realServer), ['RS1', 'RS3']);
  });

  it('the realserver record carries the figures as optional fields; old records stay as they were', () => {
    const old = ['RS1', '0.25', '2', 'up'];
    assert.deepStrictEqual(toRealServer(fromRealServer(old)), old);
    const rec = toRealServer({ realServer: 'RS1', load: 0.25, vmCount: 2, state: 'up', freeMemMiB: 2048, freeVcpus: -1, measuredAt: NOW });
    assert.deepStrictEqual(rec, ['RS1', '0.25', '2', 'up', '2048', '-1', '2026-01-01T03:00:00.000Z']);
    assert.deepStrictEqual(validateRecord('realserver', rec), rec);
    assert.deepStrictEqual(fromRealServer(rec), { realServer: 'RS1', load: 0.25, vmCount: 2, state: 'up', freeMemMiB: 2048, freeVcpus: -1, measuredAt: NOW });
    assert.throws(() => validateRecord('realserver', ['RS1', '0.25', '2', 'up', 'lots']), /freeMemMiB/);
  });
});

describe('placement: the failed VM\'s size recorded by the load collector (property)', () => {
  it('a failed VM of recorded size (realserver vmSizes, no need on the failure) is never placed where it does not fit', () => {
    const sizeArb = fc.record({ memMiB: fc.integer({ min: 64, max: 8192 }), vcpus: fc.integer({ min: 1, max: 8 }) });
    fc.assert(
      fc.property(fc.array(hostArb, { minLength: 1, maxLength: 6 }), sizeArb, fc.boolean(), (hosts, size, hostDown) => {
        const { rs, ods } = cluster(hosts);
        // The failed VM SX ran on RSF, whose record (last read before it failed) holds SX's size.
        const records: Record<string, RecordFields[]> = {
          realserver: [
            ...rs.map((r) => toRealServer({ ...r, state: r.state as 'up' })),
            toRealServer({ realServer: 'RSF', load: 0.1, vmCount: 1, state: hostDown ? 'down' : 'up', freeMemMiB: 0, freeVcpus: 0, measuredAt: NOW - 5000, vmSizes: { SX: size } }),
          ],
          'available-od': ods.map((o) => [o.od, o.address, o.realServer]),
          group: [['SX', '10.9.9.9', 'RSF', 'tcp:80', 'fenced']],
          problem: [['SX', 'S1', 'network', 'fencing', '-', new Date(NOW).toISOString()]],
        };
        for (const [f, rows] of Object.entries(records)) for (const r of rows) validateRecord(f as 'realserver', r);
        const files = { records: (f: string) => records[f] ?? [] };
        try {
          const p = decidePlacement(files, 'SX', 'RSF', { now: NOW });
          const host = rs.find((r) => r.realServer === p.realServer)!;
          assert.ok(host, `placed on a host with an OD, not ${p.realServer}`);
          assert.strictEqual(doesNotFit(host, size), undefined, `${p.realServer} does not fit ${JSON.stringify(size)}`);
        } catch (e) {
          if (!(e instanceof PlacementError)) throw e;
          for (const r of rs) {
            const hasOd = ods.some((o) => o.realServer === r.realServer);
            assert.ok(r.state !== 'up' || !hasOd || doesNotFit(r, size) !== undefined, `${r.realServer} could have taken it`);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('the size survives the record: vmSizes round-trips through the codec and the schema', () => {
    const rec = toRealServer({ realServer: 'RS1', load: 0.5, vmCount: 2, state: 'up', freeMemMiB: 1000, freeVcpus: 2, measuredAt: NOW, vmSizes: { S4: { memMiB: 1024, vcpus: 1 }, S10: { memMiB: 2048, vcpus: 2 } } });
    assert.strictEqual(rec[7], 'S4:1024/1 S10:2048/2');
    validateRecord('realserver', rec);
    assert.deepStrictEqual(fromRealServer(rec).vmSizes, { S4: { memMiB: 1024, vcpus: 1 }, S10: { memMiB: 2048, vcpus: 2 } });
    assert.throws(() => validateRecord('realserver', [...rec.slice(0, 7), 'S4:1024']));
  });
});
