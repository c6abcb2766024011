// The plain-text files behind the state (lib/sem/text-files.ts, durable-files.ts): a save resolves
// once its journal line is durable, not waiting for the text files; rewrites of a file are
// coalesced (a few changes rewritten at once, then one rewrite per interval); close() writes what
// waits; textsWritten() waits for them; a text file that cannot be written fails no save and is
// written once it can be.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DurableFiles } from '../../lib/sem/durable-files';
import { Replica } from '../../lib/sem/replica';
import { FILE_NAMES, parseFile } from '../../lib/records/files';
import { LoopbackStores } from '../support/loopback-stores';

describe('SEM text files written behind the state', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-texts-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const open = async (intervalMs?: number, burst?: number) => {
    const replica = new Replica();
    const disk = new DurableFiles(dir, 'S1', replica, { intervalMs, burst });
    disk.loadSync();
    await disk.init();
    let seq = 0;
    const put = (name: string) => {
      seq++;
      replica.apply({ file: 'realserver', op: 'Add', record: [name, '0.1', String(seq), 'up'], origin: 'S1', seq, lamport: replica.tick() });
      return disk.save(['realserver']);
    };
    const names = () => parseFile('realserver', fs.readFileSync(path.join(dir, 'realserver'), 'utf8')).map((r) => r[0]);
    return { disk, put, names };
  };

  it('a start writes every text file; 50 saves within one interval resolve without rewriting, close() writes the file once with the last state', async () => {
    const { disk, put, names } = await open(60_000, 1);
    for (const f of FILE_NAMES) assert.ok(fs.existsSync(path.join(dir, f)), `${f} written at the start`);
    const atStart = disk.texts.rewrites;
    for (let i = 1; i <= 50; i++) await put(`RS${i}`); // each resolved: durable in the journal
    assert.equal(disk.texts.rewrites, atStart, 'no rewrite on the saves\' path within the interval');
    assert.deepEqual(names(), [], 'the text file is behind the state until the interval ends');
    assert.equal(disk.retained().textsBehind, 1);
    await disk.close();
    assert.equal(disk.texts.rewrites, atStart + 1, '50 saves, one rewrite of the file');
    assert.equal(names().length, 50, 'close() wrote the last state');
  });

  it('the first change after a quiet interval is written a turn after its save; later ones at most once per interval', async () => {
    const { disk, put, names } = await open(200, 1);
    await new Promise((r) => setTimeout(r, 250)); // quiet since the start's rewrite
    const atStart = disk.texts.rewrites;
    await put('RS1');
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(names(), ['RS1'], 'written right after the save');
    assert.equal(disk.texts.rewrites, atStart + 1);
    const written = Date.now();
    for (let i = 2; i <= 10; i++) await put(`RS${i}`);
    // Within the interval of that rewrite nothing more is written (how long the nine saves took is
    // the disk's business: checked only when they took less than the interval).
    if (Date.now() - written < 150) {
      assert.deepEqual(names(), ['RS1'], 'a second rewrite within the interval');
      assert.equal(disk.texts.rewrites, atStart + 1);
    }
    await disk.textsWritten();
    assert.equal(names().length, 10, 'textsWritten() resolves once the file shows every save');
    await disk.close();
  });

  it('a few changes close together are each written at once (the burst); the next waits for the interval', async () => {
    const { disk, put, names } = await open(60_000, 3); // the start's rewrite took one of three
    const atStart = disk.texts.rewrites;
    const turn = async () => {
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 0));
    };
    await put('RS1');
    await turn();
    assert.deepEqual(names(), ['RS1'], 'the first change written at once');
    await put('RS2');
    await turn();
    assert.deepEqual(names(), ['RS1', 'RS2'], 'the second too (the burst)');
    await put('RS3');
    await turn();
    assert.deepEqual(names(), ['RS1', 'RS2'], 'the third waits: the burst is spent and the interval is a minute');
    assert.equal(disk.texts.rewrites, atStart + 2);
    await disk.close();
    assert.deepEqual(names(), ['RS1', 'RS2', 'RS3'], 'close() wrote what waited');
  });

  it('a stream of changes is rewritten at most once per interval after the burst', async () => {
    const interval = 40;
    const burst = 4;
    const { disk, put, names } = await open(interval, burst);
    await new Promise((r) => setTimeout(r, interval * (burst + 1))); // the bucket full again
    const atStart = disk.texts.rewrites;
    const started = Date.now();
    for (let i = 1; i <= 60; i++) {
      await put(`RS${i}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const elapsed = Date.now() - started;
    // A full bucket, one more per interval elapsed, and the one the last timer may already have fired.
    const most = burst + Math.ceil(elapsed / interval) + 1;
    const made = disk.texts.rewrites - atStart;
    assert.ok(made <= most, `${made} rewrites for 60 saves in ${elapsed} ms (at most ${most})`);
    await disk.textsWritten();
    assert.equal(names().length, 60);
    await disk.close();
  });

  it('textsWritten() waits for a save still in flight and for its text', async () => {
    const { disk, put, names } = await open();
    const saving = put('RS1'); // not awaited: its journal line is being written
    await disk.textsWritten();
    assert.deepEqual(names(), ['RS1']);
    await saving;
    await disk.close();
  });

  it('a text file that cannot be written fails no save; textsWritten() rejects with why; it is written once it can be', async () => {
    const { disk, put, names } = await open(20);
    // A folder in the file's place: renaming the new version over it fails (EISDIR).
    const file = path.join(dir, 'realserver');
    fs.rmSync(file);
    fs.mkdirSync(path.join(file, 'x'), { recursive: true });
    await put('RS1'); // resolves: the state is durable
    await assert.rejects(disk.textsWritten(), (e: NodeJS.ErrnoException) => e.code === 'EISDIR' || e.code === 'ENOTEMPTY');
    assert.equal(disk.retained().textsBehind, 1);
    fs.rmSync(file, { recursive: true });
    await put('RS2');
    await disk.textsWritten();
    assert.deepEqual(names(), ['RS1', 'RS2']);
    await disk.close();
  });

  it('two stores: a receiver whose text file cannot be written still acknowledges the edit, applied; its text follows once it can be written', async () => {
    const net = await LoopbackStores.open(2, 'text-files-secret-0123456789abcdef', 'texts');
    try {
      const [s1, s2] = [1, 2].map((i) => net.store(i, { seeds: net.range.ips(2), syncIntervalMs: 600_000 }));
      await net.formIdentical([s1, s2]);
      const file = path.join(s2.folder, 'available-od');
      fs.rmSync(file, { force: true });
      fs.mkdirSync(path.join(file, 'x'), { recursive: true });
      const r = await s1.edit('available-od, Add, OD1, 127.0.2.1, RS1');
      assert.deepEqual(r.acked.map((a) => a.peer), ['S2'], JSON.stringify(r));
      assert.deepEqual(s2.get('available-od', 'OD1'), ['OD1', '127.0.2.1', 'RS1'], 'applied on S2');
      await assert.rejects(s2.textsWritten(), (e: NodeJS.ErrnoException) => e.code === 'EISDIR' || e.code === 'ENOTEMPTY');
      assert.equal(s2.retained().textsBehind, 1);
      fs.rmSync(file, { recursive: true });
      await s1.edit('available-od, Add, OD2, 127.0.2.2, RS1');
      await s2.textsWritten();
      assert.deepEqual(parseFile('available-od', fs.readFileSync(file, 'utf8')).map((x) => x[0]), ['OD1', 'OD2']);
    } finally {
      await net.close();
    }
  });
});
