// The replicated state of the management files, as a conflict-free map: each record key of each
// file holds its last value (or a tombstone once deleted) with the version of the diff that wrote
// it. A version is (Lamport clock, origin hostname); the larger one wins. This makes applying
// diffs and merging snapshots commutative, associative and idempotent: any order and any
// duplication of the same diffs gives identical files on every peer (DESIGN.md, SEM).
import { createHash } from 'crypto';
import { FILE_NAMES, FileName, RecordFields, SCHEMAS, recordKey } from '../records/files';
import type { Edit } from '../records/cluster-api';
import { naturalCompare } from '../records/natural-sort';
import type { EntryProof } from './entry-proof';
import { copyList, mapList } from '../records/lists';

export interface Version {
  lamport: number;
  origin: string;
}

/** A diff as it travels: the edit plus who made it and when (in Lamport time). */
export interface Diff extends Edit, Version {
  seq: number;
}

export interface Entry extends Version {
  file: FileName;
  key: string;
  /** null once the record was deleted (a tombstone, kept so a late older Add cannot revive it). */
  value: RecordFields | null;
  /** The origin's proof that it wrote this version (./entry-proof.ts); absent on data written
   * before proofs existed, or with wire security off. */
  proof?: EntryProof;
}

/** An entry as snapshots carry it; the proof, when held, is packed apart on the wire and on disk
 * (entry-proof.ts packSnapshot). */
export type SnapshotEntry = [file: FileName, key: string, value: RecordFields | null, lamport: number, origin: string, proof?: EntryProof];

const toSnapshotEntry = (e: Entry): SnapshotEntry => (e.proof ? [e.file, e.key, e.value, e.lamport, e.origin, e.proof] : [e.file, e.key, e.value, e.lamport, e.origin]);

export interface Snapshot {
  clock: number;
  /** Highest diff sequence number seen per origin: lets a joining peer refuse old replays. */
  seqs: Record<string, number>;
  entries: SnapshotEntry[];
}

/** One key's change caused by a diff or a merge. */
export interface KeyChange {
  file: FileName;
  key: string;
  before: RecordFields | null;
  after: RecordFields | null;
  version: Version;
}

