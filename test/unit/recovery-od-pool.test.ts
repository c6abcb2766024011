import { strict as assert } from 'assert';
import { planPool, targetOdCount } from '../../lib/recovery/od-pool';

const group = (n: number, rss: string[]) => Array.from({ length: n }, (_, i) => [`S${i + 1}`, `127.0.1.${i + 1}`, rss[i % rss.length], 'tcp:80']);

describe('recovery OD pool', () => {
  it('target = ceil(VMs / live real servers)', () => {
    assert.equal(targetOdCount(6, 3), 2);
    assert.equal(targetOdCount(6, 2), 3);
    assert.equal(targetOdCount(7, 3), 3);
    assert.equal(targetOdCount(0, 3), 0);
    assert.equal(targetOdCount(5, 0), 0);
    assert.throws(() => targetOdCount(-1, 2), RangeError);
    assert.throws(() => targetOdCount(1.5, 2), RangeError);
  });

  it('a fenced member (replaced by its backup, also in the group) is no VM of the pool', () => {
    const g = [...group(6, ['RS1', 'RS2', 'RS3']), ['S3b', '127.0.2.1', 'RS1', 'tcp:80'], ['S6b', '127.0.2.2', 'RS2', 'tcp:80']];
    g[2] = [...g[2], 'fenced'];
    g[5] = [...g[5], 'fenced'];
    const p = planPool({ group: g, realserver: [['RS1', '0.1', '3', 'up'], ['RS2', '0.1', '3', 'up'], ['RS3', '0.1', '0', 'down']], availableOd: [], reservation: [] });
    assert.equal(p.vmCount, 6);
    assert.equal(p.target, 3);
  });

  it('six VMs on three real servers with one OD each: one clone per server, identities from the reservation file', () => {
    const p = planPool({
      group: group(6, ['RS1', 'RS2', 'RS3']),
      realserver: [['RS1', '0.1', '2', 'up'], ['RS2', '0.1', '2', 'up'], ['RS3', '0.1', '2', 'up']],
      availableOd: [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2'], ['OD3', '127.0.2.3', 'RS3']],
      reservation: [['OD12', '127.0.2.12', 'RS1'], ['OD11', '127.0.2.11', 'RS1'], ['OD21', '127.0.2.21', 'RS2']],
    });
    assert.equal(p.target, 2);
    assert.deepEqual(p.needs.map((n) => [n.realServer, n.have, n.need, n.identities.map((i) => i.od), n.missingIdentities]), [
      ['RS1', 1, 1, ['OD11'], 0],
      ['RS2', 1, 1, ['OD21'], 0],
      ['RS3', 1, 1, [], 1],
    ]);
  });

  it('Fig. 3: a real server down raises the target on the others', () => {
    const p = planPool({
      group: group(6, ['RS1', 'RS2']),
      realserver: [['RS1', '0.1', '3', 'up'], ['RS2', '0.1', '3', 'up'], ['RS3', '0', '0', 'down']],
      availableOd: [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2']],
      reservation: [['OD11', '127.0.2.11', 'RS1'], ['OD12', '127.0.2.12', 'RS1'], ['OD21', '127.0.2.21', 'RS2'], ['OD22', '127.0.2.22', 'RS2'], ['OD31', '127.0.2.31', 'RS3']],
    });
    assert.deepEqual(p.liveRealServers, ['RS1', 'RS2']);
    assert.equal(p.target, 3);
    assert.deepEqual(p.needs.map((n) => [n.realServer, n.need, n.identities.map((i) => i.od)]), [
      ['RS1', 2, ['OD11', 'OD12']],
      ['RS2', 2, ['OD21', 'OD22']],
    ]);
  });

  it('clones under way count as had and their identities are not handed out again; made ones are not free', () => {
    const files = {
      group: group(4, ['RS1']),
      realserver: [['RS1', '0.1', '4', 'up']],
      availableOd: [['OD11', '127.0.2.11', 'RS1']],
      reservation: [['OD11', '127.0.2.11', 'RS1'], ['OD12', '127.0.2.12', 'RS1'], ['OD13', '127.0.2.13', 'RS1']],
    };
    const p = planPool(files, ['OD12']);
    assert.deepEqual([p.needs[0].have, p.needs[0].need, p.needs[0].identities.map((i) => i.od)], [2, 2, ['OD13']]);
    assert.equal(p.needs[0].missingIdentities, 1);
  });

  it('a full pool needs nothing', () => {
    const p = planPool({ group: group(2, ['RS1']), realserver: [['RS1', '0', '2', 'up']], availableOd: [['A', '127.0.2.1', 'RS1'], ['B', '127.0.2.2', 'RS1'], ['C', '127.0.2.3', 'RS1']], reservation: [] });
    assert.equal(p.needs[0].need, 0);
  });
});
