// Whom a backup catches up with once it is a member (lib/recovery/role-catch-up.ts): the manager
// that called and the acting managers of the other recoveries in hand, serving members only.
import { strict as assert } from 'assert';
import { catchUpPartners, CATCH_UP_WINDOW_MS, recoveriesUnderWay } from '../../lib/recovery/role-catch-up';

const now = Date.parse('2026-12-03T18:00:00.000Z');
const iso = (msAgo: number) => new Date(now - msAgo).toISOString();
const group = [
  ['S1', '127.0.2.1', 'RS1', '-'],
  ['S2', '127.0.2.2', 'RS2', '-', 'fenced'],
  ['S3', '127.0.2.3', 'RS3', '-'],
  ['S4', '127.0.2.4', 'RS1', '-'],
  ['S5', '127.0.2.5', 'RS2', '-', 'fenced'],
  ['S6', '127.0.2.6', 'RS3', '-', 'maintenance'],
  ['S2b', '127.0.2.23', 'RS3', '-'],
];
const names = (x: { hostname: string }[]) => x.map((p) => p.hostname);

describe('recovery role catch-up partners', () => {
  it('the caller, and the manager of every other recovery under way or just done', () => {
    const problems = [
      ['S2', 'S1', 'network', 'recovering', 'S2b', iso(3000)],
      ['S5', 'S4', 'network', 'recovered', 'S5b', iso(3000)],
    ];
    assert.deepEqual(catchUpPartners('S2b', 'S1', group, problems, now), [
      { hostname: 'S1', address: '127.0.2.1' },
      { hostname: 'S4', address: '127.0.2.4' },
    ]);
  });

  it('not: recoveries outside the window or without a time, problems not in hand, itself, fenced members', () => {
    const problems = [
      ['S5', 'S4', 'network', 'recovering', 'S5b', iso(CATCH_UP_WINDOW_MS + 1)],
      ['S7', 'S3', 'network', 'fencing', 'S7b', '-'],
      ['S8', 'S3', 'network', 'detected', '-', iso(1000)],
      ['S9', 'S3', 'network', 'failed', '-', iso(1000)],
      ['S10', 'S2b', 'network', 'recovering', 'S10b', iso(1000)],
      ['S12', 'S2', 'network', 'recovering', 'S12b', iso(1000)],
    ];
    assert.deepEqual(names(catchUpPartners('S2b', 'S1', group, problems, now)), ['S1']);
  });

  it('a caller that is no member of these files, or fenced: nobody', () => {
    assert.deepEqual(catchUpPartners('S2b', 'S9', group, [], now), []);
    assert.deepEqual(catchUpPartners('S2b', 'S5', group, [], now), []);
    // A member in maintenance still gets diffs (a peer): it counts.
    assert.deepEqual(names(catchUpPartners('S2b', 'S6', group, [], now)), ['S6']);
  });

  it('recoveries under way: confirmed, fencing or recovering, detected within the window', () => {
    const problems = [
      ['S5', 'S4', 'network', 'recovering', 'S5b', iso(1000)],
      ['S3', 'S1', 'network', 'fencing', 'S3b', iso(1000)],
      ['S2', 'S1', 'network', 'recovered', 'S2b', iso(1000)],
      ['S6', 'S1', 'network', 'failed', '-', iso(1000)],
      ['S7', 'S1', 'network', 'detected', '-', iso(1000)],
      ['S8', 'S1', 'network', 'confirmed', '-', iso(CATCH_UP_WINDOW_MS + 1)],
      ['S9', 'S1', 'network', 'confirmed', '-', '-'],
    ];
    assert.deepEqual(recoveriesUnderWay(problems, now), ['S3', 'S5']);
    assert.deepEqual(recoveriesUnderWay([], now), []);
  });
});
