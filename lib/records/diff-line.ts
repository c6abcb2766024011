// The note's Diff.dat line: `file, Del, record` / `file, Add, record` / `file, Mod, before, after`.
// For Mod the split between before and after is found from the records' schemas (optional trailing
// fields make the two counts differ; see toEdit).
import { FileName, RecordFields, SCHEMAS, formatRecord, isFileName, splitFields, truncate, validateRecord } from './files';
import type { Edit, EditOp } from './cluster-api';
import { mapList } from './lists';

export class DiffLineError extends Error {}

const OPS: readonly EditOp[] = ['Add', 'Del', 'Mod'];

export function formatDiffLine(edit: Edit): string {
  const parts: string[] = [edit.file, edit.op];
  if (edit.op === 'Mod') parts.push(formatRecord(edit.before ?? []));
  parts.push(formatRecord(edit.record));
  return parts.join(', ');
}

/** Parse and validate one Diff.dat line. Throws DiffLineError with the reason. */
export function parseDiffLine(line: string): Edit {
  if (typeof line !== 'string' || line.length === 0) throw new DiffLineError('empty diff line');
  if (line.length > 4096) throw new DiffLineError(`diff line too long (${line.length} > 4096 characters)`);
  if (/[\r\n]/.test(line.trim())) throw new DiffLineError('a diff is one line');
  const fields = splitFields(line.trim());
  const [file, op, ...rest] = fields;
  const fileName = file?.toLowerCase();
  if (!isFileName(fileName)) throw new DiffLineError(`unknown file ${JSON.stringify(truncate(file ?? ''))}`);
  const opName = OPS.find((o) => o.toLowerCase() === (op ?? '').toLowerCase());
  if (!opName) throw new DiffLineError(`unknown operation ${JSON.stringify(truncate(op ?? ''))}, expected Add, Del or Mod`);
  try {
    return toEdit(fileName, opName, rest);
  } catch (e) {
    throw new DiffLineError((e as Error).message);
  }
}

function toEdit(file: FileName, op: EditOp, rest: string[]): Edit {
  if (op !== 'Mod') return { file, op, record: validateRecord(file, rest) };
  const n = SCHEMAS[file].fields.length;
  if (rest.length < 2 * n) {
    throw new DiffLineError(`${file}, Mod needs the record before and after (${n} fields each at least), got ${rest.length} fields`);
  }
  // Records may carry optional trailing fields (group state and key, problem note and OD, ...), so
  // before and after need not have the same count: the split is where both halves are valid
  // records, the equal split first; otherwise the one where the after record has the same key.
  const split = (k: number): Edit | undefined => {
    try {
      return { file, op, before: validateRecord(file, rest.slice(0, k)), record: validateRecord(file, rest.slice(k)) };
    } catch {
      return undefined;
    }
  };
  if (rest.length % 2 === 0) {
    const even = split(rest.length / 2);
    if (even) return even;
  }
  const sameKey: Edit[] = [];
  for (let k = n; k <= rest.length - n; k++) {
    if (rest[k] !== rest[0]) continue;
    const e = split(k);
    if (e) sameKey.push(e);
  }
  if (sameKey.length === 1) return sameKey[0];
  if (sameKey.length > 1) throw new DiffLineError(`${file}, Mod: where the record before ends is ambiguous (${sameKey.length} ways); give it as {file, op, before, record}`);
  if (rest.length % 2 === 0) {
    const half = rest.length / 2;
    // Neither split is valid: say why with the equal split's own error.
    validateRecord(file, rest.slice(0, half));
    validateRecord(file, rest.slice(half));
  }
  throw new DiffLineError(`${file}, Mod: no split of its ${rest.length} fields gives a valid record before and after`);
}

/** Validate an edit given as an object (e.g. msg.payload). Throws DiffLineError. */
export function normalizeEdit(input: unknown): Edit {
  if (typeof input === 'string') return parseDiffLine(input);
  if (!input || typeof input !== 'object') throw new DiffLineError('an edit is {file, op, record, before?} or a Diff.dat line');
  const o = input as Record<string, unknown>;
  const file = typeof o.file === 'string' ? o.file.toLowerCase() : o.file;
  if (!isFileName(file)) throw new DiffLineError(`unknown file ${JSON.stringify(o.file)}`);
  const opName = OPS.find((x) => typeof o.op === 'string' && x.toLowerCase() === o.op.toLowerCase());
  if (!opName) throw new DiffLineError(`unknown operation ${JSON.stringify(o.op)}, expected Add, Del or Mod`);
  const asFields = (v: unknown, what: string): RecordFields => {
    if (typeof v === 'string') return splitFields(v);
    if (Array.isArray(v)) return mapList(v, (x) => (typeof x === 'number' ? String(x) : x)) as RecordFields;
    throw new DiffLineError(`${what} must be a list of fields or a "a, b, c" line`);
  };
  try {
    const record = validateRecord(file, asFields(o.record, 'record'));
    if (opName !== 'Mod') return { file, op: opName, record };
    if (o.before === undefined) throw new DiffLineError('Mod needs before');
    return { file, op: opName, record, before: validateRecord(file, asFields(o.before, 'before')) };
  } catch (e) {
    throw e instanceof DiffLineError ? e : new DiffLineError((e as Error).message);
  }
}
