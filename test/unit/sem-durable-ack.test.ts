// The durability rules of SEM's per-edit path (issue 16, docs/performance.md), checked with the
// journal's durable writes counted and held back by the test (FileHandle.prototype wrapped):
//   - group commit: saves requested while one is being made durable are coalesced into the next
//     journal line, one durable write for all of them, in the order they were requested;
//   - a save resolves only after the durable write (O_DSYNC) of the line that holds it returned, so
//     a power loss (the journal cut back to what was durable) loses nothing a save had resolved;
//   - a receiver answers a diff (acknowledges it) only after its journal line is durable, although
//     it prepares the answer meanwhile; its change event follows the answer.
import { strict as assert } from 'assert';
import { waitFor } from '../../harness/wait';
import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DurableFiles, WAL_FILE } from '../../lib/sem/durable-files';
import { Replica } from '../../lib/sem/replica';
import { LoopbackStores } from '../support/loopback-stores';

type Method = (this: fsp.FileHandle, ...args: unknown[]) => Promise<unknown>;
const DURABLE_CALLS = ['write', 'datasync', 'sync'] as const;

/** Wraps the FileHandle calls that make a journal line durable (its O_DSYNC write, or an
 * fdatasync/fsync) for journals under `folder`: counts them and lets the test hold them (each then
 * waits for release()). Other files are not touched. */
class FsyncGate {
  calls = 0;
  /** Journal length (bytes) at the moment each counted call returned: what is durable. */
  durableLengths: number[] = [];
  private held: (() => void)[] = [];
  private holding = false;
  private waiters: (() => void)[] = [];
  private readonly originals = new Map<string, Method>();
  private proto!: Record<string, Method>;

  constructor(private readonly folder: string) {}

  async install(): Promise<void> {
    const probe = await fsp.open(os.tmpdir(), 'r');
    this.proto = Object.getPrototypeOf(probe);
    await probe.close();
    const gate = this;
    for (const name of DURABLE_CALLS) {
      const original = this.proto[name];
      this.originals.set(name, original);
      this.proto[name] = async function (this: fsp.FileHandle, ...args: unknown[]) {
        let file = '';
        try {
          file = fs.readlinkSync(`/proc/self/fd/${this.fd}`);
        } catch {
          /* not ours */
        }
        if (!file.startsWith(gate.folder) || path.basename(file) !== WAL_FILE) return original.apply(this, args);
        gate.calls++;
        gate.waiters.splice(0).forEach((w) => w());
        if (gate.holding) await new Promise<void>((r) => gate.held.push(r));
        const r = await original.apply(this, args);
        gate.durableLengths.push(fs.statSync(file).size);
        return r;
      };
    }
  }

  uninstall(): void {
    for (const [name, original] of this.originals) this.proto[name] = original;
    this.originals.clear();
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    this.held.splice(0).forEach((r) => r());
  }

