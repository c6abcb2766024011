// Which targets a manager watches, from group + operation records.
import * as assert from 'assert';
import { managersOf, ringView } from '../../lib/monitor/ring-view';

const member = (n: number, services = '-') => [`S${n}`, `127.0.1.${n}`, n <= 3 ? 'RS1' : 'RS2', services];
/** The ring of DESIGN.md written out by hand for the test: target i watched by i-1 (P1) and i+1 (P2). */
function ring(names: string[]): string[][] {
  const n = names.length;
  if (n < 2) return [];
  if (n === 2) return [['P1', names[0], names[1]], ['P1', names[1], names[0]]];
  return names.flatMap((t, i) => [
    ['P1', names[(i - 1 + n) % n], t],
    ['P2', names[(i + 1) % n], t],
  ]);
}

describe('monitor: ring view', () => {
  const names = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6'];
  const group = [1, 2, 3, 4, 5, 6].map((n) => member(n, n === 2 ? 'tcp:80 http:8080/health' : '-'));
  const op = ring(names);

  it('in a ring of six, S1 watches S2 as P1 and S6 as P2, with their other managers', () => {
    const v = ringView('S1', group, op);
    assert.deepStrictEqual(
      v.map((w) => [w.target.hostname, w.priority, w.other?.hostname, w.other?.priority]),
      [
        ['S2', 'P1', 'S3', 'P2'],
        ['S6', 'P2', 'S5', 'P1'],
      ],
    );
    const s2 = v[0].target;
    assert.deepStrictEqual(s2, { hostname: 'S2', address: '127.0.1.2', realServer: 'RS1', services: ['tcp:80', 'http:8080/health'] });
    assert.deepStrictEqual(managersOf('S2', op), { P1: 'S1', P2: 'S3' });
  });

  it('two members watch each other as P1, with no other manager', () => {
    const g = group.slice(0, 2);
    const v = ringView('S2', g, ring(['S1', 'S2']));
    assert.deepStrictEqual(v.map((w) => [w.target.hostname, w.priority, w.other]), [['S1', 'P1', undefined]]);
  });

  it('one member watches nobody, and a VM not in the group watches nobody', () => {
    assert.deepStrictEqual(ringView('S1', group.slice(0, 1), ring(['S1'])), []);
    assert.deepStrictEqual(ringView('S9', group, op), []);
  });

  it('an operation line naming a target that left the group is ignored', () => {
    const g = group.filter((r) => r[0] !== 'S2');
    assert.deepStrictEqual(
      ringView('S1', g, op).map((w) => w.target.hostname),
      ['S6'],
    );
  });
});
