import { strict as assert } from 'assert';
import { ReplayGuard } from '../../lib/sem/replay-guard';

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
});
