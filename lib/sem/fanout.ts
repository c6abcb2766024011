// How an edit reaches every peer (issue 16). Up to DIRECT_MAX peers the sender posts the diff to
// each of them, as the note does. Past that it travels along a tree, so the sender's work per edit
// is bounded by BRANCH requests whatever the cluster size:
//
//   the other members, in natural hostname order rotated to start after the sender (each sender
//   gets a different tree, so relaying work spreads), are cut into BRANCH contiguous chunks; the
//   first reachable member of each chunk is its relay and gets the diff with the rest of its chunk
//   as its subtree (`relay` message); a relay applies the diff, then does the same with its
//   subtree (posting directly once the subtree has DIRECT_MAX members or fewer) and answers with
//   the acknowledgements of its whole subtree. A relay passes the diff on while it applies it
//   itself (both wait only for the message's authentication), so a level costs one hop, not one
//   hop plus an fdatasync. With 24 and 7: direct up to 25 VMs, one relay level up to ~175 VMs.
//
// Transport: `post` is the store's SemClient, which sends diffs and relay messages as frames on a
// persistent stream per peer (./sem-stream.ts) and over HTTP POST to a peer without streams; the
// messages, answers and the rules below are the same on both.
//
// Rolling upgrades (issue 15): only a peer known to speak wire version 2 is chosen as a relay (a
// version-1 store has no relay route); a version-1 peer inside a subtree gets the plain diff from
// its relay, as from any sender. A relay that answers "no route" is not chosen again.
//
// Signatures (issue 14 with 16): the origin signs the diff's bytes once; a relay message carries
// those bytes and that signature unchanged inside a message the relay's sender signs, and every
// receiver, relay or not, checks the origin's signature itself. A relay therefore cannot alter a
// diff or make one up in another VM's name; what it can do is drop it (the peer is then not
// acknowledged and anti-entropy repairs it) or claim an acknowledgement, which counts only for
// members of the subtree it was given, in an answer signed with its own key.
//
// Acknowledgement rule (the same at any N): an edit counts as acknowledged by peer P when P has
// applied it durably (its journal fdatasync returned), or P answered that it already held the
// diff's effect on disk (409 contained). P says so in its own authenticated answer; a relay lists P
// in its answer only after P's (or P's relay's) authenticated answer did. The sender accepts from
// a relay acknowledgements only for members of the subtree it gave that relay. A peer not listed
// is failed: it is not retried, anti-entropy brings the edit to it. When a relay does not answer,
// its subtree is sent again directly from the level above (one more level of relays), so one dead
// VM costs the edit one timeout, not its whole subtree. A peer that failed at its last contact
// (known down) is still sent the diff but never chosen as a relay and never awaited.
import type { PeerAck, PeerFailure } from '../records/cluster-api';
import { NAME_RE } from '../records/files';
import { naturalCompare } from '../records/natural-sort';
import { LIMITS, PROTOCOL_VERSION, ProtocolError, parseJson } from './sem-protocol';

export const DIFF_PATH = '/p2p/sem/diff';
export const RELAY_PATH = '/p2p/sem/relay';
/** Up to this many peers, the sender posts to every one of them. */
export const DIRECT_MAX = 24;
/** Children per relay level. */
export const BRANCH = 7;
/** A relay message: one diff and a list of hostnames. */
export const RELAY_LIMIT_BYTES = LIMITS.diffBytes + 256 * 1024;

export interface Peer {
  hostname: string;
  address: string;
}

export interface FanoutResult {
  acked: PeerAck[];
  failed: PeerFailure[];
}

/** A diff message as its origin encoded it, with the origin's `x-p2p-sig` value (absent when the
 * wire is insecure). */
export interface SignedDiff {
  body: string;
  signature?: string;
}

export interface RelayMessage {
  v: number;
  type: 'relay';
  from: string;
  /** The diff message exactly as its origin encoded it. */
  diff: string;
  /** Its origin's signature of `POST /p2p/sem/diff` + `diff`, passed on unchanged. */
  signature?: string;
  /** Hostnames only: a relay posts to the addresses of its own group file, never to an address
   * a message names. */
  subtree: string[];
}

