// How a store authenticates its SEM answers and checks the answers it gets (docs/security.md,
// "Answers by pair key"): the three callbacks replicated-store.ts hands to SemServer (`sign`) and
// SemClient (`checkAnswer`, the request's pair header).
//
// The VM asked answers by the pair key of (itself, the requester) (./pair-key.ts) when the
// request names a pair whose keys are the ones its own group file publishes for both; otherwise it
// signs with its Ed25519 key, as before (a requester of an older release sends no pair header; one
// whose newest key has not reached this VM yet names a pair this VM does not know). The requester
// takes an answer from a target that is a member:
//   - authenticated by the pair key it computes from its own X25519 key and the key the target's
//     group record publishes, by the member at the address it asked; or
//   - signed by the Ed25519 key that record publishes (always acceptable: a signature is at least
//     as strong against an insider as a pair key, so this is no downgrade; it only costs more);
//   - never the cluster MAC alone once that record publishes a key, nor an answer signed under a
//     name outside the group file at the address of such a member (a seed not yet in the group
//     file is taken on the MAC alone, as before: bootstrap).
import { fromMember, type Member } from '../records/records';
import { PAIR_HEADER, PairKeys, pairRequest, pairTag, parsePairRequest, parsePairTag, verifyPairTag } from './pair-key';
import { parseSignature, signMessage, verifyMessage, type VmKey } from './vm-key';
import type { RecordFields } from '../records/files';

export { PAIR_HEADER };

export interface AnswerAuthOptions {
  /** This VM's hostname now. */
  hostname(): string;
  /** The Ed25519 key an answer of this body is signed with (the store's: during an identity
   * switch, the old name's for a while, and then no pair key is used). */
  signingKey(text: string): VmKey;
  /** This VM's X25519 key, or undefined when it does not answer by pair key (wire security off,
   * or a store held at a wire version below 3). */
  dhKey(): VmKey | undefined;
  /** A member's group record. */
  record(hostname: string): RecordFields | undefined;
  /** Every group record (to find the member at an address). */
  records(): RecordFields[];
  /** A number that changes whenever a group record changes (the replica's revision of the group
   * file): members are read once per revision, not once per answer. Unset: read at each use. */
  revision?(): number;
}

export class AnswerAuth {
  private readonly keys = new PairKeys();
  /** Answers accepted so far, by how they were authenticated (tests, benches). */
  readonly accepted = { pair: 0, signed: 0, macOnly: 0 };
  /** Address -> hostname of the members, checked against the record at each use, rebuilt when stale. */
  private byAddress = new Map<string, string>();

  constructor(private readonly o: AnswerAuthOptions) {}

  /** Members read at `revision`. An answer's checks read the requester's and the signer's
   * records: five answers per edit each built two Members from copies of their records (issue 16,
   * the sender's allocation per edit). Any change of the group file changes the revision and
   * empties this, so a cached Member is never older than its record. Only names the group file
   * holds are kept (a name from a header that is no member is not: this holds at most the group). */
  private members = new Map<string, Member>();
  private membersAt = -1;

  /** A member's record as a Member, or undefined. */
  private member(hostname: string): Member | undefined {
    const rev = this.o.revision?.();
    if (rev === undefined) {
      const r = this.o.record(hostname);
      return r ? fromMember(r) : undefined;
    }
    if (rev !== this.membersAt) {
      this.members.clear();
      this.membersAt = rev;
    }
    let m = this.members.get(hostname);
    if (m === undefined) {
      const r = this.o.record(hostname);
      if (!r) return undefined;
      m = fromMember(r);
      this.members.set(hostname, m);
    }
    return m;
  }

  /** This VM's X25519 key when its own group record publishes it (peers can agree on nothing else). */
  private ownDh(): { key: VmKey; me: string } | undefined {
    const key = this.o.dhKey();
    if (!key) return undefined;
    const me = this.o.hostname();
    if (key.hostname !== me || this.member(me)?.dhKey !== key.publicKey) return undefined;
    return { key, me };
  }

