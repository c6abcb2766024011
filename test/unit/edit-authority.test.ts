// The edit authority rules (lib/sem/edit-authority.ts): who may change which record.
import { strict as assert } from 'assert';
import type { RecordFields } from '../../lib/records/files';
import { authorityRefusal, AuthorityView, mergeRefusal } from '../../lib/sem/edit-authority';

const NOW = Date.parse('2026-12-03T03:00:00Z');
const iso = (msAgo: number) => new Date(NOW - msAgo).toISOString();
const group: RecordFields[] = [
  ['S1', '127.0.1.1', 'RS1', '-'],
  ['S2', '127.0.1.2', 'RS2', '-'],
  ['S3', '127.0.1.3', 'RS3', '-'],
  ['S4', '127.0.1.4', 'RS1', '-'],
];
// Ring: S2 is watched by S1 (P1) and S3 (P2).
function view(problem: RecordFields[] = [], g = group): AuthorityView {
  const files: Record<string, RecordFields[]> = { group: g, problem };
  return { get: (f, k) => files[f].find((r) => r[0] === k), records: (f) => files[f] };
}
const delS2 = { file: 'group' as const, op: 'Del' as const, record: group[1] };

describe('edit authority', () => {
  it('G1: a VM edits its own group record', () => {
    assert.equal(authorityRefusal('S2', { file: 'group', op: 'Mod', before: group[1], record: ['S2', '127.0.1.2', 'RS2', 'tcp:80'] }, view(), NOW), null);
    assert.equal(authorityRefusal('S9', { file: 'group', op: 'Add', record: ['S9', '127.0.1.9', 'RS1', '-'] }, view(), NOW), null);
  });

  it('G2: another VM\'s group record only by its manager, with a fresh claimed problem detected by a manager', () => {
    assert.match(authorityRefusal('S4', delS2, view(), NOW) ?? '', /G2\): no problem record/);
    const claim = ['S2', 'S1', 'network', 'confirmed', '-', iso(5000)];
    assert.equal(authorityRefusal('S1', delS2, view([claim]), NOW), null);
    assert.equal(authorityRefusal('S3', delS2, view([claim]), NOW), null, 'P2 handles when P1 is gone');
    assert.match(authorityRefusal('S4', delS2, view([claim]), NOW) ?? '', /neither a manager of S2 nor the detector/);
    assert.match(authorityRefusal('S4', delS2, view([['S2', 'S4', 'network', 'confirmed', '-', iso(5000)]]), NOW) ?? '', /not by one of its managers/);
    assert.match(authorityRefusal('S1', delS2, view([['S2', 'S1', 'network', 'detected', '-', iso(5000)]]), NOW) ?? '', /only detected/);
    assert.match(authorityRefusal('S1', delS2, view([['S2', 'S1', 'network', 'confirmed', '-', '-']]), NOW) ?? '', /carries no date/);
    assert.match(authorityRefusal('S1', delS2, view([['S2', 'S1', 'network', 'confirmed', '-', iso(3_600_000)]]), NOW) ?? '', /expired/);
  });

  it('G2m: a VM in maintenance may be moved by the detector of its planned move, not by anyone else', () => {
    const g = group.map((r) => (r[0] === 'S2' ? [...r, 'maintenance'] : r));
    const fence = { file: 'group' as const, op: 'Mod' as const, before: g[1], record: ['S2', '127.0.1.2', 'RS2', '-', 'fenced'] };
    const byS4 = ['S2', 'S4', 'evacuate', 'fencing', 'S2b', iso(5000)];
    assert.equal(authorityRefusal('S4', fence, view([byS4], g), NOW), null, 'S4 (not a manager of S2) runs the evacuation it claimed');
    assert.match(authorityRefusal('S3', fence, view([byS4], g), NOW) ?? '', /not by one of its managers/, 'a third VM may not ride on S4\'s claim');
    assert.match(authorityRefusal('S4', fence, view([['S2', 'S4', 'evacuate', 'fencing', 'S2b', iso(3_600_000)]], g), NOW) ?? '', /expired/);
    assert.match(authorityRefusal('S4', { ...fence, before: group[1] }, view([byS4]), NOW) ?? '', /not by one of its managers/, 'not in maintenance: G2 as before');
  });

  it('G3: a backup\'s record is added when a fresh claimed problem names it', () => {
    const add = { file: 'group' as const, op: 'Add' as const, record: ['S2b', '127.0.2.3', 'RS3', '-'] };
    assert.match(authorityRefusal('S1', add, view(), NOW) ?? '', /G3/);
    assert.equal(authorityRefusal('S1', add, view([['S2', 'S1', 'network', 'recovering', 'S2b', iso(5000)]]), NOW), null);
    assert.match(authorityRefusal('S1', { file: 'group', op: 'Del', record: ['S7', '127.0.1.7', 'RS1', '-'] }, view(), NOW) ?? '', /there is none/);
  });

  it('P1/P2: problem records only in the writer\'s own name (or status updates by a manager); deletes by the detector, target or a manager', () => {
    const forged = { file: 'problem' as const, op: 'Add' as const, record: ['S2', 'S1', 'realserver', 'confirmed', '-', iso(0)] };
    assert.match(authorityRefusal('S4', forged, view(), NOW) ?? '', /in the name of S1 \(P1\)/);
    assert.equal(authorityRefusal('S1', forged, view(), NOW), null);
    const before = ['S2', 'S1', 'network', 'confirmed', '-', iso(1000)];
    const update = { file: 'problem' as const, op: 'Mod' as const, before, record: ['S2', 'S1', 'network', 'recovering', 'S2b', iso(1000)] };
    assert.equal(authorityRefusal('S3', update, view([before]), NOW), null, 'the P2 manager updates the status');
    assert.match(authorityRefusal('S4', update, view([before]), NOW) ?? '', /P1/);
    const del = { file: 'problem' as const, op: 'Del' as const, record: before };
    assert.equal(authorityRefusal('S2', del, view([before]), NOW), null);
    assert.match(authorityRefusal('S4', del, view([before]), NOW) ?? '', /P2/);
  });

  it('shared work files are open to every member', () => {
    assert.equal(authorityRefusal('S4', { file: 'available-od', op: 'Del', record: ['OD1', '127.0.2.1', 'RS1'] }, view(), NOW), null);
    assert.equal(authorityRefusal('S4', { file: 'realserver', op: 'Add', record: ['RS1', '0.1', '2', 'up'] }, view(), NOW), null);
  });

  it('at merge: a fence mark is judged as after the re-admission it follows, when this VM missed only that (G4)', () => {
    // An OD frozen while S2 was fenced, then re-admitted by the operator (fenced -> member, G4),
    // then fenced again by S1's next recovery: the OD holds S2 fenced (the old record) and merges
    // the new fence mark, whose signed diff says S2 was a member before it. S2 is out of the OD's
    // ring, so it had no managers there and the mark was refused at every exchange, for good.
    const keys = ['KEY2', 'DH2'];
    const fenced: RecordFields = ['S2', '127.0.1.2', 'RS2', '-', 'fenced', ...keys];
    const member: RecordFields = ['S2', '127.0.1.2', 'RS2', '-', 'member', ...keys];
    const held = group.map((r) => (r[0] === 'S2' ? fenced : [...r, 'member']));
    const claim = ['S2', 'S1', 'network', 'recovering', 'S2b', iso(5000)];
    const v = view([claim], held);
    const mark = { file: 'group' as const, op: 'Mod' as const, before: member, record: fenced };
    assert.equal(mergeRefusal('S1', 'group', 'S2', fenced, fenced, v, held, mark, NOW), null, 'the detector, a manager of S2 once re-admitted');
    assert.equal(mergeRefusal('S3', 'group', 'S2', fenced, fenced, v, held, { ...mark }, NOW), null, 'P2 likewise');
    // Nothing more than the missed G4 change is granted.
    assert.match(mergeRefusal('S4', 'group', 'S2', fenced, fenced, v, held, mark, NOW) ?? '', /may not change the group record of S2/, 'S4 manages nothing of S2');
    const moved: RecordFields = ['S2', '127.0.1.9', 'RS2', '-', 'member', ...keys];
    assert.match(mergeRefusal('S1', 'group', 'S2', fenced, fenced, v, held, { ...mark, before: moved }, NOW) ?? '', /managers \(none\)/, 'a before that differs by more than the state: not a missed re-admission');
    const rekeyed: RecordFields = ['S2', '127.0.1.2', 'RS2', '-', 'member', 'KEY9', 'DH2'];
    assert.match(mergeRefusal('S1', 'group', 'S2', fenced, fenced, v, held, { ...mark, before: rekeyed }, NOW) ?? '', /managers \(none\)/, 'nor one with another key');
    assert.match(mergeRefusal('S1', 'group', 'S2', fenced, fenced, view([['S2', 'S1', 'network', 'recovering', 'S2b', iso(3_600_000)]], held), held, mark, NOW) ?? '', /G2/, 'the claim must still be fresh at the diff');
  });
});
