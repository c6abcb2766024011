// Real ReplicatedStores for unit tests, each on its own loopback address: one temporary folder, one
// SEM port free on every address of the range, store `S<i>` at range.ip(i) with the cluster secret,
// warnings swallowed, requests given 10 s. close() stops every store made and removes the range and
// the folder.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore, type StoreOptions } from '../../lib/sem/replicated-store';
import { allocLoopbackRange, pickPortFreeOnAll, type LoopbackRange } from '../../harness/net';
import { waitFor } from '../../harness/wait';

export class LoopbackStores {
  /** Every store made, in order (a store made again for the same VM is added again). */
  readonly made: ReplicatedStore[] = [];

  private constructor(
    readonly range: LoopbackRange,
    readonly base: string,
    readonly port: number,
    private readonly secret: string,
  ) {}

  /** A range and a port free on its first `addresses` addresses. */
  static async open(addresses: number, secret: string, prefix: string): Promise<LoopbackStores> {
    const range = allocLoopbackRange();
    try {
      const port = await pickPortFreeOnAll(range.ips(addresses));
      return new LoopbackStores(range, fs.mkdtempSync(path.join(os.tmpdir(), `p2p-${prefix}-`)), port, secret);
    } catch (e) {
      range.release();
      throw e;
    }
  }

  /** Store `hostname` (default S<host>) at range.ip(host), not started; `o` overrides the defaults. */
  store(host: number, o: Partial<StoreOptions> & { hostname?: string } = {}): ReplicatedStore {
    const { hostname = `S${host}`, ...rest } = o;
    const s = new ReplicatedStore({
      identity: { hostname, address: this.range.ip(host), realServer: 'RS1', services: '-' },
      folder: path.join(this.base, hostname),
      secret: this.secret,
      port: this.port,
      seeds: [],
      // All the stores of a test share one event loop: on a loaded machine a request can wait
      // longer than the product's 2 s default without anything being wrong (no test here is
      // about a request timing out; one that is passes its own).
      requestTimeoutMs: 10_000,
      ...rest,
    });
    s.on('warning', () => undefined);
    this.made.push(s);
    return s;
  }

  /** Starts `stores`, has each exchange with its peers once, and waits until every one lists all
   *  of them and all hold identical files. */
  async formIdentical(stores: ReplicatedStore[]): Promise<void> {
    for (const s of stores) await s.start();
    for (const s of stores) await s.syncAll();
    await waitFor(() => stores.every((s) => s.records('group').length === stores.length && s.digest() === stores[0].digest()), {
      what: `${stores.length} identical members`,
      timeoutMs: 30_000,
    });
  }

  async close(): Promise<void> {
    for (const s of this.made) await s.stop().catch(() => undefined);
    this.range.release();
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}