export function compareVersions(a: Version, b: Version): number {
  if (a.lamport !== b.lamport) return a.lamport - b.lamport;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

export class Replica {
  private readonly files = new Map<FileName, Map<string, Entry>>();
  /** Entries written since the last takeChanged(): what the next journal line must hold. */
  private readonly changed = new Map<string, Entry>();
  /** Per-file digests, computed on demand and dropped when a key of the file changes. */
  private readonly fileHashes = new Map<FileName, string>();
  /** Per-file live entries in natural key order, built on demand and dropped when a key of the
   * file changes: every anti-entropy round, status update and fan-out reads the group's records,
   * and sorting them each time was most of what an idle VM of 100 allocated (docs/memory.md). */
  private readonly sorted = new Map<FileName, Entry[]>();
  /** Per-file change counter: lets a reader cache what it derives from a file's records. */
  private readonly revisions = new Map<FileName, number>();
  /** Lamport clock: above every version this replica has seen. */
  clock = 0;
  readonly seqs: Record<string, number> = {};

  constructor() {
    for (const f of FILE_NAMES) this.files.set(f, new Map());
  }

  /** Live records of a file, in natural key order, so every peer writes byte-identical files. */
  records(file: FileName): RecordFields[] {
    let live = this.sorted.get(file);
    if (!live) {
      live = [];
      for (const e of this.files.get(file)!.values()) if (e.value) live.push(e);
      live.sort((a, b) => naturalCompare(a.key, b.key));
      this.sorted.set(file, live);
    }
    return mapList(live, (e) => copyList(e.value!));
  }

  /** How many times a key of `file` was written here: equal counts mean the same records. */
  revision(file: FileName): number {
    return this.revisions.get(file) ?? 0;
  }

  get(file: FileName, key: string): RecordFields | undefined {
    const v = this.files.get(file)!.get(key)?.value;
    return v ? v.slice() : undefined;
  }

  /** The next Lamport time for a local edit. */
  tick(): number {
    this.clock += 1;
    return this.clock;
  }

  /** Apply a diff (with its origin's proof, kept with the entries it writes); returns the keys it
   * changed (none for a duplicate or a superseded diff). */
  apply(diff: Diff, proof?: EntryProof): KeyChange[] {
    this.observe(diff.lamport);
    this.seqs[diff.origin] = Math.max(this.seqs[diff.origin] ?? 0, diff.seq);
    const version = { lamport: diff.lamport, origin: diff.origin };
    const changes: KeyChange[] = [];
    const put = (key: string, value: RecordFields | null) => {
      const c = this.put(diff.file, key, value, version, proof);
      if (c) changes.push(c);
    };
    const key = recordKey(diff.file, diff.record);
    if (diff.op === 'Del') put(key, null);
    else if (diff.op === 'Add') put(key, diff.record);
    else {
      const beforeKey = diff.before ? recordKey(diff.file, diff.before) : key;
      if (beforeKey !== key) put(beforeKey, null);
      put(key, diff.record);
    }
    return changes;
  }

  /** True when every key the diff writes already holds its version or a newer one. */
  contains(diff: Diff): boolean {
    const version = { lamport: diff.lamport, origin: diff.origin };
    const keys = [recordKey(diff.file, diff.record)];
    if (diff.op === 'Mod' && diff.before) keys.push(recordKey(diff.file, diff.before));
    return keys.every((k) => {
      const e = this.files.get(diff.file)!.get(k);
      return !!e && compareVersions(e, version) >= 0;
    });
  }

  snapshot(): Snapshot {
    const entries: SnapshotEntry[] = [];
    for (const [file, map] of this.files) {
      for (const e of map.values()) entries.push(toSnapshotEntry(e));
    }
    return { clock: this.clock, seqs: { ...this.seqs }, entries };
  }

  /** Merge a peer's snapshot (anti-entropy, join); returns what changed here. */
  merge(snap: Snapshot): KeyChange[] {
    this.observe(snap.clock);
    for (const [origin, seq] of Object.entries(snap.seqs)) {
      this.seqs[origin] = Math.max(this.seqs[origin] ?? 0, seq);
    }
    const changes: KeyChange[] = [];
    for (const [file, key, value, lamport, origin, proof] of snap.entries) {
      const c = this.put(file, key, value, { lamport, origin }, proof);
      if (c) changes.push(c);
    }
    return changes;
  }

  /** The entries written since the last call (for an incremental journal), as snapshot entries. */
  takeChanged(): SnapshotEntry[] {
    const out = Array.from(this.changed.values(), toSnapshotEntry);
    this.changed.clear();
    return out;
  }

  /** What this replica holds: live records, tombstones (one per deleted key, bounded by the key
   * space, not by the number of edits), entries awaiting the journal, origins counted. */
  retained(): { records: number; tombstones: number; unjournaled: number; origins: number } {
    let records = 0;
    let tombstones = 0;
    for (const map of this.files.values()) for (const e of map.values()) e.value ? records++ : tombstones++;
    return { records, tombstones, unjournaled: this.changed.size, origins: Object.keys(this.seqs).length };
  }

  /** A hash of every entry (tombstones included): equal digests mean identical replicas. Built from
   * the per-file digests, each cached until its file changes, so an idle round costs no hashing. */
  digest(): string {
    const h = createHash('sha256');
    for (const file of FILE_NAMES) h.update(`${file}\0${this.fileDigest(file)}\n`);
    return h.digest('hex');
  }

  /** A hash of one file's entries (tombstones included): anti-entropy compares these first. */
  fileDigest(file: FileName): string {
    const cached = this.fileHashes.get(file);
    if (cached) return cached;
    const h = createHash('sha256');
    const map = this.files.get(file)!;
    const keys = Array.from(map.keys()).sort();
    for (const k of keys) {
      const e = map.get(k)!;
      h.update(`${k}\0${e.lamport}\0${e.origin}\0${e.value ? e.value.join('\x1f') : '\x7f'}\n`);
    }
    const d = h.digest('hex');
    this.fileHashes.set(file, d);
    return d;
  }

  /** The version of every key of a file (values left out): what a peer compares with its own. */
  versions(file: FileName): [key: string, lamport: number, origin: string][] {
    return Array.from(this.files.get(file)!.values(), (e): [string, number, string] => [e.key, e.lamport, e.origin]);
  }

  /** The version of one key, if this replica has it (live or tombstone). */
  version(file: FileName, key: string): Version | undefined {
    const e = this.files.get(file)!.get(key);
    return e ? { lamport: e.lamport, origin: e.origin } : undefined;
  }

  /** The entries of the given keys that this replica holds, as snapshot entries. */
  entries(keys: Iterable<[file: FileName, key: string]>): SnapshotEntry[] {
    const out: SnapshotEntry[] = [];
    for (const [file, key] of keys) {
      const e = this.files.get(file)?.get(key);
      if (e) out.push(toSnapshotEntry(e));
    }
    return out;
  }

  /**
   * Bring every version above `ceiling` down to it, and the clock too: the repair of a state
   * poisoned by a forged Lamport time (MAX_SAFE_INTEGER stops the clock for ever). Returns how many
   * entries changed and the highest time found (0 entries and highest <= ceiling: nothing to do).
   */
  clampVersions(ceiling: number): { entries: number; highest: number } {
    let entries = 0;
    let highest = this.clock;
    for (const map of this.files.values()) {
      for (const e of map.values()) {
        if (e.lamport <= ceiling) continue;
        highest = Math.max(highest, e.lamport);
        e.lamport = ceiling;
        // The origin's proof names the old time: it no longer proves this version.
        delete e.proof;
        this.changed.set(`${e.file}\0${e.key}`, e);
        this.fileHashes.delete(e.file);
        entries++;
      }
    }
    if (this.clock > ceiling) this.clock = ceiling;
    return { entries, highest };
  }

  /**
   * Give a new proof, made by `sign`, to each entry of `origin` that `which` selects (by default
   * those without one): an origin re-signing its own entries written before proofs existed, or
   * after a key rotation (entry-proof.ts, e proofs). Returns how many.
   */
  prove(origin: string, sign: (e: Entry) => EntryProof, which: (e: Entry) => boolean = (e) => !e.proof): number {
    let n = 0;
    for (const map of this.files.values()) {
      for (const e of map.values()) {
        if (e.origin !== origin || !which(e)) continue;
        e.proof = sign(e);
        this.changed.set(`${e.file}\0${e.key}`, e);
        n++;
      }
    }
    return n;
  }

  private observe(lamport: number): void {
    if (lamport > this.clock) this.clock = lamport;
  }

  private put(file: FileName, key: string, value: RecordFields | null, version: Version, proof?: EntryProof): KeyChange | null {
    if (SCHEMAS[file].derived) return null;
    const map = this.files.get(file)!;
    const cur = map.get(key);
    if (cur && compareVersions(version, cur) <= 0) return null;
    const entry: Entry = { file, key, value: value ? value.slice() : null, lamport: version.lamport, origin: version.origin };
    if (proof) entry.proof = proof;
    map.set(key, entry);
    this.fileHashes.delete(file);
    this.sorted.delete(file);
    this.revisions.set(file, this.revision(file) + 1);
    this.changed.set(`${file}\0${key}`, entry);
    const before = cur?.value ?? null;
    if (sameRecord(before, value)) return null;
    return { file, key, before, after: value, version };
  }
}

export function sameRecord(a: RecordFields | null | undefined, b: RecordFields | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
