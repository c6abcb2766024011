// The SEM log's memory is bounded (issue 16): lines written faster than the disk takes them wait in
// memory only up to a cap; the rest are dropped, counted, and the count is logged once the buffer
// has drained.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SemLog } from '../../lib/sem/sem-log';

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
});
