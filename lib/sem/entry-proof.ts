// Per-entry origin proofs (issue 14): every record version a VM holds keeps the proof that the VM
// named as its origin wrote it, so that anti-entropy (summary/pull, digest, snapshot) can ship it
// and a receiver can check it against the origin's published key, never trusting the VM that
// forwards it (docs/security.md, rule 10). A proof is one of:
//
//   d  the origin's signed diff: the diff's plain body and its `x-p2p-sig` header, exactly as the
//      origin sent them (label `POST /p2p/sem/diff`). Kept by every receiver of a live diff and by
//      the origin itself; no new signature is made on the edit path. A batch's records share one.
//   e  an entry signature: the origin's `x-p2p-sig` over ENTRY_LABEL and the entry itself (file,
//      key, value, Lamport time, origin). Made by a VM for its own entries that have no diff to
//      show: entries written before proofs existed, re-signed by their origin at load (upgrade).
//
// This module holds the proof type, its signing bytes and its packing on the wire and on disk; the
// verifier is ./entry-verify.ts (it needs the diff decoder).
//
// Packing: a snapshot travels (and is checkpointed) as `{clock, seqs, entries, proofs, proofOf}`:
// entries stay the 5-tuples every release reads (a release without proofs ignores the two extra
// fields), `proofs` lists each distinct proof once as [diff body or null, signature header] (a
// batch's records share one), and `proofOf[i]` is the index of entry i's proof, or -1.
import type { FileName, RecordFields } from '../records/files';
import { signMessage, VmKey } from './vm-key';
import { withFields } from '../records/objects';

export interface EntryProof {
  /** The origin's diff body (plain JSON), for a d proof; absent for an e proof. */
  d?: string;
  /** The signature header: `<origin> <base64 Ed25519 signature>`. */
  s: string;
}

/** The label an e proof's signature covers (never a route: it cannot be replayed as a message). */
export const ENTRY_LABEL = 'p2p-entry';

/** The bytes an e proof signs: the entry as one JSON array. */
export function entryBytes(file: FileName, key: string, value: RecordFields | null, lamport: number, origin: string): string {
  return JSON.stringify([file, key, value, lamport, origin]);
}

/** An e proof of an entry this VM (its key's hostname = the entry's origin) wrote. */
export function signEntry(key: VmKey, file: FileName, entryKey: string, value: RecordFields | null, lamport: number): EntryProof {
  return { s: signMessage(key, ENTRY_LABEL, entryBytes(file, entryKey, value, lamport, key.hostname)) };
}

type Tuple5 = [FileName, string, RecordFields | null, number, string];
type WithProof = [FileName, string, RecordFields | null, number, string, EntryProof?];

export interface PackedSnapshot {
  clock: number;
  seqs: Record<string, number>;
  entries: Tuple5[];
  proofs?: [string | null, string][];
  proofOf?: number[];
}

/**
 * A snapshot as it is written to the wire or the disk. `signedOnly`: entries without a proof are
 * left out (what a peer must refuse is not shipped to it; docs/security.md, upgrade).
 */
export function packSnapshot<S extends { clock: number; seqs: Record<string, number>; entries: WithProof[] }>(snap: S, signedOnly = false): Omit<S, 'entries'> & PackedSnapshot {
  const entries: Tuple5[] = [];
  const proofs: [string | null, string][] = [];
  const proofOf: number[] = [];
  const index = new Map<EntryProof, number>();
  for (const e of snap.entries) {
    const p = e[5];
    if (!p && signedOnly) continue;
    entries.push([e[0], e[1], e[2], e[3], e[4]]);
    if (!p) {
      proofOf.push(-1);
      continue;
    }
    let i = index.get(p);
    if (i === undefined) {
      i = proofs.length;
      proofs.push([p.d ?? null, p.s]);
      index.set(p, i);
    }
    proofOf.push(i);
  }
  const packed = proofs.length ? withFields(snap, { entries, proofs, proofOf }) : withFields(snap, { entries });
  return packed as unknown as Omit<S, 'entries'> & PackedSnapshot;
}

/**
 * Attach the proofs of a packed snapshot (`raw`, as parsed) to its validated entries (the same
 * entries in the same order). A malformed proof table, or a malformed proof, leaves the entries
 * concerned without a proof: the verifier then refuses them, nothing here throws.
 */
export function attachProofs(raw: unknown, entries: WithProof[]): void {
  const o = raw as { proofs?: unknown; proofOf?: unknown } | null;
  if (!o || !Array.isArray(o.proofs) || !Array.isArray(o.proofOf) || o.proofOf.length !== entries.length) return;
  const proofs = o.proofs.map((p: unknown): EntryProof | undefined => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[1] !== 'string' || p[1].length > 200) return undefined;
    if (p[0] === null) return { s: p[1] };
    return typeof p[0] === 'string' ? { d: p[0], s: p[1] } : undefined;
  });
  o.proofOf.forEach((i: unknown, n: number) => {
    const p = Number.isInteger(i) && (i as number) >= 0 ? proofs[i as number] : undefined;
    if (p) entries[n][5] = p;
  });
}
