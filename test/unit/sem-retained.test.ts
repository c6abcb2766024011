// Memory of the SEM path (issue 16): what a store keeps between edits must not grow with the
// number of edits. Three real stores on loopback exchange a few thousand edits (the same record
// modified over and over, and a small set of keys added and deleted); every count the store
// reports (replica entries, tombstones, replay guard window, journal backlog, log buffer, peer
// state, sockets, listeners) is compared after a warm-up and after many more edits. Counts, not
// bytes or times: the test is deterministic on a busy machine. Anti-entropy is slowed down so it
// cannot hide growth by resetting the replay guard.
import { strict as assert } from 'assert';
import { FILE_NAMES } from '../../lib/records/files';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ReplicatedStore } from '../../lib/sem/replicated-store';
import type { Edit } from '../../lib/records/cluster-api';
import { allocLoopbackRange, pickPortFreeOnAll, LoopbackRange } from '../../harness/net';

const WARMUP = 300;
const MORE = 1500;
/** A bounded key space: available-od records OD0..OD9 come and go. */
const KEYS = 10;

describe('SEM retained state is bounded by the cluster, not by the number of edits', function () {
  this.timeout(180_000);
  let dir: string;
  let range: LoopbackRange;
  let stores: ReplicatedStore[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-retained-'));
    range = allocLoopbackRange();
    const ips = range.ips(3);
    const port = await pickPortFreeOnAll(ips);
    stores = ips.map(
      (ip, i) =>
        new ReplicatedStore({
          identity: { hostname: `S${i + 1}`, address: ip, realServer: 'RS1', services: '-' },
          folder: path.join(dir, `S${i + 1}`),
          port,
          secret: 'retained-secret',
          seeds: ips,
          syncIntervalMs: 600_000,
        }),
    );
    await Promise.all(stores.map((s) => s.start()));
    // The first start may race the others' listeners: one more round so everyone knows everyone.
    await Promise.all(stores.map((s) => s.syncAll()));
  });

  after(async () => {
    await Promise.all(stores.map((s) => s.stop()));
    range?.release();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  let prev: string[] | null = null;
  const present = new Set<number>();
  /** Edit number i: S1 modifies its realserver record; every third edit S2 adds or deletes an OD. */
  async function edits(count: number): Promise<void> {
    for (let i = 0; i < count; i++, n++) {
      const record = ['RS1', (n / 1000).toFixed(3), String(n % 50), 'up'];
      const e: Edit = prev ? { file: 'realserver', op: 'Mod', before: prev, record } : { file: 'realserver', op: 'Add', record };
      const r = await stores[0].edit(e);
      assert.equal(r.failed.length, 0, JSON.stringify(r.failed));
      prev = record;
      if (n % 3 === 0) {
        const k = n % KEYS;
        const od = [`OD${k}`, `127.0.2.${k + 1}`, 'RS1'];
        await stores[1].edit({ file: 'available-od', op: present.has(k) ? 'Del' : 'Add', record: od });
        if (present.has(k)) present.delete(k);
        else present.add(k);
      }
    }
  }

  it('every count after 1800 edits is at most what it was after 300', async () => {
    await edits(WARMUP);
    const before = stores.map((s) => s.retained());
    await edits(MORE);
    const after = stores.map((s) => s.retained());
    for (let i = 0; i < stores.length; i++) {
      for (const [name, v] of Object.entries(after[i])) {
        // The log's write buffer drains asynchronously: bounded by its cap, not by the warm-up.
        // Likewise the text files behind the state (rewritten within an interval): at most the six.
        const bound = name === 'logBufferedBytes' ? 1024 * 1024 + 4096 : name === 'textsBehind' ? FILE_NAMES.length : before[i][name];
        assert.ok(v <= bound, `S${i + 1} ${name}: ${before[i][name]} after ${WARMUP} edits, ${v} after ${WARMUP + MORE}`);
      }
      // The replay guard remembers only out-of-order numbers: in-order diffs leave nothing behind.
      assert.ok(after[i].guardWindow <= 8, `S${i + 1} guard window ${after[i].guardWindow}`);
      assert.ok(after[i].tombstones <= KEYS, `S${i + 1} tombstones ${after[i].tombstones}`);
    }
    assert.equal(stores[2].digest(), stores[0].digest());
  });
});
