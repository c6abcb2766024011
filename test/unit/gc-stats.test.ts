// bench/gc-stats.ts: the preload's lines read back, pauses inside the measured window only, and
// a sample counted as hit when a pause of the sender or of its own receiver overlaps it.
import { strict as assert } from 'assert';
import { gcFigures, parseGcLines } from '../../bench/gc-stats';

describe('gc-stats: the VMs\' collections over bench:sem\'s measured window', () => {
  it('reads the preload\'s lines and nothing else of a VM\'s stdout', () => {
    const gcs = parseGcLines('13 Dec 03:58:00 - [info] Started flows\ngc 1000.50 4.250 minor\ngc 1200 30.1 major\ngc nonsense\n');
    assert.deepEqual(gcs, [
      { start: 1000.5, ms: 4.25, kind: 'minor' },
      { start: 1200, ms: 30.1, kind: 'major' },
    ]);
  });

  it('counts pauses in the window and the samples (and tail samples) each one overlapped', () => {
    const byVm = {
      S1: parseGcLines('gc 900 5 minor\ngc 1002 8 minor\ngc 1100 2 minor\ngc 2000 9 minor'),
      S3: parseGcLines('gc 1051 6 minor\ngc 1060 1 incremental'),
      S4: [],
    };
    const samples = [
      { peer: 'S3', start: 1000, ms: 12, value: 11 }, // S1's 1002-1010 pause inside
      { peer: 'S4', start: 1000, ms: 12.5, value: 11.5 }, // the same pause
      { peer: 'S3', start: 1050, ms: 9, value: 8 }, // its own receiver's pause
      { peer: 'S4', start: 1050, ms: 3, value: 2 }, // S3's pause is not S4's
      { peer: 'S3', start: 1103, ms: 3, value: 2 }, // S1's 1100-1102 pause ended before
    ];
    const f = gcFigures('S1', byVm, [1000, 1106], samples, 8);
    assert.deepEqual(f.sender, { scavenges: 2, scavenge_p50_ms: 2, scavenge_max_ms: 8, other: 0, other_max_ms: 0 });
    assert.deepEqual(f.receivers, { scavenges: 1, scavenge_p50_ms: 6, scavenge_max_ms: 6, other: 1, other_max_ms: 1 });
    assert.deepEqual(f.scavenges_per_receiver, { S3: 1, S4: 0 });
    assert.deepEqual(f.samples_hit, { by_sender: 2, by_own_receiver: 1 });
    assert.equal(f.tail_samples, 3);
    assert.deepEqual(f.tail_hit, { by_sender: 2, by_own_receiver: 1, by_none: 0 });
    assert.deepEqual(f.hit_median_ms, { by_sender: 11, by_none: 2 });
    assert.equal(f.p99_without_hit_ms, 2);
  });
});
