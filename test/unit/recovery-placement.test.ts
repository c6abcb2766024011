import { strict as assert } from 'assert';
import { odRows, place, placeMany, PlacementError, realServerRows, scoreCandidates } from '../../lib/recovery/placement';

const rs = (rows: string[][]) => realServerRows(rows);
const ods = (rows: string[][]) => odRows(rows);

describe('recovery placement', () => {
  const three = rs([
    ['RS1', '0.50', '2', 'up'],
    ['RS2', '0.20', '2', 'up'],
    ['RS3', '0.20', '1', 'up'],
  ]);
  const pool = ods([
    ['OD1a', '127.0.2.1', 'RS1'],
    ['OD2a', '127.0.2.2', 'RS2'],
    ['OD3b', '127.0.2.4', 'RS3'],
    ['OD3a', '127.0.2.3', 'RS3'],
  ]);

  it('takes the lowest load, then the fewest VMs, and the first OD in natural order', () => {
    const p = place(three, pool);
    assert.equal(p.realServer, 'RS3');
    assert.equal(p.od, 'OD3a');
    assert.equal(p.address, '127.0.2.3');
    assert.deepEqual(p.candidates.map((c) => [c.realServer, c.rank]), [['RS3', 1], ['RS2', 2], ['RS1', 3]]);
  });

  it('breaks a full tie by name, naturally (RS2 before RS10)', () => {
    const p = place(rs([['RS10', '0.1', '1', 'up'], ['RS2', '0.1', '1', 'up']]), ods([['A', '127.0.2.1', 'RS10'], ['B', '127.0.2.2', 'RS2']]));
    assert.equal(p.realServer, 'RS2');
  });

  it('skips real servers that are down or without an OD, and says why', () => {
    const c = scoreCandidates(rs([['RS1', '0', '0', 'down'], ['RS2', '0.1', '0', 'up'], ['RS3', '0.9', '5', 'up']]), ods([['X', '127.0.2.9', 'RS3']]));
    assert.deepEqual(c.map((x) => [x.realServer, x.eligible, x.reason]), [
      ['RS3', true, undefined],
      ['RS1', false, 'state down'],
      ['RS2', false, 'no available OD'],
    ]);
  });

  it('throws a PlacementError with the candidates when nothing fits', () => {
    assert.throws(
      () => place(rs([['RS1', '0', '0', 'down']]), ods([['X', '127.0.2.9', 'RS1']])),
      (e: unknown) => e instanceof PlacementError && /RS1 state down/.test(e.message) && e.candidates.length === 1,
    );
    assert.throws(() => place([], []), /realserver file is empty/);
  });

  it('excludes ODs (a lost race) and real servers', () => {
    assert.equal(place(three, pool, { excludeOds: ['OD3a'] }).od, 'OD3b');
    assert.equal(place(three, pool, { excludeOds: ['OD3a', 'OD3b'] }).realServer, 'RS2');
    assert.equal(place(three, pool, { excludeRealServers: ['RS3'] }).realServer, 'RS2');
  });

  it('Fig. 3: RS3 fails, its two VMs spread: S3b to RS1 and S6b to RS2', () => {
    const after = rs([
      ['RS1', '0.30', '2', 'up'],
      ['RS2', '0.30', '2', 'up'],
      ['RS3', '0', '0', 'down'],
    ]);
    const p = ods([
      ['OD1', '127.0.2.1', 'RS1'],
      ['OD2', '127.0.2.2', 'RS2'],
      ['OD3', '127.0.2.3', 'RS3'],
    ]);
    const m = placeMany([{ target: 'S6', realServer: 'RS3' }, { target: 'S3', realServer: 'RS3' }], after, p);
    assert.deepEqual(m.placements.map((x) => [x.target, x.placement?.realServer, x.placement?.od]), [
      ['S3', 'RS1', 'OD1'],
      ['S6', 'RS2', 'OD2'],
    ]);
  });

  it('placeMany never gives one OD twice and reports the failures it cannot place', () => {
    const m = placeMany(
      [{ target: 'S1', realServer: 'RS9' }, { target: 'S2', realServer: 'RS9' }, { target: 'S3', realServer: 'RS9' }],
      rs([['RS1', '0', '0', 'up']]),
      ods([['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS1']]),
    );
    assert.deepEqual(m.placements.map((x) => x.placement?.od ?? 'none'), ['OD1', 'OD2', 'none']);
    assert.match(m.placements[2].error!, /no available OD/);
  });
});