/** What the fan-out needs from its store: requests, and its record of who answered lately. */
export interface FanoutDeps {
  self: string;
  port: number;
  /** Deadline of one direct request, ms; a relay request gets one more of these per level below. */
  timeoutMs: number;
  /** POST `body`; `signature` given: sent as the request's signature instead of this VM's own. */
  post(target: { address: string; port: number }, path: string, body: string, opts: { timeoutMs: number; signature?: string }): Promise<unknown>;
  /** True when the error is a peer's authenticated "I already hold this diff's effect". */
  isContained(err: unknown): boolean;
  peerOk(name: string): void;
  peerFailed(name: string, error: string): void;
  knownDown(name: string): string | undefined;
  /** True when the peer may relay (it speaks wire version 2: sem-protocol WIRE_VERSION). */
  canRelay(name: string): boolean;
  /** True when the error is "no such route" (a peer of wire version 1 asked to relay). */
  isNoRoute(err: unknown): boolean;
  /** The peer turned out not to relay: never choose it again. */
  cannotRelay(name: string): void;
}

/** The other members in natural order, starting after `self` (a rotation, so trees differ by sender). */
export function ringAfter(self: string, peers: readonly Peer[]): Peer[] {
  const sorted = peers.filter((p) => p.hostname !== self).sort((a, b) => naturalCompare(a.hostname, b.hostname));
  const i = sorted.findIndex((p) => naturalCompare(p.hostname, self) > 0);
  return i <= 0 ? sorted : [...sorted.slice(i), ...sorted.slice(0, i)];
}

/** `list` cut into at most `k` contiguous chunks of nearly equal size. */
export function chunks<T>(list: T[], k: number): T[][] {
  const out: T[][] = [];
  const n = Math.min(k, list.length);
  for (let i = 0, start = 0; i < n; i++) {
    const size = Math.floor(list.length / n) + (i < list.length % n ? 1 : 0);
    out.push(list.slice(start, start + size));
    start += size;
  }
  return out;
}

/** Relay levels below a sender of `n` peers (0: direct). */
export function levels(n: number): number {
  return n <= DIRECT_MAX ? 0 : 1 + levels(Math.ceil((n - BRANCH) / BRANCH));
}

export function encodeRelay(from: string, diff: SignedDiff, subtree: Peer[]): string {
  const m: RelayMessage = { v: PROTOCOL_VERSION, type: 'relay', from, diff: diff.body, signature: diff.signature, subtree: subtree.map((p) => p.hostname) };
  return JSON.stringify(m);
}

export function decodeRelay(body: string): RelayMessage {
  const o = parseJson(body);
  if (o.v !== PROTOCOL_VERSION || o.type !== 'relay') throw new ProtocolError('unsupported message');
  if (typeof o.from !== 'string' || !NAME_RE.test(o.from)) throw new ProtocolError('malformed relay: bad from');
  if (typeof o.diff !== 'string' || Buffer.byteLength(o.diff) > LIMITS.diffBytes) throw new ProtocolError('malformed relay: diff');
  if (o.signature !== undefined && (typeof o.signature !== 'string' || o.signature.length > 512)) throw new ProtocolError('malformed relay: signature');
  if (!Array.isArray(o.subtree) || o.subtree.length > 10_000) throw new ProtocolError('malformed relay: subtree');
  for (const p of o.subtree) if (typeof p !== 'string' || !NAME_RE.test(p)) throw new ProtocolError('malformed relay: subtree member');
  return o as unknown as RelayMessage;
}

/** A relay's answer, keeping only acknowledgements of members of the subtree it was given. */
function readRelayAnswer(reply: unknown, relay: Peer, subtree: Peer[], ms: number): FanoutResult {
  const o = reply as { acked?: unknown; failed?: unknown } | null;
  const allowed = new Map(subtree.map((p) => [p.hostname, p]));
  const acked: PeerAck[] = [{ peer: relay.hostname, address: relay.address, ms }];
  const failed: PeerFailure[] = [];
  const seen = new Set<string>();
  for (const a of Array.isArray(o?.acked) ? o!.acked : []) {
    const p = allowed.get(String((a as { peer?: unknown })?.peer));
    if (p && !seen.has(p.hostname)) {
      seen.add(p.hostname);
      acked.push({ peer: p.hostname, address: p.address, ms });
    }
  }
  for (const p of subtree) {
    if (seen.has(p.hostname)) continue;
    const f = (Array.isArray(o?.failed) ? o!.failed : []).find((x) => (x as { peer?: unknown })?.peer === p.hostname) as { error?: unknown } | undefined;
    failed.push({ peer: p.hostname, address: p.address, error: typeof f?.error === 'string' ? f.error : `not acknowledged by relay ${relay.hostname}` });
  }
  return { acked, failed };
}

export class Fanout {
  constructor(private readonly deps: FanoutDeps) {}

