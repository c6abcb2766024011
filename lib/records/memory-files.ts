// One replica of the management files in memory, with the store's edit rules (Add of an existing
// key, Del of a different record and Mod with a stale `before` are refused): the unit tests of the
// recovery logic run over it, and the rehearsal (lib/recovery/rehearsal.ts) runs the backup plan
// over one seeded with a copy of the real files, so the real files are never touched. Nothing is
// sent anywhere. The real store is lib/sem/replicated-store.ts.
import { EventEmitter } from 'events';
import type { BatchResult, ChangeEvent, ClusterFiles, Edit, EditResult, Identity } from './cluster-api';
import { normalizeEdit } from './diff-line';
import { FILE_NAMES, FileName, recordKey, RecordFields, validateRecord } from './files';
import { operationRecords } from './ring';

export class MemoryFiles extends EventEmitter implements ClusterFiles {
  readonly data = new Map<FileName, RecordFields[]>(FILE_NAMES.map((f) => [f, []]));
  readonly lines: string[] = [];
  /** The edits applied, in order (beside their lines). */
  readonly applied: Edit[] = [];
  readonly port = 0;
  /** Make the next edits fail (a store stopped under the plan). */
  failEdits = false;

  constructor(
    readonly identity: Identity,
    init: Partial<Record<FileName, RecordFields[]>> = {},
  ) {
    super();
    for (const [f, rs] of Object.entries(init)) this.data.set(f as FileName, rs!.map((r) => validateRecord(f as FileName, r)));
  }

  records(file: FileName): RecordFields[] {
    if (file === 'operation') return operationRecords(this.data.get('group')!);
    return this.data.get(file)!.map((r) => r.slice());
  }

  get(file: FileName, key: string): RecordFields | undefined {
    return this.records(file).find((r) => recordKey(file, r) === key);
  }

  peers() {
    return this.records('group').filter((g) => g[0] !== this.identity.hostname).map((g) => ({ hostname: g[0], address: g[1] }));
  }

  /** All or nothing: on a refusal the files (and the lists of applied edits) are put back as they were. */
  async editBatch(inputs: (Edit | string)[]): Promise<BatchResult> {
    const saved = new Map([...this.data].map(([f, rs]) => [f, rs.slice()]));
    const lines: string[] = [];
    try {
      for (const i of inputs) lines.push((await this.edit(i)).line);
    } catch (e) {
      for (const [f, rs] of saved) this.data.set(f, rs);
      this.lines.splice(this.lines.length - lines.length, lines.length);
      this.applied.splice(this.applied.length - lines.length, lines.length);
      throw e;
    }
    return { lines, origin: this.identity.hostname, seq: this.lines.length, lamport: this.lines.length, acked: [], failed: [], ms: 0 };
  }

  edit(input: Edit | string): Promise<EditResult> {
    if (this.failEdits) return Promise.reject(new Error('store stopped'));
    const e = normalizeEdit(input);
    const rows = this.data.get(e.file)!;
    const rec = validateRecord(e.file, e.record);
    const key = recordKey(e.file, rec);
    const i = rows.findIndex((r) => recordKey(e.file, r) === key);
    const same = (a?: RecordFields, b?: RecordFields) => !!a && !!b && a.join('|') === b.join('|');
    let line: string;
    if (e.op === 'Add') {
      if (i >= 0) return Promise.reject(new Error(`Add: ${key} exists`));
      rows.push(rec);
      line = `${e.file}, Add, ${rec.join(', ')}`;
    } else if (e.op === 'Del') {
      if (i < 0 || !same(rows[i], rec)) return Promise.reject(new Error(`Del: no such record ${rec.join(', ')}`));
      rows.splice(i, 1);
      line = `${e.file}, Del, ${rec.join(', ')}`;
    } else {
      const bk = recordKey(e.file, e.before!);
      const j = rows.findIndex((r) => recordKey(e.file, r) === bk);
      if (j < 0 || !same(rows[j], e.before)) return Promise.reject(new Error(`Mod: before does not match`));
      rows[j] = rec;
      line = `${e.file}, Mod, ${e.before!.join(', ')}, ${rec.join(', ')}`;
    }
    this.lines.push(line);
    this.applied.push({ ...e, record: rec });
    const ev: ChangeEvent = { file: e.file, op: e.op, record: rec, before: e.before, line, origin: this.identity.hostname, seq: this.lines.length, lamport: this.lines.length, local: true, via: 'edit' };
    this.emit('change', ev);
    return Promise.resolve({ line, origin: this.identity.hostname, seq: this.lines.length, lamport: this.lines.length, acked: [], failed: [], ms: 0 });
  }
}
