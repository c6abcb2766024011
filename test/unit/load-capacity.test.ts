// The load collector's capacity figures (lib/hv/load-edits.ts): free memory and vCPUs with the time
// they were read, written only when they moved or when the record's time would go stale.
import * as assert from 'assert';
import { loadEdits, readRealServer } from '../../lib/hv/load-edits';
import { parseDominfo, type VirshDriver } from '../../lib/hv/virsh-driver';

const T = Date.parse('2026-01-01T03:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

describe('hv load edits: capacity figures', () => {
  const reading = (freeMemMiB: number, freeVcpus: number, at: number) => ({ realServer: 'RS1', ok: true as const, load: 0.25, vmCount: 2, capacity: { freeMemMiB, freeVcpus, at } });

  it('adds the figures to an old-format record once, then edits only on a move or a refresh', () => {
    let cur = [['RS1', '0.25', '2', 'up']];
    let e = loadEdits([reading(4096, 2, T)], cur, 0.1);
    assert.deepStrictEqual(e[0].record, ['RS1', '0.25', '2', 'up', '4096', '2', iso(T)]);
    cur = [e[0].record];
    assert.deepStrictEqual(loadEdits([reading(4000, 2, T + 10_000)], cur, 0.1), [], '96 MiB less: below the threshold');
    e = loadEdits([reading(3800, 2, T + 10_000)], cur, 0.1);
    assert.deepStrictEqual(e[0].record, ['RS1', '0.25', '2', 'up', '3800', '2', iso(T + 10_000)], '296 MiB less');
    assert.deepStrictEqual(loadEdits([reading(4096, 1, T + 10_000)], cur, 0.1).length, 1, 'one vCPU fewer');
    e = loadEdits([reading(4096, 2, T + 60_000)], cur, 0.1);
    assert.deepStrictEqual(e[0].record[6], iso(T + 60_000), 'unchanged figures rewritten after refreshMs');
  });

  it('an unreachable host keeps its last figures and their time', () => {
    const cur = [['RS1', '0.25', '2', 'up', '4096', '2', iso(T)]];
    const e = loadEdits([{ realServer: 'RS1', ok: false, error: 'timeout' }], cur, 0.1);
    assert.deepStrictEqual(e[0].record, ['RS1', '0.25', '2', 'down', '4096', '2', iso(T)]);
  });

  it('readRealServer: MemAvailable in MiB, nproc minus active VMs; without /proc/meminfo, a reading without capacity', async () => {
    const driver = {
      hostLoad: async () => ({ load1: 1, load5: 1, load15: 1, cpus: 4, perCpu: 0.25 }),
      activeCount: async () => 3,
      hostMemory: async () => ({ totalKiB: 8 * 1024 * 1024, availableKiB: 2 * 1024 * 1024 + 500 }),
    } as unknown as VirshDriver;
    assert.deepStrictEqual(await readRealServer('RS1', driver, undefined, true, () => T), {
      realServer: 'RS1',
      ok: true,
      load: 0.25,
      vmCount: 3,
      capacity: { freeMemMiB: 2048, freeVcpus: 1, at: T },
    });
    const noMem = { ...driver, hostLoad: driver.hostLoad, activeCount: driver.activeCount, hostMemory: async () => Promise.reject(new Error('denied')) } as unknown as VirshDriver;
    assert.deepStrictEqual(await readRealServer('RS1', noMem, undefined, true, () => T), { realServer: 'RS1', ok: true, load: 0.25, vmCount: 3 });
    assert.strictEqual((await readRealServer('RS1', driver)).ok, true);
    assert.strictEqual('capacity' in (await readRealServer('RS1', driver)), false, 'capacity off by default in the lib call');
  });
});

describe('load collector: VM sizes from virsh dominfo', () => {
  // Two blocks as `virsh dominfo a && virsh dominfo b` prints them (virsh 9.0.0, test driver).
  const DOMINFO = [
    'Id:             1',
    'Name:           S1',
    'UUID:           6695eb01-f6a4-8304-79aa-97f2502e193f',
    'OS Type:        linux',
    'State:          running',
    'CPU(s):         2',
    'CPU time:       1796278625.9s',
    'Max memory:     4194304 KiB',
    'Used memory:    2097152 KiB',
    'Persistent:     yes',
    'Autostart:      disable',
    'Managed save:   no',
    'Security model: testSecurity',
    'Security DOI:   ',
    'Security label: libvirt-test (enforcing)',
    '',
    'Id:             2',
    'Name:           S4',
    'UUID:           5ff16b85-5dd0-4efa-8c49-7c10356b7ede',
    'OS Type:        linux',
    'State:          running',
    'CPU(s):         1',
    'CPU time:       1796278881.5s',
    'Max memory:     65536 KiB',
    'Used memory:    65536 KiB',
    'Persistent:     yes',
    'Autostart:      disable',
    'Managed save:   no',
    'Security model: testSecurity',
    'Security DOI:   ',
    'Security label: libvirt-test (enforcing)',
    '',
    '',
  ].join('\n');

  it('parses each block: Max memory (MiB) and CPU(s), by name', () => {
    assert.deepStrictEqual(parseDominfo(DOMINFO), { S1: { memMiB: 4096, vcpus: 2 }, S4: { memMiB: 64, vcpus: 1 } });
    assert.deepStrictEqual(parseDominfo(''), {});
  });

  it('free vCPUs are nproc minus the vCPUs of the active domains; sizes go into the record', async () => {
    const driver = {
      hostLoad: async () => ({ load1: 1, load5: 1, load15: 1, cpus: 8, perCpu: 0.125 }),
      activeCount: async () => 3,
      hostMemory: async () => ({ totalKiB: 16 * 1024 * 1024, availableKiB: 8 * 1024 * 1024 }),
      // Two of the three active domains could be read: the third counts as one vCPU.
      activeDomainSizes: async () => parseDominfo(DOMINFO),
    } as unknown as VirshDriver;
    const r = await readRealServer('RS1', driver, undefined, true, () => T);
    assert.ok(r.ok && r.capacity);
    assert.strictEqual(r.capacity.freeVcpus, 8 - 2 - 1 - 1);
    const e = loadEdits([r], [], 0.1);
    assert.strictEqual(e[0].record[7], 'S1:4096/2 S4:64/1');
    // Unreachable next round: the sizes stay (they are what placement needs at failure time).
    const down = loadEdits([{ realServer: 'RS1', ok: false, error: 'timeout' }], [e[0].record], 0.1);
    assert.strictEqual(down[0].record[3], 'down');
    assert.strictEqual(down[0].record[7], 'S1:4096/2 S4:64/1');
  });
});
