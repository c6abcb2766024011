// The journal's lines are written into a buffer of their exact length (durable-files.ts
// appendJournal, issue 16's allocation per edit): no line may carry a byte of another (a stale
// tail of a longer line before it, or a pool slice's old contents). Lines of falling and rising
// lengths, with multi-byte characters and escaped quotes, must each read back exactly as the
// state they saved, and the file must be exactly their bytes.
import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DurableFiles, WAL_FILE, readJournal } from '../../lib/sem/durable-files';
import { Replica } from '../../lib/sem/replica';

describe('journal lines: each one exactly its own bytes', function () {
  this.timeout(20_000);
  let folder: string;
  beforeEach(() => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'journal-bytes-'));
  });
  afterEach(() => fs.rmSync(folder, { recursive: true, force: true }));

  it('lines of falling and rising lengths (multi-byte, quoted) read back whole, and nothing else is in the file', async () => {
    const replica = new Replica();
    const disk = new DurableFiles(folder, 'S1', replica);
    disk.loadSync();
    await disk.init();
    // Lengths that fall sharply after long lines: a buffer reused or written short would show a
    // stale tail of the line before.
    const lengths = [900, 10, 700, 1, 400, 3, 1200, 0, 50, 2000, 5, 300];
    const values: string[] = [];
    for (let n = 1; n <= lengths.length; n++) {
      // Garbage in the buffer pool between saves: a line built from a slice it did not fill shows it.
      Buffer.allocUnsafe(3000).fill(0x5a);
      const value = `${'é"\\'.repeat(n % 3)}${'x'.repeat(lengths[n - 1])}ü`;
      values.push(value);
      disk.ownSeq = n;
      const lamport = replica.tick();
      const proof = { d: `{"v":1,"type":"diff","n":${n},"pad":"${'q'.repeat(lengths[(n + 5) % lengths.length])}"}`, s: `S1 sig${n}` };
      replica.apply({ file: 'realserver', op: 'Add', record: [`RS${n}`, value, String(n), 'up'], origin: 'S1', seq: n, lamport }, proof);
      await disk.save(['realserver']);
    }
    await disk.close();
    const bytes = fs.readFileSync(path.join(folder, WAL_FILE));
    const text = bytes.toString('utf8');
    assert.ok(!text.includes('Z'), 'no byte of the pool garbage is in the journal');
    const lines = text.split('\n');
    assert.equal(lines.pop(), '', 'the file ends with the last line\'s newline');
    assert.equal(lines.length, lengths.length, 'one line per save, no more');
    let size = 0;
    lines.forEach((line, i) => {
      const json = line.slice(17);
      assert.equal(line.slice(0, 16), createHash('sha256').update(json).digest('hex').slice(0, 16), `line ${i + 1}'s hash is of its own bytes`);
      size += Buffer.byteLength(line) + 1;
      const delta = JSON.parse(json) as { entries: [string, string, string[] | null, number, string][]; ownSeq: number };
      assert.equal(delta.ownSeq, i + 1);
      assert.deepEqual(
        delta.entries.map((e) => e[2]),
        [[`RS${i + 1}`, values[i], String(i + 1), 'up']],
        `line ${i + 1} holds its own save's record and nothing else`,
      );
    });
    assert.equal(size, bytes.length, 'the file is exactly the lines');
    assert.equal(readJournal(text).length, lengths.length, 'every line reads back as intact');
    // And a restart from it has every record.
    const again = new Replica();
    const reload = new DurableFiles(folder, 'S1', again);
    reload.loadSync();
    for (let n = 1; n <= lengths.length; n++) assert.deepEqual(again.get('realserver', `RS${n}`), [`RS${n}`, values[n - 1], String(n), 'up']);
  });
});