  /**
   * Send one diff (its encoded body) to `peers`, directly or along a tree; see the header. `direct`:
   * VMs that are no members (a recovery's resumed OD: replicated-store.ts addEditDestinations),
   * always posted to by this VM itself, since a relay reaches only the members of its own group file.
   */
  async send(diff: SignedDiff, peers: readonly Peer[], direct: readonly Peer[] = []): Promise<FanoutResult> {
    if (peers.length <= DIRECT_MAX) return this.direct(diff, direct.length ? [...peers, ...direct] : peers);
    const results = await Promise.all([...chunks(ringAfter(this.deps.self, peers), BRANCH).map((c) => this.viaRelay(diff, c)), this.direct(diff, direct)]);
    return { acked: results.flatMap((r) => r.acked), failed: results.flatMap((r) => r.failed) };
  }

  private direct(diff: SignedDiff, peers: readonly Peer[]): Promise<FanoutResult> {
    const acked: PeerAck[] = [];
    const failed: PeerFailure[] = [];
    const waits: Promise<void>[] = [];
    // One options object for every peer (the same deadline and origin signature).
    const opts = { timeoutMs: this.deps.timeoutMs, signature: diff.signature };
    for (const p of peers) {
      const down = this.deps.knownDown(p.hostname);
      if (down) {
        // Still sent, but not waited for: a dead VM still in the group (until its failure is
        // handled) must not slow every edit down to the request timeout.
        void this.postDiff(diff.body, opts, p, undefined, undefined);
        failed.push({ peer: p.hostname, address: p.address, error: `not awaited: unreachable at last contact (${down})` });
        continue;
      }
      waits.push(this.postDiff(diff.body, opts, p, acked, failed));
    }
    return Promise.all(waits).then(() => ({ acked, failed }));
  }

  /** Post the diff to one peer; its outcome is pushed to `acked` or `failed` (when given) as it
   * comes. A promise chain rather than async functions: one per peer per edit, each async frame and
   * await an allocation of the sender's (issue 16). Never rejects. */
  private postDiff(body: string, opts: { timeoutMs: number; signature?: string }, p: Peer, acked: PeerAck[] | undefined, failed: PeerFailure[] | undefined): Promise<void> {
    const t = performance.now();
    let sent: Promise<unknown>;
    try {
      sent = this.deps.post({ address: p.address, port: this.deps.port }, DIFF_PATH, body, opts);
    } catch (e) {
      sent = Promise.reject(e);
    }
    return sent.then(
      () => {
        this.deps.peerOk(p.hostname);
        acked?.push({ peer: p.hostname, address: p.address, ms: performance.now() - t });
      },
      (e: unknown) => {
        if (this.deps.isContained(e)) {
          this.deps.peerOk(p.hostname);
          acked?.push({ peer: p.hostname, address: p.address, ms: performance.now() - t });
          return;
        }
        const error = (e as Error).message;
        this.deps.peerFailed(p.hostname, error);
        failed?.push({ peer: p.hostname, address: p.address, error });
      },
    );
  }

  /** One chunk: its first reachable member relays to the rest; if it fails, the rest go one level down from here. */
  private async viaRelay(diff: SignedDiff, chunk: Peer[]): Promise<FanoutResult> {
    const i = chunk.findIndex((p) => !this.deps.knownDown(p.hostname) && this.deps.canRelay(p.hostname));
    if (i < 0 || chunk.length === 1) return this.direct(diff, chunk);
    const relay = chunk[i];
    const subtree = chunk.filter((_, j) => j !== i);
    const t = performance.now();
    try {
      const reply = await this.deps.post(
        { address: relay.address, port: this.deps.port },
        RELAY_PATH,
        encodeRelay(this.deps.self, diff, subtree),
        { timeoutMs: this.deps.timeoutMs * (2 + levels(subtree.length)) },
      );
      this.deps.peerOk(relay.hostname);
      return readRelayAnswer(reply, relay, subtree, performance.now() - t);
    } catch (e) {
      if (this.deps.isNoRoute(e)) {
        // A version-1 store (rolled back, or not heard from since): it gets the diff directly.
        this.deps.cannotRelay(relay.hostname);
        return this.send(diff, chunk);
      }
      const error = (e as Error).message;
      this.deps.peerFailed(relay.hostname, error);
      const rest = await this.send(diff, subtree);
      return { acked: rest.acked, failed: [{ peer: relay.hostname, address: relay.address, error }, ...rest.failed] };
    }
  }
}
