import { strict as assert } from 'assert';
import { NonceCache, ReplayGuard } from '../../lib/sem/replay-guard';
import { Replica } from '../../lib/sem/replica';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { NonceJournal } from '../../lib/sem/nonce-journal';

describe('replay guard', () => {
  it('accepts new numbers in any order, refuses repeats', () => {
    const g = new ReplayGuard();
    for (const n of [1, 3, 2, 5]) {
      assert.equal(g.check('S1', n), null);
      g.accept('S1', n);
    }
    for (const n of [1, 2, 3, 5]) assert.match(g.check('S1', n) ?? '', /replayed/);
    assert.equal(g.check('S1', 4), null);
    assert.equal(g.check('S2', 1), null);
    assert.equal(g.max('S1'), 5);
  });

  it('a raised floor (persisted state, snapshot) refuses everything at or below it', () => {
    const g = new ReplayGuard();
    g.raise('S1', 10);
    g.accept('S1', 11);
    assert.match(g.check('S1', 5) ?? '', /replayed/);
    assert.match(g.check('S1', 11) ?? '', /replayed/);
    assert.equal(g.check('S1', 12), null);
  });

  it('keeps a bounded window', () => {
    const g = new ReplayGuard();
    for (let n = 1; n <= 10_000; n++) g.accept('S1', n);
    assert.match(g.check('S1', 1) ?? '', /replayed/);
    assert.equal(g.check('S1', 10_001), null);
  });

  it('a reset floor (repaired by the origin itself) accepts the origin\'s numbers again', () => {
    const g = new ReplayGuard();
    g.raise('S1', 1e9);
    assert.match(g.check('S1', 12) ?? '', /replayed/);
    g.reset('S1', 11);
    assert.equal(g.check('S1', 12), null);
    assert.equal(g.max('S1'), 11);
  });
});

describe('nonce cache (freshness of sync requests)', () => {
  it('refuses a nonce seen within the window, forgets it after', () => {
    const c = new NonceCache(1000, 3);
    assert.equal(c.admit('a', 0, 0), null);
    assert.match(c.admit('a', 0, 500) ?? '', /replayed request/);
    assert.equal(c.admit('b', 0, 500), null);
    assert.equal(c.admit('c', 0, 500), null);
    assert.match(c.admit('d', 0, 500) ?? '', /too many/);
    assert.equal(c.admit('a', 0, 1001), null, 'expired, and its time check (in the protocol) refuses an old one anyway');
  });
});

describe('replica repair of a poisoned clock', () => {
  it('brings the clock and every version above the ceiling down to it', () => {
    const r = new Replica();
    r.apply({ file: 'available-od', op: 'Add', record: ['OD1', '127.0.2.1', 'RS1'], origin: 'S1', seq: 1, lamport: Number.MAX_SAFE_INTEGER });
    r.apply({ file: 'available-od', op: 'Add', record: ['OD2', '127.0.2.2', 'RS1'], origin: 'S1', seq: 2, lamport: 5 });
    const fixed = r.clampVersions(1000);
    assert.deepEqual(fixed, { entries: 1, highest: Number.MAX_SAFE_INTEGER });
    assert.equal(r.clock, 1000);
    assert.equal(r.tick(), 1001);
    assert.deepEqual(r.clampVersions(2000), { entries: 0, highest: 1001 });
  });
});

describe('admin call nonces on disk (nonce-journal)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-nonce-journal-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const n = (i: number) => i.toString(16).padStart(32, '0');

  it('a nonce recorded by one run is refused by the next; expired and torn lines are dropped at load, the file compacted to 0600', () => {
    const now = 1_000_000;
    const first = new NonceCache(240_000);
    assert.equal(first.admit(n(1), now, now), null);
    const j = new NonceJournal(dir);
    j.record(n(1), first.until(n(1))!);
    j.record(n(2), now - 1);
    fs.appendFileSync(j.file, `${now + 5000} ${n(3).slice(0, 20)}`);
    const next = new NonceCache(240_000);
    assert.equal(new NonceJournal(dir).load(next, now), 1);
    assert.match(next.admit(n(1), now, now) ?? '', /replayed/);
    assert.equal(next.admit(n(2), now, now), null, 'an expired nonce is not kept');
    assert.equal(fs.readFileSync(j.file, 'utf8'), `${now + 240_000} ${n(1)}\n`);
    assert.equal(fs.statSync(j.file).mode & 0o777, 0o600);
    // After the window, nothing is kept.
    assert.equal(new NonceJournal(dir).load(new NonceCache(240_000), now + 240_001), 0);
    assert.equal(fs.readFileSync(j.file, 'utf8'), '');
  });

  it('no file: nothing to load', () => {
    assert.equal(new NonceJournal(dir).load(new NonceCache(1000)), 0);
  });
});
