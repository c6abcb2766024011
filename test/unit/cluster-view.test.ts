import { strict as assert } from 'assert';
import { buildView } from '../../lib/view/cluster-view';
import { MemoryFiles } from '../support/memory-files';
import { ClusterRegistry } from '../../nodes/common/cluster-registry';

describe('cluster sidebar view', () => {
  let store: MemoryFiles;
  before(async () => {
    // The files as a view reads them, in memory: the fixture writes other VMs' records, which a
    // real store refuses (edit authority, lib/sem/edit-authority.ts).
    store = new MemoryFiles({ hostname: 'S1', address: '127.0.0.1', realServer: 'RS1', services: '-' });
    for (const line of [
      'group, Add, S1, 127.254.1.1, RS1, -',
      'group, Add, S2, 127.254.1.2, RS2, tcp:80',
      'group, Add, S3, 127.254.1.3, RS3, -',
      'realserver, Add, RS1, 0.5, 1, up',
      'realserver, Add, RS2, 0.25, 1, up',
      'available-od, Add, OD1, 127.254.2.1, RS2',
      'problem, Add, S2, S1, network, reexamining, -, 2026-11-26T14:00:00.000Z',
    ]) {
      await store.edit(line);
    }
  });

  it('shows the ring, VM states from open problems, real servers with OD counts', () => {
    const v = buildView(store, [], [{ target: 'S2', what: 'confirm', until: 2000 }], 1000);
    assert.equal(v.self, 'S1');
    assert.deepEqual(v.ring.find((r) => r.target === 'S2'), { target: 'S2', p1: 'S1', p2: 'S3' });
    assert.equal(v.vms.find((x) => x.hostname === 'S2')!.state, 'reexamining');
    assert.equal(v.vms.find((x) => x.hostname === 'S3')!.state, 'ok');
    assert.deepEqual(v.problems[0].countdown, { target: 'S2', what: 'confirm', until: 2000 });
    assert.deepEqual(
      v.realServers.map((r) => [r.name, r.state, r.ods]),
      [
        ['RS1', 'up', 0],
        ['RS2', 'up', 1],
        ['RS3', 'unknown', 0],
      ],
    );
  });

  it('a fenced VM shows as fenced with the readmit action; the isolation state comes from the heartbeat (registry gate)', async () => {
    const plain = ['S3', '127.254.1.3', 'RS3', '-'];
    await store.edit({ file: 'group', op: 'Mod', before: plain, record: [...plain, 'fenced'] });
    const reg = new ClusterRegistry();
    const iso = { state: 'isolated', stopped: true, reachable: ['S1'], voters: ['S1', 'S2'], needed: 2, why: 'isolated: reaches 1 of 2' };
    const source = { check: () => ({ ok: false as const, why: 'test' }), view: () => iso };
    assert.equal(reg.isolationGate(store), undefined, 'no heartbeat: no gate (a recovery must not go ahead)');
    reg.setIsolationGate(store, source);
    assert.equal(reg.isolationGate(store), source);
    const v = buildView(store, [], [], 1000, reg.isolationView(store));
    assert.deepEqual(v.isolation, iso);
    const s3 = v.vms.find((x) => x.hostname === 'S3')!;
    assert.deepEqual([s3.state, s3.actions], ['fenced', ['readmit']]);
    assert.deepEqual(v.vms.find((x) => x.hostname === 'S1')!.actions, ['maintenance-on', 'rehearse']);
    // An older node's close does not remove a newer node's gate.
    reg.setIsolationGate(store, undefined, { ...source });
    assert.equal(reg.isolationGate(store), source);
    reg.setIsolationGate(store, undefined, source);
    assert.equal(reg.isolationGate(store), undefined);
    await store.edit({ file: 'group', op: 'Mod', before: [...plain, 'fenced'], record: plain });
  });

  it('the registry turns problem status changes into timeline steps', async () => {
    const reg = new ClusterRegistry();
    reg.addStore('s', store);
    await store.edit({
      file: 'problem',
      op: 'Mod',
      before: ['S2', 'S1', 'network', 'reexamining', '-', '2026-11-26T14:00:00.000Z'],
      record: ['S2', 'S1', 'network', 'confirmed', '-', '2026-11-26T14:00:00.000Z'],
    });
    reg.step({ target: 'S2', step: 'placed', at: Date.now(), detail: 'RS2' });
    assert.deepEqual(
      reg.timeline.map((e) => e.step),
      ['confirmed', 'placed'],
    );
    reg.removeStore('s');
  });
});
