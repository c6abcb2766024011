// lib/records/lists.ts: map and copy that build their result by push (one elements kind in every
// V8 tier); the same values as Array.prototype.map and slice, holes read as undefined.
import { strict as assert } from 'assert';
import { copyList, mapList } from '../../lib/records/lists';

describe('lists: map and copy with one elements kind', () => {
  it('mapList gives what map gives, index included; copyList what slice gives, as a new array', () => {
    const xs = ['a', 'b', 'c'];
    assert.deepEqual(mapList(xs, (x, i) => `${x}${i}`), xs.map((x, i) => `${x}${i}`));
    assert.deepEqual(mapList([], (x) => x), []);
    const copy = copyList(xs);
    assert.deepEqual(copy, xs);
    assert.notEqual(copy, xs);
    copy.push('d');
    assert.equal(xs.length, 3);
  });

  it('a holey input: holes read as undefined, the result has none', () => {
    const holey = new Array<string>(3);
    holey[0] = 'x';
    const copy = copyList(holey);
    assert.equal(copy.length, 3);
    assert.ok(1 in copy && 2 in copy);
    assert.deepEqual(mapList(holey, (x) => x ?? '-'), ['x', '-', '-']);
  });
});
