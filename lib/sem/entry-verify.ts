// The check of entries that arrive by anti-entropy or snapshot (issue 14, docs/security.md rule
// 10): an entry is taken only with a proof (./entry-proof.ts) that the VM it names as its origin
// wrote exactly this version (file, key, value, Lamport time, origin), signed with a key that VM
// publishes. Which keys count, given what the receiver holds:
//
//   K1  A VM's own group record (key = origin): when the receiver holds that record with a key,
//       only that key (a key change is signed by the key it replaces, as a live rotation is), or
//       the key the diff's chain of rotations leads to from it (./key-chain.ts: missed rotations);
//       otherwise (nothing held, a tombstone, a record without key: a newcomer, a backup, a VM
//       re-joining) the key the record itself offers, or the key its proof's diff replaced (a
//       rotation): self-certified, admitted by the cluster secret exactly as a live join diff is;
//       but for a VM it holds nothing of and whose key the operator gave it (./key-anchors.ts),
//       only that key or the key a chain of rotations leads to from it.
//   K2  Any other entry: the key the origin's group record publishes, with this merge's accepted
//       group entries overlaid (a newcomer learns the keys and the records in one snapshot), or the
//       key that record's own proof shows it replaced (a rotation, or the deletion of a departed
//       VM's record) for entries older than that change. An origin with no key at all is refused.
//
// Group records are checked before the other files (own records first, then the records others
// wrote about a VM), so later entries are judged with the keys the earlier ones bring. A refused
// entry is left out with its reason; the authority rules (edit-authority.ts mergeRefusal) then
// judge what is left, now that its origin is proven.
import { recordKey, type FileName, type RecordFields } from '../records/files';
import { fromMember } from '../records/records';
import { DIFF_PATH } from './fanout';
import { ENTRY_LABEL, EntryProof, entryBytes } from './entry-proof';
import { decodeDiff, diffsOf } from './sem-protocol';
import type { Diff, SnapshotEntry } from './replica';
import { sameRecord } from './replica';
import { parseSignature, verifyMessage } from './vm-key';
import { chainKeys, followKeyChain, keyChainOf } from './key-chain';

/** A group entry as the receiver holds it (a tombstone has value null). */
export interface GroupEntry {
  value: RecordFields | null;
  lamport: number;
  proof?: EntryProof;
}

/** The receiver's group entry of a hostname (live or tombstone), if any. */
export type GroupLookup = (hostname: string) => GroupEntry | undefined;

/** Decoded d proofs (a batch's records share one proof object). */
const decoded = new WeakMap<EntryProof, Diff[] | null>();
/** Signature checks of d proofs by key: a batch's records share one proof, checked once per key. */
const checked = new WeakMap<EntryProof, Map<string, boolean>>();

function diffSignedBy(proof: EntryProof, sig: Buffer, key: string): boolean {
  let byKey = checked.get(proof);
  if (!byKey) checked.set(proof, (byKey = new Map()));
  let ok = byKey.get(key);
  if (ok === undefined) byKey.set(key, (ok = verifyMessage(key, `POST ${DIFF_PATH}`, proof.d!, sig)));
  return ok;
}

/** The diffs a d proof's body holds (its signature not checked here), or null when it is no diff. */
export function proofDiffs(proof: EntryProof): Diff[] | null {
  if (proof.d === undefined) return null;
  let out = decoded.get(proof);
  if (out !== undefined) return out;
  try {
    const ts = (JSON.parse(proof.d) as { ts?: unknown }).ts;
    // Judged at the time it was sent (its freshness was checked then); bounds and form still hold.
    out = typeof ts === 'number' ? diffsOf(decodeDiff(proof.d, ts)) : null;
  } catch {
    out = null;
  }
  decoded.set(proof, out);
  return out;
}

const keyOf = (r: RecordFields | null | undefined): string | undefined => {
  const k = r && r.length > 5 ? fromMember(r).publicKey : '-';
  return k === '-' ? undefined : k;
};

/** The key of `hostname`'s record that a group entry's own diff replaced (a Mod's before, a Del's record). */
function replacedKey(g: GroupEntry, hostname: string): string | undefined {
  const d = g.proof && proofDiffs(g.proof)?.find((x) => x.file === 'group' && x.lamport === g.lamport);
  if (!d) return undefined;
  const prev = d.op === 'Del' ? d.record : d.op === 'Mod' ? d.before : undefined;
  return prev && prev[0] === hostname ? keyOf(prev) : undefined;
}

/** The keys `origin`'s own record's diff lists as its earlier ones (its chain of rotations,
 * ./key-chain.ts), when that diff is the origin's own. */
function chainedKeys(g: GroupEntry, origin: string): string[] {
  const d = g.proof && proofDiffs(g.proof)?.find((x) => x.file === 'group' && x.lamport === g.lamport);
  return d && d.origin === origin && d.record[0] === origin ? chainKeys(keyChainOf(g.proof!.d!)) : [];
}

/** K2: the keys an entry of `origin` at `lamport` may be signed with, given the origin's group entry:
 * its key, and for an entry older than that record, the key its diff replaced and the keys its
 * chain of rotations lists (an entry signed before a rotation keeps its diff, and its time). */
export function keysFor(origin: string, lamport: number, g: GroupEntry | undefined): string[] {
  if (!g) return [];
  const out: string[] = [];
  const current = keyOf(g.value);
  if (current) out.push(current);
  if (lamport < g.lamport) {
    for (const k of [replacedKey(g, origin), ...chainedKeys(g, origin)]) if (k && !out.includes(k)) out.push(k);
  }
  return out;
}