  /** Resolves once `n` counted fdatasyncs have been called. */
  async called(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.calls < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.calls} of ${n} fdatasync calls`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

const settled = async <T>(p: Promise<T>, ms = 100): Promise<boolean> => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return done;
};

describe('SEM durability on the per-edit path', function () {
  this.timeout(60_000);
  let dir: string;
  let gate: FsyncGate;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-durable-ack-'));
    gate = new FsyncGate(dir);
    await gate.install();
  });

  afterEach(() => {
    gate.release();
    gate.uninstall();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('group commit: saves made while one is in flight share the next durable write, in order; none resolves before its line is durable', async () => {
    const replica = new Replica();
    const disk = new DurableFiles(path.join(dir, 'S1'), 'S1', replica);
    disk.loadSync();
    await disk.init();
    await disk.save(['realserver']); // the journal is open: saves append lines from here
    const base = gate.calls;
    const put = (n: number) => {
      replica.apply({ file: 'realserver', op: 'Add', record: [`RS${n}`, '0.1', String(n), 'up'], origin: 'S1', seq: n, lamport: replica.tick() });
      return disk.save(['realserver']);
    };
    gate.hold();
    const first = put(1);
    await gate.called(base + 1);
    // Nine more while the first line's fdatasync is held: none may resolve, and they wait together.
    const rest = Array.from({ length: 9 }, (_, i) => put(i + 2));
    assert.equal(await settled(first), false, 'a save resolved before its line was durable');
    assert.equal(await settled(Promise.race(rest)), false);
    gate.release();
    await Promise.all([first, ...rest]);
    assert.equal(gate.calls - base, 2, `10 saves, ${gate.calls - base} durable writes (1 + one for the 9 that waited)`);
    // The text files follow the state (lib/sem/text-files.ts): once written, they show the last save.
    await disk.textsWritten();
    assert.match(fs.readFileSync(path.join(dir, 'S1', 'realserver'), 'utf8'), /^RS10, 0\.1, 10, up$/m);
    // The journal holds RS1 in one line and RS2..RS10 in the next, in that order.
    const wal = fs.readFileSync(path.join(dir, 'S1', WAL_FILE), 'utf8').trim().split('\n');
    const keys = wal.slice(-2).map((l) => (JSON.parse(l.slice(17)) as { entries: [string, string][] }).entries.map((e) => e[1]));
    assert.deepEqual(keys, [['RS1'], Array.from({ length: 9 }, (_, i) => `RS${i + 2}`)]);
    await disk.close();
  });

  it('a power loss (the journal cut back to its last durable write) loses no save that had resolved', async () => {
    const folder = path.join(dir, 'S1');
    const replica = new Replica();
    const disk = new DurableFiles(folder, 'S1', replica);
    disk.loadSync();
    await disk.init();
    await disk.save(['realserver']);
    const resolved: number[] = [];
    const pending: Promise<void>[] = [];
    for (let n = 1; n <= 30; n++) {
      replica.apply({ file: 'realserver', op: 'Add', record: [`RS${n}`, '0.1', String(n), 'up'], origin: 'S1', seq: n, lamport: replica.tick() });
      pending.push(disk.save(['realserver']).then(() => void resolved.push(n)));
      if (n % 7 === 0) await pending[pending.length - 1];
    }
    await Promise.all(pending);
    // The next lines' fdatasync never returns: the "power" goes off while it is held.
    const before = gate.calls;
    gate.hold();
    for (let n = 31; n <= 35; n++) {
      replica.apply({ file: 'realserver', op: 'Add', record: [`RS${n}`, '0.1', String(n), 'up'], origin: 'S1', seq: n, lamport: replica.tick() });
      pending.push(disk.save(['realserver']).then(() => void resolved.push(n)));
    }
    await gate.called(before + 1);
    await new Promise((r) => setTimeout(r, 100));
    const acknowledged = resolved.slice();
    assert.deepEqual(acknowledged.sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1), 'only the saves before the held fdatasync resolved');
    // What a power loss leaves: the journal up to the last fdatasync that returned.
    const cut = gate.durableLengths[gate.durableLengths.length - 1];
    const copy = path.join(dir, 'after-power-loss');
    fs.mkdirSync(copy);
    for (const f of fs.readdirSync(folder)) if (f.startsWith('.sem')) fs.copyFileSync(path.join(folder, f), path.join(copy, f));
    fs.truncateSync(path.join(copy, WAL_FILE), cut);
    const reloaded = new Replica();
    new DurableFiles(copy, 'S1', reloaded).loadSync();
    const have = new Set(reloaded.records('realserver').map((r) => r[0]));
    for (const n of acknowledged) assert.ok(have.has(`RS${n}`), `RS${n} was acknowledged but lost`);
    gate.release();
    await Promise.all(pending);
    await disk.close();
  });

  it('a receiver answers a diff only after its journal line is durable; its change event follows', async () => {
    const net = await LoopbackStores.open(2, 'durable-ack-secret-0123456789', 'durable-ack');
    const stores = [1, 2].map((i) => net.store(i, { seeds: net.range.ips(2), syncIntervalMs: 600_000 }));
    try {
      await Promise.all(stores.map((s) => s.start()));
      await Promise.all(stores.map((s) => s.syncAll()));
      assert.deepEqual(stores[0].peers().map((p) => p.hostname), ['S2']);
      const [s1, s2] = stores;
      await s1.edit('realserver, Add, RS1, 0.1, 1, up');
      // The diff below travels on S1's stream to S2 (lib/sem/sem-stream.ts), which the first edit
      // opened: the acknowledgement rule holds on the stream as on a POST.
      const streamOpen = () => (s1 as unknown as { client: { streamOpen(t: { address: string; port: number }): boolean } }).client.streamOpen({ address: s2.identity.address, port: net.port });
      await waitFor(streamOpen, { what: 'the stream from S1 to S2', timeoutMs: 10_000 });
      const order: string[] = [];
      s2.on('change', () => order.push('change'));
      // Hold only S2's fdatasync: S1 saves its own edit, sends it, and S2 waits on the disk.
      const s2gate = new FsyncGate(path.join(net.base, 'S2'));
      gate.uninstall();
      await s2gate.install();
      try {
        s2gate.hold();
        const edit = s1.edit({ file: 'realserver', op: 'Mod', before: ['RS1', '0.1', '1', 'up'], record: ['RS1', '0.2', '2', 'up'] });
        await s2gate.called(1);
        assert.equal(await settled(edit, 300), false, 'S1 had an acknowledgement before S2 journal line was durable');
        assert.equal(order.length, 0, 'S2 reported the diff before it was durable');
        s2gate.release();
        const r = await edit;
        order.push('acknowledged');
        assert.deepEqual(r.acked.map((a) => a.peer), ['S2']);
        assert.deepEqual(s2.get('realserver', 'RS1'), ['RS1', '0.2', '2', 'up']);
        assert.deepEqual(order, ['change', 'acknowledged']);
      } finally {
        s2gate.release();
        s2gate.uninstall();
      }
    } finally {
      await net.close();
    }
  });
});
