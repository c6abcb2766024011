import { strict as assert } from 'assert';
import { liveManagers, replicatesFor, replicatorAssignment } from '../../lib/recovery/replicator-lock';

const group = ['S1', 'S10', 'S2', 'S3'].map((h, i) => [h, `127.0.1.${i + 1}`, 'RS1', '-']);
const rsFile = [['RS2', '0', '1', 'up'], ['RS1', '0', '1', 'up'], ['RS3', '0', '0', 'down'], ['RS4', '0', '0', 'up']];

describe('recovery replicator lock', () => {
  it('assigns live real servers round robin over live managers in ring order', () => {
    const a = replicatorAssignment({ group, problem: [], realserver: rsFile });
    assert.deepEqual([...a], [['RS1', 'S1'], ['RS2', 'S2'], ['RS4', 'S3']]);
  });

  it('a manager with a failure being handled is not live; recovered and cleared ones are', () => {
    const problem = [['S1', 'S10', 'network', 'recovering', 'S1b', '-'], ['S2', 'S1', 'network', 'recovered', 'S2b', '-'], ['S3', 'S2', 'service', 'cleared', '-', '-']];
    assert.deepEqual(liveManagers(group, problem), ['S2', 'S3', 'S10']);
    assert.deepEqual(replicatesFor('S2', { group, problem, realserver: rsFile }), ['RS1']);
  });

  it('exactly one manager per real server, whatever the order of the records', () => {
    const shuffled = { group: [...group].reverse(), problem: [], realserver: [...rsFile].reverse() };
    const all = ['S1', 'S2', 'S3', 'S10'].flatMap((m) => replicatesFor(m, shuffled));
    assert.deepEqual(all.sort(), ['RS1', 'RS2', 'RS4']);
  });

  it('with more real servers than managers, a manager takes several', () => {
    assert.deepEqual(replicatesFor('S1', { group: [group[0]], problem: [], realserver: rsFile }), ['RS1', 'RS2', 'RS4']);
    assert.equal(replicatorAssignment({ group: [], problem: [], realserver: rsFile }).size, 0);
  });

  it('a fenced member is not a live manager', () => {
    const g = [['S1', '127.0.1.1', 'RS1', '-'], ['S2', '127.0.1.2', 'RS2', '-', 'fenced'], ['S3', '127.0.1.3', 'RS3', '-']];
    assert.deepEqual(liveManagers(g, []), ['S1', 'S3']);
  });
});