/** `keys`, and the key the chain of rotations in `e`'s proof leads to from one of them, if any. */
function withChainEnd(e: SnapshotEntry, keys: string[]): string[] {
  const followed = e[5]?.d !== undefined ? followKeyChain(e[4], keyChainOf(e[5].d), keys) : undefined;
  return followed && !keys.includes(followed) ? [...keys, followed] : keys;
}

/** K1: the keys a VM's own group record entry may be signed with; `anchor`: the operator-given key
 * of that VM (./key-anchors.ts), which counts unless the receiver holds its record with a key. */
export function ownRecordKeys(e: SnapshotEntry, held: GroupEntry | undefined, anchor?: string): string[] {
  // The held key (or the anchored one), or the key a chain of rotations leads to from it
  // (./key-chain.ts): the chain is in the origin's signed diff, which must then be signed by that key.
  if (held?.value && keyOf(held.value)) return withChainEnd(e, keysFor(e[4], e[3], held));
  if (anchor) return withChainEnd(e, [anchor]);
  const offered = keyOf(e[2]);
  const previous = replacedKey({ value: e[2], lamport: e[3], proof: e[5] }, e[4]);
  return [offered, previous].filter((k): k is string => !!k);
}

/** Null when `proof` shows that the entry's origin wrote exactly this entry with one of `keys`, else why not. */
export function proofRefusal(e: SnapshotEntry, keys: string[]): string | null {
  const [file, key, value, lamport, origin, proof] = e;
  if (!proof) return 'it carries no signature of its origin';
  const sig = parseSignature(proof.s);
  if (!sig) return 'its signature is malformed';
  if (sig.signer !== origin) return `it is signed by ${sig.signer}, not by its origin ${origin}`;
  if (keys.length === 0) return `its origin ${origin} publishes no key here`;
  if (proof.d === undefined) {
    const bytes = entryBytes(file, key, value, lamport, origin);
    return keys.some((k) => verifyMessage(k, ENTRY_LABEL, bytes, sig.sig)) ? null : `not signed by the key ${origin} publishes`;
  }
  const diffs = proofDiffs(proof);
  if (!diffs) return 'its proof is not a valid diff';
  const d = diffs.find((x) => x.origin === origin && x.lamport === lamport && x.file === file);
  if (!d) return `its proof is a diff of ${origin} that does not write it`;
  const writes = recordKey(file, d.record) === key ? (d.op === 'Del' ? null : d.record) : d.op === 'Mod' && d.before && recordKey(file, d.before) === key ? null : undefined;
  if (writes === undefined || !sameRecord(writes, value)) return `its proof is a diff of ${origin} that does not write it`;
  return keys.some((k) => diffSignedBy(proof, sig.sig, k)) ? null : `not signed by the key ${origin} publishes`;
}

/**
 * The entries (each newer than what the receiver holds) whose origin's proof holds, in their
 * order; `refuse` is told each one left out and why. `held` reads the receiver's group entries.
 */
export function provenEntries(entries: SnapshotEntry[], held: GroupLookup, refuse: (e: SnapshotEntry, why: string) => void, anchors?: ReadonlyMap<string, string>): SnapshotEntry[] {
  const accepted = new Map<string, GroupEntry>();
  const lookup: GroupLookup = (h) => accepted.get(h) ?? held(h);
  const ok = new Set<SnapshotEntry>();
  const judge = (e: SnapshotEntry, keys: string[]) => {
    const why = proofRefusal(e, keys);
    if (why) return refuse(e, why);
    ok.add(e);
    if (e[0] === 'group') accepted.set(e[1], { value: e[2], lamport: e[3], proof: e[5] });
  };
  const isGroup = (e: SnapshotEntry) => e[0] === 'group';
  for (const e of entries) if (isGroup(e) && e[1] === e[4]) judge(e, ownRecordKeys(e, held(e[1]), anchors?.get(e[1])));
  // Another VM's record of an anchored VM (a G4-shaped change, a recovery) must not bring it a key
  // of its own: only the anchored one, or the one its own record in this merge was taken with.
  const anchorRefusal = (e: SnapshotEntry): string | null => {
    const anchor = anchors?.get(e[1]);
    const h = held(e[1]);
    const k = keyOf(e[2]);
    if (!anchor || !k || (h?.value && keyOf(h.value)) || k === anchor || keyOf(accepted.get(e[1])?.value) === k) return null;
    return `it gives ${e[1]} another key than the anchors file does`;
  };
  for (const e of entries) {
    if (!isGroup(e) || e[1] === e[4]) continue;
    const why = anchorRefusal(e);
    if (why) refuse(e, why);
    else judge(e, keysFor(e[4], e[3], lookup(e[4])));
  }
  for (const e of entries) if (!isGroup(e)) judge(e, keysFor(e[4], e[3], lookup(e[4])));
  return entries.filter((e) => ok.has(e));
}

/** The edit an entry's d proof made (its origin's diff, op and before included), if it has one. */
export function proofEdit(e: SnapshotEntry): Diff | undefined {
  const diffs = e[5] ? proofDiffs(e[5]) : null;
  return diffs?.find((x) => x.origin === e[4] && x.lamport === e[3] && x.file === e[0]);
}

/** The time of the origin's signed diff that wrote an entry (its `ts`, covered by the origin's
 * signature), or undefined when its proof is no diff (an entry signature carries no time). */
export function proofTime(e: SnapshotEntry): number | undefined {
  if (!e[5] || !proofDiffs(e[5])) return undefined;
  return (JSON.parse(e[5].d!) as { ts: number }).ts;
}

/** The file of an entry, for messages. */
export const describeEntry = (e: SnapshotEntry): string => `${e[0] as FileName} ${e[1]} (origin ${e[4]}, Lamport ${e[3]})`;
