import { strict as assert } from 'assert';
import { macFor, replicateOne, ReplicationEvent } from '../../lib/recovery/od-replication';
import { MemoryFiles } from '../support/memory-files';

class FakeHost {
  readonly domains = new Map<string, string>([['ODS1', 'shut off']]);
  readonly calls: string[] = [];
  failStart = false;
  async clone(original: string, name: string, mac?: string) {
    this.calls.push(`clone ${original} ${name} ${mac}`);
    // The driver's typed outcome (VirshDriver decides it by asking virsh for the name).
    if (this.domains.has(name)) throw Object.assign(new Error(`the name ${name} is in use`), { kind: 'name-in-use' });
    this.domains.set(name, 'shut off');
  }
  async start(name: string) {
    this.calls.push(`start ${name}`);
    if (this.failStart) throw Object.assign(new Error('error: Failed to start domain'), { kind: 'failed', exitCode: 1 });
    this.domains.set(name, 'running');
  }
  async suspend(name: string) {
    this.calls.push(`suspend ${name}`);
    this.domains.set(name, 'paused');
  }
  async domstate(name: string) {
    const s = this.domains.get(name);
    if (s === undefined) throw Object.assign(new Error(`no domain ${name}`), { kind: 'domain-absent' });
    return s;
  }
  async destroy(name: string) {
    this.calls.push(`destroy ${name}`);
    this.domains.set(name, 'shut off');
  }
  unreachable = false;
  async undefine(name: string, opts?: { removeAllStorage?: boolean }) {
    if (this.unreachable) throw Object.assign(new Error('connect ECONNREFUSED'), { kind: 'unreachable' });
    this.calls.push(`undefine ${name}${opts?.removeAllStorage ? ' --remove-all-storage' : ''}`);
    this.domains.delete(name);
  }
}

const id = { od: 'OD11', address: '127.0.2.11', realServer: 'RS1' };
const files = () => new MemoryFiles({ hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: '-' }, { reservation: [['OD11', '127.0.2.11', 'RS1']] });

