// A rolling upgrade (issue 15): a cluster where a third of the VMs still speak wire version 1
// (the release before summaries, pulls and relays: `protocolVersion: 1` makes the store behave
// exactly as it did) and the rest version 2 forms, every edit from either kind reaches every VM,
// no version-1 VM is asked to relay, and VMs that were down (one of them restarted as version 2:
// the upgrade itself) catch up until every VM's files are identical.
// 27 light VMs (bench/scale-vm.ts: a Node.js process each running this package's ReplicatedStore,
// the same routes, journal and files as the p2p-store node, without a Node-RED runtime), so that
// the 26 peers of a sender are past the direct fan-out limit (24) and relays are used.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Vm, VmSpec, allEqual, call, killVm, startVm, stopVms, until } from '../../bench/scale-cluster';
import { allocLoopbackRange, LoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { DIRECT_MAX } from '../../lib/sem/fanout';

const N = 27;
/** S2, S5, S8, ...: the VMs not upgraded yet. */
const isOld = (i: number) => i % 3 === 2;

describe('SEM rolling upgrade: wire versions 1 and 2 in one cluster (27 light VMs)', function () {
  this.timeout(600_000);
  let range: LoopbackRange;
  let dir: string;
  const vms: Vm[] = [];
  let specs: VmSpec[] = [];

  before(async () => {
    range = allocLoopbackRange();
    // tmpfs when there is one: 27 journals on one shared disk would measure its fsync queue.
    dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'p2p-rolling-'));
    const ips = range.ips(N);
    const port = await pickPortFreeOnAll(ips);
    specs = ips.map((address, k) => ({
      hostname: `S${k + 1}`,
      address,
      port,
      folder: path.join(dir, `S${k + 1}`),
      // One seed of each version.
      seeds: [ips[0], ips[1]].filter((s) => s !== address),
      syncIntervalMs: 2000,
      // Generous: the test asserts who acknowledges, not how fast, on a shared 2-core machine.
      requestTimeoutMs: 15_000,
      protocolVersion: isOld(k + 1) ? 1 : 2,
    }));
  });

  after(async () => {
    await stopVms(vms);
    range?.release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const edit = (vm: Vm, key: string) => call(vm, { cmd: 'edit', edit: { file: 'realserver', op: 'Add', record: [key, '0.5', '1', 'up'] } }) as Promise<{ acked: number; failed: number; why: string[] }>;
  const byName = (h: string) => vms.find((v) => v.name === h)!;

  it('forms: every VM lists all 27, whatever version it speaks', async () => {
    assert.ok(N - 1 > DIRECT_MAX, 'the sender has more peers than it posts to directly');
    for (const s of specs) vms.push(startVm(s));
    await Promise.all(vms.map((v) => v.started));
    await until('27 members everywhere', 240_000, async () => (await Promise.all(vms.map((v) => call(v, { cmd: 'members' })))).every((m) => m.members === N), 500);
  });

  it('an edit from a version-2 VM (through relays) and from a version-1 VM (direct) is acknowledged by all 26 peers', async () => {
    // Let the version-2 VMs hear every peer's version (version-1 VMs exchange digests with
    // everyone each round; version-2 ones announce theirs in every request and answer).
    await until('S1 heard every version-1 VM', 60_000, async () => {
      const v = (await call(byName('S1'), { cmd: 'versions' })).versions as Record<string, number | undefined>;
      return specs.every((s) => !isOld(Number(s.hostname.slice(1))) || v[s.hostname] === 1);
    }, 500);
    for (const [from, key] of [['S1', 'RS-NEW-1'], ['S2', 'RS-OLD-2'], ['S4', 'RS-NEW-4'], ['S5', 'RS-OLD-5']]) {
      const r = await edit(byName(from), key);
      assert.deepEqual({ acked: r.acked, failed: r.failed }, { acked: N - 1, failed: 0 }, `edit from ${from}: ${r.why.join('; ')}`);
    }
    const missing = await Promise.all(vms.map(async (v) => (await call(v, { cmd: 'missing', file: 'realserver', keys: ['RS-NEW-1', 'RS-OLD-2', 'RS-NEW-4', 'RS-OLD-5'] })).missing as string[]));
    assert.deepEqual(missing.flat(), []);
    // No version-2 VM takes a version-1 VM for a version-2 one.
    for (const v of vms.filter((x) => !isOld(Number(x.name.slice(1))))) {
      const versions = (await call(v, { cmd: 'versions' })).versions as Record<string, number | undefined>;
      for (const [peer, ver] of Object.entries(versions)) if (isOld(Number(peer.slice(1)))) assert.notEqual(ver, 2, `${v.name} thinks ${peer} speaks version 2`);
    }
  });

  it('two VMs down during edits (one comes back upgraded to version 2): every VM ends with identical files', async () => {
    const down = [byName('S8'), byName('S9')]; // version 1 and version 2
    await Promise.all(down.map((v) => killVm(v)));
    for (const [from, key] of [['S3', 'RS-WHILE-3'], ['S11', 'RS-WHILE-11'], ['S7', 'RS-WHILE-7']]) {
      const r = await edit(byName(from), key);
      assert.equal(r.acked, N - 3, `edit from ${from}: acknowledged by every VM still up (${r.why.join('; ')})`);
    }
    // S8 comes back upgraded (the rolling upgrade's next step), S9 as it was.
    for (const v of down) {
      vms.splice(vms.indexOf(v), 1);
      const spec = { ...v.spec, protocolVersion: 2 as const };
      const again = startVm(spec);
      vms.push(again);
      await again.started;
    }
    const ms = await until('identical files on all 27', 120_000, () => allEqual(vms), 250);
    console.log(`      converged ${ms} ms after the two VMs started again`);
    // S8 may still count S9 (started after it) as down at its last contact: such a peer is sent
    // the diff but not waited for (the acknowledgement rule, lib/sem/fanout.ts). Every other peer
    // acknowledges, and every VM ends up holding the edit.
    const r = await edit(byName('S8'), 'RS-UPGRADED-8');
    assert.equal(r.acked + r.failed, N - 1);
    for (const why of r.why) assert.match(why, /^S9: not awaited: unreachable at last contact/, `edit from the upgraded S8: ${r.why.join('; ')}`);
    await until('identical files on all 27 after the upgraded VM edits', 60_000, () => allEqual(vms), 250);
    const missing = await Promise.all(vms.map(async (v) => (await call(v, { cmd: 'missing', file: 'realserver', keys: ['RS-UPGRADED-8', 'RS-WHILE-3', 'RS-WHILE-7', 'RS-WHILE-11'] })).missing as string[]));
    assert.deepEqual(missing.flat(), []);
  });
});
