import { strict as assert } from 'assert';
import { FILE_NAMES, formatFile, parseFile, validateRecord, RecordError } from '../../lib/records/files';
import { parseDiffLine, formatDiffLine, normalizeEdit, DiffLineError } from '../../lib/records/diff-line';

const samples: Record<string, string[][]> = {
  group: [
    ['S1', '127.0.1.1', 'RS1', 'tcp:80 http:8080/health'],
    ['S10', 'vm10.example.net', 'RS2', '-'],
  ],
  operation: [['P1', 'S6', 'S1']],
  problem: [['S2', 'S1', 'network', 'confirmed', '-', '2026-11-26T14:00:00.123Z'], ['S3', 'S2', 'service', 'failed', 'S3b', '-', 'resume failed: timeout']],
  realserver: [['RS1', '0.35', '2', 'up']],
  'available-od': [['OD1', '127.0.2.1', 'RS1']],
  reservation: [['OD7', '127.0.2.7', 'RS3']],
};

describe('management files: parse and format', () => {
  for (const file of FILE_NAMES) {
    it(`round-trips the ${file} file`, () => {
      const text = formatFile(file, samples[file]);
      assert.deepEqual(parseFile(file, text), samples[file]);
      assert.equal(formatFile(file, parseFile(file, text)), text);
    });
  }

  it('skips comments and blank lines, tolerates spacing around separators', () => {
    assert.deepEqual(parseFile('realserver', '# load\n\n RS1 ,0.5,  3, up \n'), [['RS1', '0.5', '3', 'up']]);
  });

  it('names the bad field and line of a corrupt file', () => {
    assert.throws(() => parseFile('group', 'S1, 127.0.1.1, RS1, -\nS2, 999.1.1.1, RS1, -\n'), /group line 2: .*address/);
  });

  it('refuses records with wrong field counts or values', () => {
    assert.throws(() => validateRecord('group', ['S1', '127.0.0.1', 'RS1']), RecordError);
    assert.throws(() => validateRecord('group', ['S2; rm -rf /', '127.0.0.1', 'RS1', '-']), /hostname/);
    assert.throws(() => validateRecord('group', ['S2', '127.0.0.1', 'RS1', 'tcp:80;id']), /services/);
    assert.throws(() => validateRecord('realserver', ['RS1', '-1', '2', 'up']), /load/);
    assert.throws(() => validateRecord('problem', ['S2', 'S1', 'disk', 'detected', '-', '-']), /kind/);
    assert.throws(() => validateRecord('group', ['$(id)', '127.0.0.1', 'RS1', '-']), /hostname/);
    assert.throws(() => validateRecord('group', ['-S2', '127.0.0.1', 'RS1', '-']), /hostname/);
  });
});

describe('Diff.dat lines', () => {
  it('parses the note\'s three forms and formats them back', () => {
    for (const line of [
      'group, Del, S2, 127.0.1.2, RS1, tcp:80',
      'available-od, Add, OD3, 127.0.2.3, RS2',
      'realserver, Mod, RS1, 0.5, 2, up, RS1, 0.75, 3, up',
    ]) {
      assert.equal(formatDiffLine(parseDiffLine(line)), line);
    }
    const mod = parseDiffLine('realserver, Mod, RS1, 0.5, 2, up, RS1, 0.75, 3, up');
    assert.deepEqual(mod.before, ['RS1', '0.5', '2', 'up']);
    assert.deepEqual(mod.record, ['RS1', '0.75', '3', 'up']);
    // Optional trailing fields: before and after may have different counts (a problem record
    // gains its note and OD as a recovery goes on; a group record gains its state).
    const grow = parseDiffLine('problem, Mod, S2, S1, network, confirmed, -, 2026-12-03T07:00:00.000Z, S2, S1, network, fencing, S2b, 2026-12-03T07:00:00.000Z, -, OD3');
    assert.deepEqual(grow.before, ['S2', 'S1', 'network', 'confirmed', '-', '2026-12-03T07:00:00.000Z']);
    assert.deepEqual(grow.record, ['S2', 'S1', 'network', 'fencing', 'S2b', '2026-12-03T07:00:00.000Z', '-', 'OD3']);
    const shrink = parseDiffLine('group, Mod, S2, 127.0.1.2, RS1, -, maintenance, S2, 127.0.1.2, RS1, -');
    assert.deepEqual(shrink.before, ['S2', '127.0.1.2', 'RS1', '-', 'maintenance']);
    assert.deepEqual(shrink.record, ['S2', '127.0.1.2', 'RS1', '-']);
    assert.equal(formatDiffLine(grow), 'problem, Mod, S2, S1, network, confirmed, -, 2026-12-03T07:00:00.000Z, S2, S1, network, fencing, S2b, 2026-12-03T07:00:00.000Z, -, OD3');
  });

  it('refuses unknown files and operations, malformed records, multi-line input', () => {
    assert.throws(() => parseDiffLine('passwd, Add, root'), /unknown file/);
    assert.throws(() => parseDiffLine('group, Drop, S2, 127.0.1.2, RS1, -'), /unknown operation/);
    assert.throws(() => parseDiffLine('group, Add, S2'), DiffLineError);
    assert.throws(() => parseDiffLine('realserver, Mod, RS1, 0.5, 2, up'), /before and after/);
    assert.throws(() => parseDiffLine('group, Add, S2, 127.0.1.2, RS1, -\ngroup, Del, S1, 127.0.1.1, RS1, -'), /one line/);
    assert.throws(() => parseDiffLine('x'.repeat(5000)), /too long/);
  });

  it('normalizes object edits (numbers as text, "a, b" records)', () => {
    assert.deepEqual(normalizeEdit({ file: 'realserver', op: 'add', record: ['RS1', 0.5, 2, 'up'] }), {
      file: 'realserver',
      op: 'Add',
      record: ['RS1', '0.5', '2', 'up'],
    });
    assert.deepEqual(normalizeEdit({ file: 'group', op: 'Del', record: 'S2, 127.0.1.2, RS1, -' }).record, ['S2', '127.0.1.2', 'RS1', '-']);
    assert.throws(() => normalizeEdit({ file: 'group', op: 'Mod', record: 'S2, 127.0.1.2, RS1, -' }), /before/);
    assert.throws(() => normalizeEdit(null), DiffLineError);
    assert.throws(() => normalizeEdit({ file: 'group', op: 'Add', record: { a: 1 } }), DiffLineError);
  });
});
