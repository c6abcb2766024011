// The problem lifecycle (lib/records/problem.ts) and the one placement decider
// (lib/recovery/placement-decider.ts) the starter and the placer share.
import { strict as assert } from 'assert';
import { PROBLEM_STATUSES } from '../../lib/records/files';
import { ACTIVE_FAILURE_STATUSES, canTransition, checkTransition, FINAL_STATUSES, HANDLING_STATUSES, IN_HAND_STATUSES, OPEN_STATUSES, TransitionError } from '../../lib/records/problem';
import { decidePlacement, failuresInHand, jointOds, OPEN_FAILURE_FRESH_MS } from '../../lib/recovery/placement-decider';
import { PlacementError } from '../../lib/recovery/placement';
import type { RecordFields } from '../../lib/records/files';

describe('recovery problem lifecycle', () => {
  it('walks the recovery path and the re-examination path', () => {
    const path = ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering', 'recovered'] as const;
    for (let i = 1; i < path.length; i++) assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
    assert.ok(canTransition('reexamining', 'cleared'));
    for (const from of ['confirmed', 'fencing', 'recovering'] as const) assert.ok(canTransition(from, 'failed'), `${from} -> failed`);
  });

  it('refuses going back within an episode, and lets a final status start a new one', () => {
    assert.ok(!canTransition('recovering', 'fencing'));
    assert.ok(!canTransition('recovered', 'failed'));
    assert.ok(!canTransition('failed', 'recovered'));
    assert.ok(!canTransition('cleared', 'recovering'));
    assert.ok(canTransition('recovered', 'detected'));
    assert.ok(canTransition('failed', 'fencing'), 'a recovery retried by hand');
    assert.ok(canTransition(undefined, 'failed') && canTransition('fencing', 'fencing'));
    assert.throws(() => checkTransition('recovered', 'failed'), TransitionError);
  });

  it('every status of the schema has its moves; the groups are made of schema statuses', () => {
    for (const s of PROBLEM_STATUSES) assert.doesNotThrow(() => canTransition(s, s));
    for (const group of [HANDLING_STATUSES, ACTIVE_FAILURE_STATUSES, IN_HAND_STATUSES, OPEN_STATUSES, FINAL_STATUSES]) {
      for (const s of group) assert.ok((PROBLEM_STATUSES as readonly string[]).includes(s), s);
    }
    assert.ok(!HANDLING_STATUSES.includes('detected') && HANDLING_STATUSES.includes('recovered'));
    assert.ok(!ACTIVE_FAILURE_STATUSES.includes('recovered'));
  });
});

describe('recovery placement decider', () => {
  const files = (problem: RecordFields[], ods: RecordFields[] = [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2']]) => {
    const f: Record<string, RecordFields[]> = {
      group: [['S1', 'a', 'RS1', '-'], ['S2', 'b', 'RS2', '-'], ['S3', 'c', 'RS3', '-'], ['S6', 'd', 'RS3', '-']],
      problem,
      realserver: [['RS1', '0.40', '2', 'up'], ['RS2', '0.40', '2', 'up'], ['RS3', '0.40', '2', 'down']],
      'available-od': ods,
    };
    return { records: (n: 'group' | 'problem' | 'realserver' | 'available-od') => f[n] };
  };
  const now = '2026-01-01T00:00:00Z';

  it('a failure alone takes the best; with the failures in hand, the joint placement', () => {
    assert.equal(decidePlacement(files([]), 'S3', 'RS3').od, 'OD1');
    const two = files([['S3', 'S2', 'network', 'confirmed', '-', now], ['S6', 'S5', 'network', 'fencing', '-', now]]);
    assert.deepEqual(failuresInHand(two, 'S6'), [{ target: 'S3', realServer: 'RS3' }]);
    assert.equal(decidePlacement(two, 'S3', 'RS3').od, 'OD1');
    assert.equal(decidePlacement(two, 'S6', 'RS3').od, 'OD2');
    assert.deepEqual([...jointOds(two, 'S6', 'RS3')].sort(), ['OD1', 'OD2']);
    // Recovered and failed ones are no longer in hand.
    assert.equal(decidePlacement(files([['S3', 'S2', 'network', 'recovered', 'S3b', now]]), 'S6', 'RS3').od, 'OD1');
  });

  it('a failure still under re-examination counts while fresh: two found together take different ODs; cleared or stale ones do not count', () => {
    const at = Date.parse(now);
    // S3's manager is still re-examining when S6's confirms (and the other way round): each places
    // both, and they agree, so neither loses a resume race for OD1.
    const together = files([['S3', 'S2', 'network', 'reexamining', '-', now], ['S6', 'S5', 'network', 'confirmed', '-', now]]);
    assert.equal(decidePlacement(together, 'S6', 'RS3', { now: at + 2000 }).od, 'OD2');
    assert.equal(decidePlacement(files([['S3', 'S2', 'network', 'confirmed', '-', now], ['S6', 'S5', 'network', 'detected', '-', now]]), 'S3', 'RS3', { now: at + 2000 }).od, 'OD1');
    assert.deepEqual(failuresInHand(together, 'S6', at + 2000), [{ target: 'S3', realServer: 'RS3' }]);
    // Left behind by a manager that died: no longer counted after OPEN_FAILURE_FRESH_MS.
    assert.equal(decidePlacement(together, 'S6', 'RS3', { now: at + OPEN_FAILURE_FRESH_MS + 1 }).od, 'OD1');
    // Re-examined and found well: not counted.
    assert.equal(decidePlacement(files([['S3', 'S2', 'network', 'cleared', '-', now]]), 'S6', 'RS3', { now: at + 2000 }).od, 'OD1');
  });

  it('nothing fits: a PlacementError with every candidate and why', () => {
    assert.throws(() => decidePlacement(files([], []), 'S3', 'RS3'), (e: unknown) => e instanceof PlacementError && e.candidates.length === 3 && /no available OD/.test(e.message));
  });
});
