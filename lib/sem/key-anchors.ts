// Operator-given key anchors for a newcomer (docs/security.md, rule 10, "Bootstrap"). A VM that
// holds nothing of another VM trusts the first self-signed group record it gets for it: an insider
// that is its seed could hand it a record of S1 with a key of the insider's making. The operator,
// who can read every member's files, may give a newcomer the members' keys beforehand: a copy of a
// member's group file as `<files folder>/.keys/anchors` (`p2p-ha init --trust-group FILE` writes
// it). For a hostname listed there with a key, whose record this VM does not hold with a key
// (nothing held, a tombstone, a record without key), its own group record is then taken (merged,
// or as a live join diff) only when signed by that key, or by the key a chain of rotations
// (./key-chain.ts) leads to from it, and a record of it written by another VM only when it gives
// it that key; once this VM holds its record with a key, that key governs as for every VM.
// Hostnames not listed (members that joined after the copy) are trusted on first use, as before.
// A member rebuilt with a new key (not a rotation) after a deletion is refused by a VM whose
// anchors list it: the operator removes or replaces its line there.
import * as fs from 'fs';
import * as path from 'path';
import { formatFile, parseFile } from '../records/files';
import { fromMember } from '../records/records';
import { keyFolder } from './vm-key';

export const anchorsFile = (folder: string) => path.join(keyFolder(folder), 'anchors');

/** The keys a group file's text publishes, by hostname (records without a key left out); throws
 * RecordError on a malformed file. */
export function keysOfGroupText(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of parseFile('group', text)) {
    const m = fromMember(r);
    if (m.publicKey !== '-') out.set(m.hostname, m.publicKey);
  }
  return out;
}

/** The anchors of this files folder (none when there is no anchors file); throws on a malformed one. */
export function loadKeyAnchors(folder: string): Map<string, string> {
  const file = anchorsFile(folder);
  if (!fs.existsSync(file)) return new Map();
  try {
    return keysOfGroupText(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message} (a copy of a member's group file is expected)`);
  }
}

/** The anchors file's text for a member's group file: its records that publish a key. Throws
 * when the text is not a group file or publishes no key. */
export function anchorsText(groupText: string): string {
  const records = parseFile('group', groupText).filter((r) => fromMember(r).publicKey !== '-');
  if (!records.length) throw new Error('the group file lists no member with a key');
  return formatFile('group', records);
}