describe('recovery OD replication', () => {
  it('clone, start, re-identify, suspend, then available-od Add and reservation Del', async () => {
    const host = new FakeHost();
    const f = files();
    const seen: ReplicationEvent[] = [];
    const reid: unknown[] = [];
    const r = await replicateOne(id, { files: f, driver: host, ods: 'ODS1', reidentify: async (x) => void reid.push(x), onStep: (e) => seen.push(e) });
    assert.equal(r.outcome, 'made');
    assert.deepEqual(host.calls, [`clone ODS1 OD11 ${macFor('OD11')}`, 'start OD11', 'suspend OD11']);
    assert.deepEqual(reid, [{ ...id, mac: macFor('OD11') }]);
    assert.equal(host.domains.get('OD11'), 'paused');
    assert.deepEqual(f.get('available-od', 'OD11'), ['OD11', '127.0.2.11', 'RS1']);
    assert.equal(f.get('reservation', 'OD11'), undefined);
    assert.deepEqual(seen.map((e) => e.step), ['clone', 'start', 'reidentify', 'suspend', 'edits', 'done']);
  });

  it('fixes the clone XML before the first start, waits for readiness before suspending, and records the new host key', async () => {
    const host = new FakeHost();
    const xml = new Map<string, string>([['OD11', '<domain><name>OD11</name><serial path="/g/ODS1.log"/></domain>']]);
    const driver = Object.assign(host, {
      dumpxml: async (n: string) => {
        host.calls.push(`dumpxml ${n}`);
        return xml.get(n)!;
      },
      define: async (x: string) => {
        host.calls.push(`define ${x}`);
        return 'OD11';
      },
    });
    const f = files();
    const seen: ReplicationEvent[] = [];
    const key = 'SHA256:' + 'k'.repeat(43);
    const r = await replicateOne(id, {
      files: f,
      driver,
      ods: 'ODS1',
      postCloneXml: (x, c) => x.replace(`${c.ods}.log`, `${c.od}.log`),
      reidentify: async () => {
        host.calls.push('reidentify');
        return { hostKey: key, timings: { boot: 1, setup: 2, restart: 3 } };
      },
      ready: async (c) => void host.calls.push(`ready ${c.od}`),
      onStep: (e) => seen.push(e),
    });
    assert.deepEqual(host.calls, [
      `clone ODS1 OD11 ${macFor('OD11')}`,
      'dumpxml OD11',
      'define <domain><name>OD11</name><serial path="/g/OD11.log"/></domain>',
      'start OD11',
      'reidentify',
      'ready OD11',
      'suspend OD11',
    ]);
    assert.deepEqual(seen.map((e) => e.step), ['clone', 'fix-xml', 'start', 'reidentify', 'ready', 'suspend', 'edits', 'done']);
    assert.equal(r.hostKey, key);
    assert.deepEqual(r.reidentifySteps, { boot: 1, setup: 2, restart: 3 });
    assert.deepEqual(f.get('available-od', 'OD11'), ['OD11', '127.0.2.11', 'RS1', key]);
  });

  it('seed: gives the identity before the first start (one define with the volume), pins the seed key in ready, records it', async () => {
    const host = new FakeHost();
    const driver = Object.assign(host, {
      dumpxml: async (n: string) => {
        host.calls.push(`dumpxml ${n}`);
        return `<domain><name>${n}</name></domain>`;
      },
      define: async (x: string) => {
        host.calls.push(`define ${x}`);
        return 'OD11';
      },
    });
    const f = files();
    const seen: ReplicationEvent[] = [];
    const blob = 'AAAAC3NzaC1lZDI1NTE5AAAAI' + 'x'.repeat(43);
    const readyWith: (string | undefined)[] = [];
    const r = await replicateOne(id, {
      files: f,
      driver,
      ods: 'ODS1',
      postCloneXml: (x) => x.replace('</domain>', '<fixed/></domain>'),
      seed: async (c, x) => {
        host.calls.push(`seed ${c.od} ${c.mac} ${c.ods}`);
        return { xml: x.replace('</domain>', '<seed/></domain>'), hostKey: blob };
      },
      ready: async (c) => {
        readyWith.push(c.hostKey);
        host.calls.push(`ready ${c.od}`);
      },
      onStep: (e) => seen.push(e),
    });
    assert.deepEqual(host.calls, [
      `clone ODS1 OD11 ${macFor('OD11')}`,
      'dumpxml OD11',
      `seed OD11 ${macFor('OD11')} ODS1`,
      'define <domain><name>OD11</name><fixed/><seed/></domain>',
      'start OD11',
      'ready OD11',
      'suspend OD11',
    ]);
    assert.deepEqual(seen.map((e) => e.step), ['clone', 'fix-xml', 'seed', 'start', 'reidentify', 'ready', 'suspend', 'edits', 'done']);
    assert.deepEqual(readyWith, [blob]);
    assert.equal(r.hostKey, blob);
    assert.deepEqual(f.get('available-od', 'OD11'), ['OD11', '127.0.2.11', 'RS1', blob]);
  });

  it('keeps an OD that failed its readiness check out of available-od (and the reservation in place)', async () => {
    const host = new FakeHost();
    const f = files();
    await assert.rejects(
      replicateOne(id, { files: f, driver: host, ods: 'ODS1', ready: async () => Promise.reject(new Error('OD11 did not answer SSH within 60000 ms')) }),
      /did not answer SSH/,
    );
    assert.ok(!host.calls.includes('suspend OD11'), 'not suspended unready');
    assert.equal(f.get('available-od', 'OD11'), undefined);
    assert.ok(f.get('reservation', 'OD11'));
  });

  it('removes the clone its failed run left (stopped, undefined with its storage), so the next run can make it again', async () => {
    const host = new FakeHost();
    const f = files();
    const seen: ReplicationEvent[] = [];
    await assert.rejects(
      replicateOne(id, { files: f, driver: host, ods: 'ODS1', ready: async () => Promise.reject(new Error('OD11 did not answer SSH within 60000 ms')), onStep: (e) => seen.push(e) }),
      /did not answer SSH/,
    );
    assert.deepEqual(host.calls.slice(-2), ['destroy OD11', 'undefine OD11 --remove-all-storage']);
    assert.equal(host.domains.has('OD11'), false);
    assert.deepEqual(seen.slice(-2).map((e) => e.step), ['failed', 'removed']);
    // The reservation stayed: the retry clones the same identity and finishes.
    const r = await replicateOne(id, { files: f, driver: host, ods: 'ODS1' });
    assert.equal(r.outcome, 'made');
    assert.deepEqual(f.get('available-od', 'OD11'), ['OD11', '127.0.2.11', 'RS1']);
  });

  it('a clone that cannot be removed (host gone) is reported as blocking its identity; the first error is the one thrown', async () => {
    const host = new FakeHost();
    host.failStart = true;
    host.unreachable = true;
    const seen: ReplicationEvent[] = [];
    await assert.rejects(replicateOne(id, { files: files(), driver: host, ods: 'ODS1', onStep: (e) => seen.push(e) }), /Failed to start/);
    const last = seen[seen.length - 1];
    assert.equal(last.step, 'removed');
    assert.match(last.text, /could not be removed .*ECONNREFUSED.*remove it by hand/);
    assert.equal(host.domains.get('OD11'), 'shut off');
  });

  it('a run that stood down removes nothing (the clone is the other replicator\'s)', async () => {
    const host = new FakeHost();
    host.domains.set('OD11', 'running');
    await replicateOne(id, { files: files(), driver: host, ods: 'ODS1' });
    assert.deepEqual(host.calls, [`clone ODS1 OD11 ${macFor('OD11')}`]);
    assert.equal(host.domains.get('OD11'), 'running');
  });

  it('stands down when the clone name is in use (another replicator), files untouched', async () => {
    const host = new FakeHost();
    host.domains.set('OD11', 'running');
    const f = files();
    const r = await replicateOne(id, { files: f, driver: host, ods: 'ODS1' });
    assert.equal(r.outcome, 'stood-down');
    assert.ok(f.get('reservation', 'OD11'));
    assert.equal(f.lines.length, 0);
  });

  it('decides on the kind, not the words: a clone failure that only reads like "in use" is a failure', async () => {
    const host = new FakeHost();
    host.clone = async () => {
      throw Object.assign(new Error("ERROR    Guest name 'OD11' is already in use."), { kind: 'failed', exitCode: 1 });
    };
    const f = files();
    await assert.rejects(replicateOne(id, { files: f, driver: host, ods: 'ODS1' }), /already in use/);
    assert.equal(f.lines.length, 0);
  });

  it('a failing step throws and leaves the files alone', async () => {
    const host = new FakeHost();
    host.failStart = true;
    const f = files();
    await assert.rejects(replicateOne(id, { files: f, driver: host, ods: 'ODS1' }), /Failed to start/);
    assert.equal(f.lines.length, 0);
    assert.equal(host.domains.has('OD11'), false, 'its clone removed');
  });

  it('MACs are stable, unicast, locally administered range', () => {
    assert.equal(macFor('OD11'), macFor('OD11'));
    assert.notEqual(macFor('OD11'), macFor('OD12'));
    assert.match(macFor('OD11'), /^52:54:00(:[0-9a-f]{2}){3}$/);
  });
});
