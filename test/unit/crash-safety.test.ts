// A writer killed with SIGKILL at random instants during 500 writes never leaves a partial or
// corrupt file: after every kill the state and every text file parse whole, and a restart
// continues from the last completed write.
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FILE_NAMES, parseFile } from '../../lib/records/files';
import { DurableFiles, STATE_FILE, WAL_FILE, readJournal } from '../../lib/sem/durable-files';
import { Replica } from '../../lib/sem/replica';

const TOTAL = 500;
const writer = path.join(__dirname, '..', 'fixtures', 'crash-writer.js');

/** Deterministic pseudo-random instants (a fixed-seed LCG): the run is repeatable. */
function lcg(seed: number) {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

/** Run the writer; once it has reported `killAfterWrites` writes, kill it `killAfterMs` later (the
 * count, not the time alone, sets how far a run gets: a fast disk must not finish in a few runs). */
function runUntilKilled(folder: string, killAfterWrites: number, killAfterMs: number): Promise<{ lastDone: number; finished: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writer, folder, String(TOTAL)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d) => {
      out += d;
      if (out.split('\n').length > killAfterWrites) timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d) => (err += d));
    const deadline = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(deadline);
      if (code && code !== 0) return reject(new Error(`writer failed: ${err}`));
      const done = out.split('\n').filter(Boolean).map(Number);
      resolve({ lastDone: done.length ? done[done.length - 1] : 0, finished: code === 0 && signal === null });
    });
  });
}

/** What a restart would load: the checkpoint plus the journal's intact lines. */
function loadState(folder: string): { ownSeq: number; replica: Replica } {
  const replica = new Replica();
  const disk = new DurableFiles(folder, 'S1', replica);
  disk.loadSync();
  return { ownSeq: disk.ownSeq, replica };
}

function checkFolder(folder: string, atLeast: number): number {
  // The checkpoint is always whole JSON (it is only ever replaced by rename).
  const state = JSON.parse(fs.readFileSync(path.join(folder, STATE_FILE), 'utf8'));
  assert.equal(state.v, 1);
  // The journal: every line intact but possibly a torn last one (never acknowledged).
  const walPath = path.join(folder, WAL_FILE);
  if (fs.existsSync(walPath)) {
    const lines = fs.readFileSync(walPath, 'utf8').split('\n').filter(Boolean);
    const intact = readJournal(lines.join('\n')).length;
    assert.ok(intact >= lines.length - 1, `journal has ${lines.length - intact} bad lines before its end`);
  }
  // A completed write is never lost; one in flight may or may not have landed.
  const loaded = loadState(folder);
  assert.ok(loaded.ownSeq >= atLeast, `a restart would load write ${loaded.ownSeq}, expected at least ${atLeast}`);
  for (const f of FILE_NAMES) {
    const p = path.join(folder, f);
    if (!fs.existsSync(p)) continue;
    const text = fs.readFileSync(p, 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), `${f} ends mid-line`);
    parseFile(f, text); // throws on any partial record
  }
  // A kill during the very first save may leave a text file not yet written (never a partial one).
  const read = (f: 'realserver' | 'group') =>
    fs.existsSync(path.join(folder, f)) ? parseFile(f, fs.readFileSync(path.join(folder, f), 'utf8')) : null;
  const rs = read('realserver');
  const group = read('group');
  if (!rs || !group) return loaded.ownSeq;
  // The text files follow the state within an interval (lib/sem/text-files.ts): they may be behind
  // it by the saves of the last interval, never ahead of it by more than the save in flight (its
  // change applied in memory and written out while its journal line was not yet durable).
  const n = loaded.ownSeq;
  if (rs.length) assert.ok(Number(rs[0][1]) <= n + 1, `realserver shows write ${rs[0][1]}, state ${n}`);
  assert.ok(group.length <= n + 1, `group has ${group.length} records, state ${n}`);
  return n;
}

describe('crash safety of durable writes', function () {
  this.timeout(240_000);
  let folder: string;
  before(() => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-crash-'));
  });
  after(() => fs.rmSync(folder, { recursive: true, force: true }));

  it(`SIGKILL at random instants during ${TOTAL} writes never leaves a partial or corrupt file`, async () => {
    const rand = lcg(20261126);
    let done = 0;
    let kills = 0;
    for (let round = 0; round < 200 && done < TOTAL; round++) {
      const r = await runUntilKilled(folder, 1 + Math.floor(rand() * 60), Math.floor(rand() * 5));
      if (!r.finished) kills++;
      if (fs.existsSync(path.join(folder, STATE_FILE))) done = Math.max(done, checkFolder(folder, Math.max(done, r.lastDone)));
      if (r.finished) break;
    }
    assert.equal(done, TOTAL, 'the writer got to the end');
    assert.ok(kills >= 5, `only ${kills} kills happened mid-run`);
    // A restart cleans temp files and makes the text files match the state exactly.
    const replica = new Replica();
    const disk = new DurableFiles(folder, 'S1', replica);
    disk.loadSync();
    await disk.init();
    assert.deepEqual(fs.readdirSync(folder).filter((n) => n.includes('.tmp-')), []);
    assert.equal(parseFile('group', fs.readFileSync(path.join(folder, 'group'), 'utf8')).length, TOTAL);
    assert.equal(fs.statSync(path.join(folder, WAL_FILE)).size, 0, 'the journal was folded into the checkpoint');
    await disk.close();
  });
});
