// FileReplacer (lib/sem/atomic-write.ts): a text file is replaced atomically on the calling thread,
// but the replaced version is freed in libuv's pool, not inside the rename (on an ext4 with
// `discard` and no journal, freeing it is a synchronous TRIM: docs/performance.md, fifth pass).
// Checked: the old version stays open until the pool closes it (with the pool held busy, it is
// still open after replace returns), also for the version a previous process left; one close at a
// time, at most 32 waiting; close() leaves
// no descriptor behind; a reader in another process never sees a torn file.
import { strict as assert } from 'assert';
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileReplacer } from '../../lib/sem/atomic-write';
import { DurableFiles } from '../../lib/sem/durable-files';
import { Replica } from '../../lib/sem/replica';

const POOL = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

/** Descriptors of this process whose target is in `dir` (deleted ones show " (deleted)"). */
function openIn(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      /* closed meanwhile (readdir's own descriptor) */
    }
  }
  return out;
}

/** Keep every thread of libuv's pool busy (each blocked opening a FIFO without a writer) until the
 * returned function is called; it resolves once they are free again. */
async function holdPool(dir: string): Promise<() => Promise<void>> {
  const fifo = path.join(dir, 'pool.fifo');
  execFileSync('mkfifo', [fifo]);
  const readers = Array.from({ length: POOL }, () => fs.promises.open(fifo, 'r'));
  return async () => {
    // A write end opens (non-blocking) only once a reader waits: poll with a deadline.
    const deadline = Date.now() + 10_000;
    let w: number | undefined;
    while (w === undefined) {
      try {
        w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    // Every reader opens while the write end is open (each blocked open is woken by it).
    const handles = await Promise.all(readers);
    fs.closeSync(w);
    await Promise.all(handles.map((h) => h.close()));
    fs.rmSync(fifo);
  };
}

describe('FileReplacer: atomic text files, old versions freed in the pool', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'file-replacer-')));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('does not free the replaced version in the rename: it stays open until the pool closes it', async () => {
    const file = path.join(dir, 'realserver');
    const r = new FileReplacer();
    r.replace(file, 'one\n');
    assert.deepEqual(openIn(dir), [file], 'the current version is held');
    const release = await holdPool(dir);
    try {
      r.replace(file, 'two\n');
      assert.equal(fs.readFileSync(file, 'utf8'), 'two\n');
      // The first version lost its name in the rename, but is still open: not freed on this thread.
      assert.deepEqual(openIn(dir).filter((t) => t.endsWith('pool.fifo') === false).sort(), [file, `${file} (deleted)`]);
      assert.equal(r.pendingCloses, 1);
    } finally {
      await release();
    }
    await r.close();
    assert.deepEqual(openIn(dir), [], 'close() leaves no descriptor');
    assert.equal(fs.readFileSync(file, 'utf8'), 'two\n');
    assert.deepEqual(fs.readdirSync(dir), ['realserver'], 'no temp file left');
  });

  it('also frees the version a previous process left in the pool, not in the first rename', async () => {
    const file = path.join(dir, 'group');
    fs.writeFileSync(file, 'left by a previous process\n');
    const r = new FileReplacer();
    const release = await holdPool(dir);
    try {
      r.replace(file, 'new\n');
      assert.deepEqual(openIn(dir).filter((t) => !t.endsWith('pool.fifo')).sort(), [file, `${file} (deleted)`]);
    } finally {
      await release();
    }
    await r.close();
    assert.deepEqual(openIn(dir), []);
  });

  it('closes one old version at a time in the pool, and never holds more than 32 waiting', async () => {
    const file = path.join(dir, 'vmstatus');
    const r = new FileReplacer();
    r.replace(file, 'v0\n');
    const release = await holdPool(dir);
    try {
      for (let k = 1; k <= 40; k++) r.replace(file, `v${k}\n`);
      // One close queued in the pool, 32 waiting; the 7 oldest were closed on this thread.
      assert.equal(r.pendingCloses, 33);
      assert.equal(openIn(dir).filter((t) => t.endsWith(' (deleted)')).length, 33);
    } finally {
      await release();
    }
    await r.close();
    assert.equal(r.pendingCloses, 0);
    assert.deepEqual(openIn(dir), []);
    assert.equal(fs.readFileSync(file, 'utf8'), 'v40\n');
  });

  it('a failed replacement throws and leaves the file and what is held as they were', async () => {
    const file = path.join(dir, 'missing-folder', 'x');
    const r = new FileReplacer();
    assert.throws(() => r.replace(file, 'x'), /ENOENT/);
    const ok = path.join(dir, 'ok');
    r.replace(ok, 'a');
    assert.throws(() => r.replace(path.join(dir, 'ok', 'not-a-folder'), 'b'), /ENOTDIR/);
    assert.equal(fs.readFileSync(ok, 'utf8'), 'a');
    // A rename that fails (a folder in the file's place) leaves no temp file behind.
    fs.mkdirSync(path.join(dir, 'busy', 'x'), { recursive: true });
    assert.throws(() => r.replace(path.join(dir, 'busy'), 'c'), /EISDIR|ENOTEMPTY/);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
    await r.close();
    assert.deepEqual(openIn(dir), []);
  });

  it('a reader in another process never sees a torn file while it is replaced 400 times', async function () {
    this.timeout(60_000);
    const file = path.join(dir, 'vmstatus');
    // Version k: its number, 20-60 KiB of one letter, and its number again: a torn read breaks it.
    const version = (k: number) => `${k}\n${String.fromCharCode(97 + (k % 26)).repeat(20_000 + (k % 5) * 10_000)}\n${k}\n`;
    const r = new FileReplacer();
    r.replace(file, version(0));
    const reader = spawn(process.execPath, ['-e', `
      const fs = require('fs');
      let reads = 0, bad = 0, last = '';
      const end = () => { process.stdout.write(JSON.stringify({ reads, bad, last })); process.exit(0); };
      process.on('SIGTERM', end);
      const check = () => {
        for (let i = 0; i < 50; i++) {
          const t = fs.readFileSync(${JSON.stringify(file)}, 'utf8');
          const lines = t.split('\\n');
          const k = Number(lines[0]);
          const whole = lines.length === 4 && lines[2] === lines[0] && lines[3] === '' &&
            lines[1].length === 20000 + (k % 5) * 10000 && lines[1] === String.fromCharCode(97 + (k % 26)).repeat(lines[1].length);
          reads++; if (!whole) { bad++; last = t.slice(0, 40); }
        }
        setImmediate(check);
      };
      process.stdout.write('ready\\n');
      check();
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.on('data', (d) => (out += d));
    const exited = new Promise<void>((resolve) => reader.once('exit', () => resolve()));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('ready')) {
        assert.ok(Date.now() < deadline, 'the reader started');
        await new Promise((res) => setTimeout(res, 10));
      }
      for (let k = 1; k <= 400; k++) {
        r.replace(file, version(k));
        if (k % 20 === 0) await new Promise((res) => setTimeout(res, 1)); // let the pool's closes run
      }
    } finally {
      reader.kill('SIGTERM');
      await exited;
    }
    await r.close();
    const result = JSON.parse(out.slice(out.indexOf('{')));
    assert.ok(result.reads > 0, 'the reader read');
    assert.equal(result.bad, 0, `torn read: ${result.last}`);
    assert.equal(fs.readFileSync(file, 'utf8'), version(400));
    assert.deepEqual(fs.readdirSync(dir), ['vmstatus']);
  });

  it('DurableFiles.close() leaves no descriptor open in its folder', async () => {
    const files = new DurableFiles(dir, 'vm1', new Replica());
    files.loadSync();
    await files.init();
    await files.save(['realserver']);
    assert.ok(openIn(dir).length > 0, 'text files are held while open');
    await files.close();
    assert.deepEqual(openIn(dir), []);
  });
});
