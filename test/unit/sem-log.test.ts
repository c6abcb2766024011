// The SEM log's memory is bounded (issue 16): lines written faster than the disk takes them wait in
// memory only up to a cap; the rest are dropped, counted, and the count is logged once the buffer
// has drained.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FLUSH_BYTES, FLUSH_MS, SemLog } from '../../lib/sem/sem-log';

describe('SEM log', () => {
  it('keeps at most its cap waiting for the disk, then says how many lines it dropped', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-semlog-'));
    const log = new SemLog(dir, 10 * 1024 * 1024, 4096);
    try {
      // Synchronous writes: the stream cannot flush in between, so the buffer only grows.
      for (let i = 0; i < 2000; i++) log.write('applied', `realserver, Add, RS${i}, 0.1, 1, up`, { origin: 'S1', seq: i + 1 });
      const r = log.retained();
      assert.ok(r.bufferedBytes <= 4096 + 200, `buffered ${r.bufferedBytes}`);
      assert.ok(r.dropped > 1000, `dropped ${r.dropped}`);
      const deadline = Date.now() + 10_000;
      while (log.retained().bufferedBytes > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      log.write('applied', 'realserver, Add, RSX, 0.1, 1, up');
      await log.close();
      const text = fs.readFileSync(path.join(dir, 'sem.log'), 'utf8');
      assert.match(text, new RegExp(`dropped ${r.dropped} log lines`));
      assert.match(text, /RSX/);
    } finally {
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes one line per event: the diff on one line, then its non-empty fields with spaces made underscores', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-semlog-'));
    const log = new SemLog(dir);
    try {
      log.write('applied', 'realserver, Add, RS1, 0.1, 1, up', { origin: 'S1', seq: 3, lamport: undefined, local: 1 });
      log.write('sent', 'group, Mod,\nS2 ...', { acked: 'S2:1.0ms,S3:2.0ms', failed: '' });
      log.write('refused', 'a reason\r\nwith two lines', { from: '127.0.0.9 and more' });
      log.write('synced', 'nothing else');
      await log.close();
      const lines = fs.readFileSync(path.join(dir, 'sem.log'), 'utf8').split('\n').filter(Boolean);
      const rest = lines.map((l) => {
        assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
        return l.slice(25);
      });
      assert.deepEqual(rest, [
        'applied realserver, Add, RS1, 0.1, 1, up | origin=S1 seq=3 local=1',
        'sent group, Mod, S2 ... | acked=S2:1.0ms,S3:2.0ms',
        'refused a reason with two lines | from=127.0.0.9_and_more',
        'synced nothing else',
      ]);
    } finally {
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hands the lines of many turns to the disk in one write per interval, in order, each with its own time', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-semlog-'));
    const log = new SemLog(dir);
    const file = path.join(dir, 'sem.log');
    try {
      const t0 = Date.now();
      // Ten diffs, each in a turn of its own (as a receiver sees them): two lines each.
      for (let i = 0; i < 10; i++) {
        log.write('received', `realserver, Mod, RS1, 0.${i}, 1, up`, { seq: i + 1 });
        await new Promise((r) => setImmediate(r));
        log.write('applied', `realserver, Mod, RS1, 0.${i}, 1, up`, { seq: i + 1 });
        await new Promise((r) => setImmediate(r));
      }
      // Within the interval nothing was written yet (the loop above takes far less than FLUSH_MS
      // on any machine; where it did not, the count below says so instead of failing wrongly).
      const early = Date.now() - t0 < FLUSH_MS / 2;
      if (early) assert.equal(log.writes, 0, 'no write within the interval');
      const deadline = Date.now() + 10_000;
      while (log.writes === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (early) assert.equal(log.writes, 1, 'twenty lines of ten turns: one write');
      while (log.retained().bufferedBytes > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
      assert.equal(lines.length, 20);
      lines.forEach((l, i) => assert.match(l, new RegExp(` ${i % 2 ? 'applied' : 'received'} realserver, Mod, RS1, 0\\.${Math.floor(i / 2)}, 1, up \\| seq=${Math.floor(i / 2) + 1}$`)));
      // A burst past FLUSH_BYTES is written at once, without waiting for the interval.
      const before = log.writes;
      const long = 'x'.repeat(1000);
      for (let i = 0; i * 1000 < FLUSH_BYTES + 1000; i++) log.write('refused', long);
      assert.equal(log.writes, before + 1, 'written once FLUSH_BYTES waited');
      // close() writes what still waits.
      log.write('synced', 'the last line');
      await log.close();
      assert.match(fs.readFileSync(file, 'utf8'), /synced the last line\n$/);
    } finally {
      await log.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
