// An in-memory stand-in for the replicated store, for fake-time tests of the heartbeat's logic and
// node wiring only (the real store is lib/replicated-store.ts). Each peer holds its own copy of the
// files; an edit applies locally at once and reaches every other live peer after `delayMs` of fake
// time; concurrent edits of one record resolve last-writer-wins by (Lamport clock, origin), the
// same on every peer. The operation file is the ring of DESIGN.md over the group.
import { EventEmitter } from 'events';
import type { ChangeEvent, ClusterFiles, Edit, EditResult, Identity } from '../../lib/records/cluster-api';
import { FileName, recordKey, RecordFields, splitFields, validateRecord } from '../../lib/records/files';
import type { Clock } from '../../lib/monitor/clock';

interface Version {
  record: RecordFields | null;
  lamport: number;
  origin: string;
}
interface Diff {
  file: FileName;
  op: Edit['op'];
  record: RecordFields;
  before?: RecordFields;
  origin: string;
  seq: number;
  lamport: number;
}

const natural = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** The ring of DESIGN.md, written out here for the stand-in (the real one is lib/ring.ts). */
export function ringOf(names: string[]): RecordFields[] {
  const n = names.length;
  const s = names.slice().sort(natural);
  if (n < 2) return [];
  if (n === 2) return [['P1', s[0], s[1]], ['P1', s[1], s[0]]];
  return s.flatMap((t, i) => [
    ['P1', s[(i - 1 + n) % n], t],
    ['P2', s[(i + 1) % n], t],
  ]);
}

export class SimNet {
  readonly peers = new Map<string, SimFiles>();
  /** Peers that neither send nor receive (killed or partitioned). */
  readonly down = new Set<string>();
  /** A partition: diffs between these pairs are lost (true = cut). */
  cut: (from: string, to: string) => boolean = () => false;
  constructor(
    readonly clock: Clock,
    public delayMs = 50,
  ) {}

  add(identity: Identity, group: RecordFields[]): SimFiles {
    const f = new SimFiles(this, identity, group);
    this.peers.set(identity.hostname, f);
    return f;
  }

  deliver(from: string, diff: Diff): void {
    for (const [name, peer] of this.peers) {
      if (name === from) continue;
      this.clock.setTimeout(() => {
        if (!this.down.has(from) && !this.down.has(name) && !this.cut(from, name)) peer.receive(diff);
      }, this.delayMs);
    }
  }
}

export class SimFiles extends EventEmitter implements ClusterFiles {
  readonly port = 1880;
  private files = new Map<FileName, Map<string, Version>>();
  private lamport = 0;
  private seq = 0;
  readonly log: ChangeEvent[] = [];

  constructor(
    private readonly net: SimNet,
    readonly identity: Identity,
    group: RecordFields[],
  ) {
    super();
    for (const r of group) this.put('group', r, 0, '');
  }

  private table(file: FileName): Map<string, Version> {
    let t = this.files.get(file);
    if (!t) this.files.set(file, (t = new Map()));
    return t;
  }

  private put(file: FileName, record: RecordFields | null, lamport: number, origin: string, key?: string): boolean {
    const k = key ?? recordKey(file, record!);
    const t = this.table(file);
    const cur = t.get(k);
    if (cur && (cur.lamport > lamport || (cur.lamport === lamport && cur.origin >= origin))) return false;
    t.set(k, { record, lamport, origin });
    return true;
  }

  records(file: FileName): RecordFields[] {
    if (file === 'operation') return ringOf(this.records('group').map((r) => r[0]));
    return [...this.table(file).values()].filter((v) => v.record).map((v) => v.record!.slice());
  }

  get(file: FileName, key: string): RecordFields | undefined {
    const v = this.table(file).get(key);
    return v?.record ? v.record.slice() : undefined;
  }

  peers(): { hostname: string; address: string }[] {
    return this.records('group')
      .filter((r) => r[0] !== this.identity.hostname)
      .map((r) => ({ hostname: r[0], address: r[1] }));
  }

  async edit(input: Edit | string): Promise<EditResult> {
    let edit: Edit;
    if (typeof input === 'string') {
      const [file, op, ...rest] = splitFields(input);
      edit = { file: file as FileName, op: op as Edit['op'], record: rest };
    } else edit = input;
    const record = validateRecord(edit.file, edit.record);
    if (edit.op === 'Mod') {
      const cur = this.get(edit.file, recordKey(edit.file, record));
      if (!cur || !edit.before || cur.join(', ') !== edit.before.join(', ')) throw new Error('Mod: before does not match');
    }
    const diff: Diff = { ...edit, record, origin: this.identity.hostname, seq: ++this.seq, lamport: ++this.lamport };
    this.apply(diff, true);
    this.net.deliver(this.identity.hostname, diff);
    return { line: `${edit.file}, ${edit.op}, ${record.join(', ')}`, origin: diff.origin, seq: diff.seq, lamport: diff.lamport, acked: [], failed: [], ms: 0 };
  }

  receive(diff: Diff): void {
    this.lamport = Math.max(this.lamport, diff.lamport) + 1;
    this.apply(diff, false);
  }

  private apply(d: Diff, local: boolean): void {
    const changed = this.put(d.file, d.op === 'Del' ? null : d.record, d.lamport, d.origin, recordKey(d.file, d.record));
    if (!changed) return;
    const ev: ChangeEvent = {
      file: d.file,
      op: d.op,
      record: d.record,
      before: d.before,
      line: `${d.file}, ${d.op}, ${d.record.join(', ')}`,
      origin: d.origin,
      seq: d.seq,
      lamport: d.lamport,
      local,
      via: local ? 'edit' : 'diff',
    };
    this.log.push(ev);
    this.emit('change', ev);
  }
}