  private memberAt(address: string): Member | undefined {
    const known = this.byAddress.get(address);
    const m = known !== undefined ? this.member(known) : undefined;
    if (m && m.address === address) return m;
    this.byAddress = new Map(this.o.records().map((r) => fromMember(r)).map((x) => [x.address, x.hostname]));
    const h = this.byAddress.get(address);
    return h !== undefined ? this.member(h) : undefined;
  }

  /** The pair header of a request to `address` (SemClient), or undefined when no pair key applies. */
  requestHeader(address: string): string | undefined {
    const own = this.ownDh();
    if (!own) return undefined;
    const m = this.memberAt(address);
    if (!m || m.hostname === own.me || m.dhKey === '-') return undefined;
    const pair = this.keys.get(own.key, own.me, m);
    return pair ? pairRequest(own.me, pair.id) : undefined;
  }

  /** The `x-p2p-sig` value of an answer (SemServer `sign`): by pair key when the request's pair
   * header names the pair this VM's group file gives, else this VM's Ed25519 signature. */
  sign(label: string, text: string, pairHeader?: string): string {
    const signing = this.o.signingKey(text);
    const asked = parsePairRequest(pairHeader);
    const own = asked ? this.ownDh() : undefined;
    if (asked && own && signing.hostname === own.me && asked.requester !== own.me) {
      const m = this.member(asked.requester);
      const pair = m && m.dhKey !== '-' ? this.keys.get(own.key, own.me, m) : null;
      if (pair && pair.id === asked.id) return pairTag(pair.key, asked.requester, own.me, label, text);
    }
    return signMessage(signing, label, text);
  }

  /** Why an answer from `address` is not acceptable, or null (SemClient `checkAnswer`). */
  check(address: string, label: string, text: string, header: string | undefined): string | null {
    const tag = parsePairTag(header);
    if (tag) {
      const m = this.member(tag.signer);
      if (!m) return `an answer by pair key from ${tag.signer}, which is not in the group file`;
      if (m.address !== address) return `answered by ${tag.signer}, whose address is ${m.address}, not ${address}`;
      const own = this.ownDh();
      const pair = own && m.dhKey !== '-' ? this.keys.get(own.key, own.me, m) : null;
      if (!own || !pair) return `an answer by pair key from ${tag.signer}, but there is no pair key of ${this.o.hostname()} and ${tag.signer}`;
      if (!verifyPairTag(pair.key, own.me, tag.signer, label, text, tag.mac)) return `not authenticated by the pair key of ${own.me} and ${tag.signer}`;
      this.accepted.pair++;
      return null;
    }
    const sig = parseSignature(header);
    if (!sig) return 'the answer carries no VM signature';
    const m = this.member(sig.signer);
    if (m && m.address !== address) return `signed by ${sig.signer}, whose address is ${m.address}, not ${address}`;
    if (!m) {
      // A seed not in the group file yet: the MAC alone (bootstrap). Not at a member's address
      // when that member publishes a key: there only that member answers (else an insider on the
      // path could acknowledge in its place under an unknown name).
      const at = this.memberAt(address);
      if (at && at.publicKey !== '-') return `signed by ${sig.signer}, which is not in the group file, at ${address}, where ${at.hostname} answers`;
    }
    if (!m || m.publicKey === '-') {
      // A seed not in the group file yet, or a member without a published key: the MAC alone.
      this.accepted.macOnly++;
      return null;
    }
    if (!verifyMessage(m.publicKey, label, text, sig.sig)) return `not signed by the key ${sig.signer} publishes`;
    this.accepted.signed++;
    return null;
  }

  /** A member's group record changed or went: its pair key is agreed again at its next use. */
  forget(hostname: string): void {
    this.keys.forget(hostname);
    if (hostname === this.o.hostname()) this.keys.clear();
  }

  /** Pair keys held (one per peer at most). */
  retained(): number {
    return this.keys.size;
  }
}
