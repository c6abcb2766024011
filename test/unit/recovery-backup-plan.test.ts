// The backup plan's branches over an in-memory replica and a scripted driver that fails with the
// driver's outcome kinds (lib/records/hv-outcome.ts): a normal recovery, the host unreachable (one
// confirmation is not enough, two are, and the isolation gate must agree), a lost OD race, a
// failing or missing installation procedure, and every error leaving the problem record `failed`
// with its kind.
import { strict as assert } from 'assert';
import type { IsolationGate, IsolationVerdict } from '../../lib/records/cluster-api';
import { confirmers, isUnreachable, reasonField, RecoveryError, runBackupPlan, PlanDriver, StepEvent } from '../../lib/recovery/backup-plan';
import { MemoryFiles } from '../support/memory-files';
import { domainsByHost, fourOds, sixVmGroup, threeHosts } from '../support/plan-fixture';

class HvLikeError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly exitCode?: number,
  ) {
    super(message);
  }
}

/** A gate that says ok (the monitor layer's rule is tested there). */
const OPEN_GATE: IsolationGate = { check: () => ({ ok: true, detail: 'majority 4/6; S2 unseen 7 s' }) };

/** A driver over a domain table, with failures to inject. */
class FakeDriver implements PlanDriver {
  readonly calls: string[] = [];
  unreachable = false;
  /** Every command fails as on a host without virsh (exit 127, `command -v virsh` fails). */
  noVirsh = false;
  scriptFails?: string;
  missing = new Set<string>();
  autostart = new Map<string, boolean>();
  constructor(readonly domains: Map<string, string>) {}
  private reach(what: string) {
    this.calls.push(what);
    if (this.unreachable) throw new HvLikeError('unreachable', 'connect ECONNREFUSED');
    if (this.noVirsh && !what.startsWith('run ')) throw new HvLikeError('program-missing', 'virsh is not installed', 127);
  }
  private absent(name: string) {
    // The words a real virsh prints; the kind is what the plan must read.
    return new HvLikeError('domain-absent', `error: failed to get domain '${name}'`, 1);
  }
  async destroy(name: string) {
    this.reach(`destroy ${name}`);
    const s = this.domains.get(name);
    if (s === undefined) throw this.absent(name);
    if (s === 'shut off') throw new HvLikeError('failed', 'error: Requested operation is not valid: domain is not running', 1);
    this.domains.set(name, 'shut off');
  }
  async autostartOff(name: string) {
    this.reach(`autostart-off ${name}`);
    if (!this.domains.has(name)) throw this.absent(name);
    this.autostart.set(name, false);
  }
  async domstate(name: string) {
    this.reach(`domstate ${name}`);
    const s = this.domains.get(name);
    if (s === undefined) throw this.absent(name);
    return s;
  }
  async resume(name: string) {
    this.reach(`resume ${name}`);
    if (this.domains.get(name) !== 'paused') throw new HvLikeError('failed', `error: domain '${name}' not paused`, 1);
    this.domains.set(name, 'running');
  }
  async suspend(name: string) {
    this.reach(`suspend ${name}`);
    if (this.domains.get(name) !== 'running') throw new HvLikeError('failed', `error: domain '${name}' not running`, 1);
    this.domains.set(name, 'paused');
  }
  async runFile(path: string, vars?: Record<string, string | number>) {
    this.reach(`run ${path} ${JSON.stringify(vars)}`);
    if (this.missing.has(path)) throw new HvLikeError('procedure-absent', `${path}: no such file (test -f)`, 2);
    if (this.scriptFails) throw new HvLikeError('procedure-failed', this.scriptFails, 3);
    return { stdout: '', stderr: '', code: 0 };
  }
}

const ME = { hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: '-' };

function world() {
  const files = new MemoryFiles(ME, {
    group: sixVmGroup(),
    realserver: threeHosts(),
    'available-od': fourOds(),
    problem: [['S2', 'S1', 'network', 'confirmed', '-', new Date().toISOString()]],
  });
  const hosts = new Map<string, FakeDriver>(domainsByHost().map(([rs, d]) => [rs, new FakeDriver(d)]));
  const steps: StepEvent[] = [];
  const roles: unknown[] = [];
  let clock = 1_000_000;
  const deps = {
    files,
    driver: (rs: string) => hosts.get(rs),
    isolation: OPEN_GATE as IsolationGate | undefined,
    assignRole: async (r: unknown) => {
      roles.push(r);
    },
    now: () => clock,
    // Fake time, but a real turn of the event loop, so a test can edit the files while the plan waits.
    sleep: async (ms: number) => {
      clock += ms;
      await new Promise((r) => setImmediate(r));
    },
    onStep: (e: StepEvent) => steps.push(e),
  };
  return { files, hosts, steps, roles, deps, advance: (ms: number) => (clock += ms) };
}

describe('recovery backup plan', () => {
  it('Fig. 1: fences S2, resumes the OD of the least loaded real server, installs, gives the role, edits the files', async () => {
    const w = world();
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1', kind: 'network' }, w.deps);
    assert.equal(r.fence, 'destroyed');
    assert.equal(w.hosts.get('RS2')!.domains.get('S2'), 'shut off');
    assert.deepEqual([r.realServer, r.od, r.backup, r.address], ['RS3', 'OD3', 'S2b', '127.0.2.3']);
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'running');
    const run = w.hosts.get('RS3')!.calls.find((c) => c.startsWith('run '))!;
    assert.match(run, /^run \/var\/lib\/p2p-ha\/install\/S2\.sh /);
    assert.deepEqual(JSON.parse(run.slice(run.indexOf('{'))), {
      TARGET: 'S2', TARGET_ADDRESS: '127.0.1.2', BACKUP: 'S2b', BACKUP_ADDRESS: '127.0.2.3', OD: 'OD3', REAL_SERVER: 'RS3', SERVICES: 'tcp:80',
    });
    assert.deepEqual(w.roles, [{ target: 'S2', backup: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', od: 'OD3' }]);
    // S2 is no longer a member: it stays in the group as fenced (out of the ring, stays out if it boots).
    assert.deepEqual(w.files.get('group', 'S2'), ['S2', '127.0.1.2', 'RS2', 'tcp:80', 'fenced']);
    assert.equal(w.hosts.get('RS2')!.autostart.get('S2'), false, 'autostart turned off');
    assert.equal(w.files.get('realserver', 'RS2')![3], 'up', 'a host that answered is not marked down');
    assert.deepEqual(w.files.get('group', 'S2b'), ['S2b', '127.0.2.3', 'RS3', 'tcp:80']);
    assert.ok(!w.files.get('available-od', 'OD3'));
    assert.deepEqual(w.files.get('problem', 'S2')!.slice(0, 5), ['S2', 'S1', 'network', 'recovered', 'S2b']);
    // Reported as it happened: place and resume ran beside the fence and say so.
    assert.deepEqual(new Set(w.steps.map((s) => s.step)), new Set(['fence', 'place', 'resume', 'install', 'role', 'edits', 'recovered']));
    assert.deepEqual(w.steps.filter((s) => s.parallel === 'fence').map((s) => s.step), ['place', 'resume']);
    assert.deepEqual(w.steps.slice(-2).map((s) => s.step), ['edits', 'recovered']);
    assert.ok(w.steps.findIndex((s) => s.step === 'fence') < w.steps.findIndex((s) => s.step === 'install'));
    // The problem record went through fencing and recovering first (rewritten in a status to record the OD).
    assert.deepEqual([...new Set(w.files.applied.filter((e) => e.file === 'problem').map((e) => e.record[3]))], ['fencing', 'recovering', 'recovered']);
  });

  it('the backup joining the group by itself an instant before the edits is not an error', async () => {
    const w = world();
    w.deps.assignRole = async () => {
      // The backup's own store joins (autoJoin) as the role is deployed.
      await w.files.edit({ file: 'group', op: 'Add', record: ['S2b', '127.0.2.3', 'RS3', 'tcp:80'] });
    };
    const files = w.files;
    const orig = files.editBatch.bind(files);
    // A peer deleted the used OD first, too: the commit's batch is refused whole, then sent again
    // without what is already so.
    let once = true;
    const batches: number[] = [];
    files.editBatch = async (edits) => {
      const del = edits.find((e) => typeof e !== 'string' && e.file === 'available-od' && e.op === 'Del');
      if (once && del) {
        once = false;
        await files.edit(del);
      }
      batches.push(edits.length);
      return orig(edits);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.ok(r.edits.some((l) => /already so/.test(l)));
    assert.equal(w.files.get('problem', 'S2')![3], 'recovered');
    // The fence marks with problem `recovering` (2), then the commit: problem + OD refused whole, then the problem alone.
    assert.deepEqual(batches, [2, 2, 1], 'problem + OD refused whole, then the problem alone');
  });

  it('the edits made together go as one batch each: the fence marks, and the commit (problem first, for the receivers\' authority check)', async () => {
    const w = world();
    // Host not reached: the fence marks are the group record and the host's state together.
    w.hosts.get('RS2')!.unreachable = true;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    const batches: string[][] = [];
    const orig = w.files.editBatch.bind(w.files);
    w.files.editBatch = (edits) => {
      batches.push(edits.map((e) => (typeof e === 'string' ? e : `${e.file} ${e.op} ${e.record[0]}`)));
      return orig(edits);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1', kind: 'network' }, w.deps);
    assert.equal(r.fence, 'confirmed-unreachable');
    assert.deepEqual(batches, [
      ['group Mod S2', 'realserver Mod RS2'],
      ['problem Mod S2', `available-od Del ${r.od}`, 'group Add S2b'],
    ]);
  });

  it('a reached host: the fence mark and problem `recovering` go as one batch (problem first), then the commit', async () => {
    const w = world();
    const batches: string[][] = [];
    const orig = w.files.editBatch.bind(w.files);
    w.files.editBatch = (edits) => {
      batches.push(edits.map((e) => (typeof e === 'string' ? e : `${e.file} ${e.op} ${e.record[0]}`)));
      return orig(edits);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.fence, 'destroyed');
    assert.deepEqual(batches, [
      ['problem Mod S2', 'group Mod S2'],
      ['problem Mod S2', `available-od Del ${r.od}`, 'group Add S2b'],
    ]);
  });

  it('the claim `fencing` names the OD resumed beside the fence: one edit, not a second one for the OD', async () => {
    const w = world();
    const single: string[] = [];
    const orig = w.files.edit.bind(w.files);
    w.files.edit = (e) => {
      if (typeof e !== 'string' && e.file === 'problem') single.push(`${e.record[3]} od=${e.record[7] ?? '-'}`);
      return orig(e);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    // (The batches' edits pass here too: the later statuses.) Before: `fencing od=-`, then `fencing od=OD3`.
    assert.deepEqual(single.filter((x) => x.startsWith('fencing')), [`fencing od=${r.od}`]);
  });

  it('a target already off counts as fenced', async () => {
    const w = world();
    w.hosts.get('RS2')!.domains.set('S2', 'shut off');
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.fence, 'already-off');
  });

  it('a target its host does not define (domain-absent) counts as fenced', async () => {
    const w = world();
    w.hosts.get('RS2')!.domains.delete('S2');
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.fence, 'domain-absent');
    assert.equal(w.files.get('problem', 'S2')![3], 'recovered');
  });

  it('program-missing (no virsh on the host): the fence fails, no backup starts, the problem says why', async () => {
    const w = world();
    w.hosts.get('RS2')!.noVirsh = true;
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.step, 'fence');
      assert.equal(e.kind, 'program-missing');
      return true;
    });
    const p = w.files.get('problem', 'S2')!;
    assert.equal(p[3], 'failed');
    assert.match(p[6], /fence: .*program-missing/);
    // The OD resumed beside the fence is put back to sleep and stays available; S2 is not fenced.
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'paused');
    assert.ok(w.files.get('available-od', 'OD3'));
    assert.deepEqual(w.files.get('group', 'S2'), ['S2', '127.0.1.2', 'RS2', 'tcp:80']);
    assert.ok(!w.files.get('group', 'S2b'));
  });

  it('a destroy refused while the domain still runs is no fence, whatever the words say', async () => {
    const w = world();
    const rs2 = w.hosts.get('RS2')!;
    rs2.destroy = async () => {
      throw new HvLikeError('failed', "error: failed to get domain 'S2' (not found)", 1);
    };
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.step, 'fence');
      assert.equal(e.kind, 'failed');
      assert.match(e.message, /it is running/);
      return true;
    });
    assert.ok(!w.files.get('group', 'S2b'));
  });

  it('permission-denied or any other kind from the destroy fails the fence with that kind', async () => {
    for (const kind of ['permission-denied', 'auth-refused', 'host-key-mismatch']) {
      const w = world();
      w.hosts.get('RS2')!.destroy = async () => {
        throw new HvLikeError(kind, 'x');
      };
      await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => e instanceof RecoveryError && e.kind === kind && e.step === 'fence');
      assert.equal(w.files.get('problem', 'S2')![3], 'failed');
    }
  });

  it('host unreachable and one manager only: waits, then fails with the reason and starts nothing', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps, { confirmWaitMs: 1000, confirmPollMs: 100 }), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.step, 'confirm');
      assert.match(e.message, /confirmed only by S1/);
      return true;
    });
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'paused');
    const p = w.files.get('problem', 'S2')!;
    assert.equal(p[3], 'failed');
    assert.match(p[6], /unreachable/);
    assert.ok(!p[6].includes(','));
  });

  it('host unreachable, a second manager confirms another VM of that host: proceeds', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    const run = runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps, { confirmWaitMs: 5000, confirmPollMs: 100 });
    // S4 (P1 of S5) confirms S5 while S1 waits.
    await new Promise((r) => setImmediate(r));
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r = await run;
    assert.equal(r.fence, 'confirmed-unreachable');
    assert.ok(w.steps.some((s) => s.step === 'confirm' && /S1, S4/.test(s.text)));
    // The acting manager records the host failure and the fence.
    assert.equal(w.files.get('realserver', 'RS2')![3], 'down');
    assert.equal(w.files.get('group', 'S2')![4], 'fenced');
  });

  it('a destroy that times out is a host not reached: the confirm step decides (not a fence)', async () => {
    const w = world();
    const rs2 = w.hosts.get('RS2')!;
    rs2.destroy = async () => {
      throw new HvLikeError('timeout', 'no result within 5000 ms');
    };
    rs2.domstate = async () => {
      throw new HvLikeError('timeout', 'no result within 5000 ms');
    };
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps, { confirmWaitMs: 300, confirmPollMs: 100 }), (e: unknown) => e instanceof RecoveryError && e.kind === 'unconfirmed');
    const w2 = world();
    w2.hosts.get('RS2')!.destroy = rs2.destroy;
    await w2.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w2.deps);
    assert.equal(r.fence, 'confirmed-unreachable');
  });

  it('host unreachable and confirmed, but no isolation gate: never proceeds unfenced', async () => {
    const w = world();
    w.deps.isolation = undefined;
    w.hosts.get('RS2')!.unreachable = true;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.step, 'confirm');
      assert.equal(e.kind, 'isolation');
      assert.match(e.message, /no isolation gate/);
      return true;
    });
    assert.equal(w.files.get('problem', 'S2')![3], 'failed');
    assert.match(w.files.get('problem', 'S2')![6], /isolation/);
    assert.equal(w.files.get('group', 'S2')![4], undefined, 'not fenced');
  });

  it('host unreachable and confirmed: waits while the gate says "not yet", goes ahead when it opens', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    const asked: number[] = [];
    w.deps.isolation = {
      check: (target: string, now: number): IsolationVerdict => {
        asked.push(now);
        return asked.length < 3 ? { ok: false, why: `${target} seen 1 s ago`, retryAfterMs: 1000 } : { ok: true, detail: 'T_iso passed' };
      },
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.fence, 'confirmed-unreachable');
    assert.equal(asked.length, 3);
    assert.ok(asked[2] - asked[0] >= 2000);
  });

  it('host unreachable and confirmed: a gate that says no (minority side) fails with its reason; one that keeps saying "not yet" fails at the bound', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    w.deps.isolation = { check: () => ({ ok: false, why: 'this side hears 2 of 6 members (needs 4)' }) };
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), /isolation rule: this side hears 2 of 6/);
    assert.match(w.files.get('problem', 'S2')![6], /2 of 6/);
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'paused');

    const w2 = world();
    w2.hosts.get('RS2')!.unreachable = true;
    await w2.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    let n = 0;
    w2.deps.isolation = { check: () => (n++, { ok: false, why: 'S2 seen recently', retryAfterMs: 1000 }) };
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w2.deps, { isolationWaitMs: 5000 }), (e: unknown) => e instanceof RecoveryError && e.kind === 'isolation');
    assert.ok(n >= 5 && n <= 7, `asked ${n} times`);
  });

  it('host unreachable: managers on the failed host itself (the isolated side) do not confirm', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    // S5 is on RS2 with S2: its confirmation (here passed in, and its claim on S2's record) comes from inside the cut.
    const before = w.files.get('problem', 'S2')!;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S2', 'network', 'confirmed', '-', new Date().toISOString()] });
    assert.ok(before);
    await assert.rejects(
      runBackupPlan({ target: 'S2', detectedBy: 'S1', confirmations: ['S5'] }, w.deps, { confirmWaitMs: 500, confirmPollMs: 100 }),
      /confirmed only by S1 off that host/,
    );
  });

  it('host unreachable: the other VM of that host, already recovered and gone from the group, still confirms', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    const run = runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps, { confirmWaitMs: 5000, confirmPollMs: 100 });
    await new Promise((r) => setImmediate(r));
    // S5's recovery (by S4) finished first: its record says recovered and S5 left the group.
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'recovered', 'S5b', new Date().toISOString()] });
    await w.files.edit({ file: 'group', op: 'Del', record: w.files.get('group', 'S5')! });
    const r = await run;
    assert.equal(r.fence, 'confirmed-unreachable');
    assert.ok(w.steps.some((s) => s.step === 'confirm' && /S1, S4/.test(s.text)));
  });

  it('a real server failure: the unreachable host is not chosen, and a placement host found unreachable at resume is skipped', async () => {
    const w = world();
    w.hosts.get('RS3')!.unreachable = true; // RS3 holds S3, S6 and the best OD, and is gone
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S6', 'S5', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r = await runBackupPlan({ target: 'S3', detectedBy: 'S2' }, w.deps);
    assert.equal(r.fence, 'confirmed-unreachable');
    assert.notEqual(r.realServer, 'RS3');
    const w2 = world();
    w2.hosts.get('RS3')!.unreachable = true; // still "up" in the file, but gone
    const r2 = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w2.deps);
    assert.equal(r2.realServer, 'RS2');
    assert.ok(r2.steps.some((s) => s.step === 'resume' && /RS3 unreachable/.test(s.text)));
  });

  it('resumes the OD while the fence runs, but installs only after it; an unconfirmed fence puts the OD back to sleep', async () => {
    const w = world();
    const rs2 = w.hosts.get('RS2')!;
    const order: string[] = [];
    const destroy = rs2.destroy.bind(rs2);
    rs2.destroy = async (name: string) => {
      await new Promise((r) => setTimeout(r, 30));
      order.push('fenced');
      return destroy(name);
    };
    const rs3 = w.hosts.get('RS3')!;
    const resume = rs3.resume.bind(rs3);
    rs3.resume = async (name: string) => {
      order.push('resumed');
      return resume(name);
    };
    const run = rs3.runFile.bind(rs3);
    rs3.runFile = async (path: string, vars?: Record<string, string | number>) => {
      order.push('installed');
      return run(path, vars);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.deepEqual(order, ['resumed', 'fenced', 'installed']);
    // Reported as it happened, in time order: place and resume (beside the fence) first.
    assert.deepEqual(r.steps.slice(0, 3).map((x) => [x.step, x.parallel]), [['place', 'fence'], ['resume', 'fence'], ['fence', undefined]]);
    for (let i = 1; i < r.steps.length; i++) assert.ok(r.steps[i].atMs >= r.steps[i - 1].atMs, 'in time order');

    const w2 = world();
    w2.hosts.get('RS2')!.unreachable = true;
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w2.deps, { confirmWaitMs: 300, confirmPollMs: 100 }), /confirmed only by S1/);
    assert.ok(w2.hosts.get('RS3')!.calls.includes('resume OD3') && w2.hosts.get('RS3')!.calls.includes('suspend OD3'));
    assert.equal(w2.hosts.get('RS3')!.domains.get('OD3'), 'paused');
    assert.ok(w2.files.get('available-od', 'OD3'), 'still an available OD');
  });

  it('a whole host failed: an early OD the joint placement uses is kept (no swapping between managers); one it does not use is suspended again', async () => {
    const w = world();
    const f = w.files;
    await f.edit({ file: 'problem', op: 'Del', record: f.get('problem', 'S2')! });
    await f.edit({ file: 'realserver', op: 'Mod', before: f.get('realserver', 'RS1')!, record: ['RS1', '0.30', '2', 'up'] });
    await f.edit({ file: 'realserver', op: 'Mod', before: f.get('realserver', 'RS2')!, record: ['RS2', '0.30', '2', 'up'] });
    // The load collector has not noticed yet: RS3 is still `up` in the file, so the plan resumes early.
    w.hosts.get('RS3')!.unreachable = true;
    // S5 confirmed S6 (RS3); S3's confirmation by S2 arrives while S5 waits for a second manager.
    const run = runBackupPlan({ target: 'S6', detectedBy: 'S5' }, w.deps, { confirmWaitMs: 5000, confirmPollMs: 100 });
    await new Promise((r) => setImmediate(r));
    await f.edit({ file: 'problem', op: 'Add', record: ['S3', 'S2', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r = await run;
    // Alone, S6 went to RS1 (name); placed together, S3 would take OD1 and S6 OD2: OD1 is one of
    // the joint placement's, so S6 keeps it (S3's manager loses the race for OD1 and takes OD2).
    assert.deepEqual([r.realServer, r.od], ['RS1', 'OD1']);
    assert.ok(!w.hosts.get('RS1')!.calls.includes('suspend OD1'), 'no swap');
    assert.ok(r.steps.some((s) => s.step === 'place' && /OD1 on RS1 kept/.test(s.text)));
    assert.ok(f.get('available-od', 'OD2'), 'OD2 is left for S3');

    // The loads changed before the joint placement: the early OD is none of its ODs: suspended again.
    const w3 = world();
    const f3 = w3.files;
    await f3.edit({ file: 'problem', op: 'Del', record: f3.get('problem', 'S2')! });
    await f3.edit({ file: 'realserver', op: 'Mod', before: f3.get('realserver', 'RS1')!, record: ['RS1', '0.30', '2', 'up'] });
    await f3.edit({ file: 'realserver', op: 'Mod', before: f3.get('realserver', 'RS2')!, record: ['RS2', '0.30', '2', 'up'] });
    await f3.edit({ file: 'available-od', op: 'Add', record: ['OD2b', '127.0.2.5', 'RS2'] });
    w3.hosts.get('RS2')!.domains.set('OD2b', 'paused');
    w3.hosts.get('RS3')!.unreachable = true;
    const run3 = runBackupPlan({ target: 'S6', detectedBy: 'S5' }, w3.deps, { confirmWaitMs: 5000, confirmPollMs: 100 });
    await new Promise((r) => setImmediate(r));
    assert.equal(w3.hosts.get('RS1')!.domains.get('OD1'), 'running', 'resumed early');
    await f3.edit({ file: 'realserver', op: 'Mod', before: f3.get('realserver', 'RS1')!, record: ['RS1', '0.90', '2', 'up'] });
    await f3.edit({ file: 'problem', op: 'Add', record: ['S3', 'S2', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r3 = await run3;
    // Together: S3 -> RS2/OD2, S6 -> RS2/OD2b; OD1 is not theirs: back to sleep, still available.
    assert.deepEqual([r3.realServer, r3.od], ['RS2', 'OD2b']);
    assert.ok(w3.hosts.get('RS1')!.calls.includes('suspend OD1'));
    assert.equal(w3.hosts.get('RS1')!.domains.get('OD1'), 'paused');
    assert.ok(f3.get('available-od', 'OD1'));

    // Once the file says RS3 is down, nothing is resumed before the confirmations.
    const w2 = world();
    const f2 = w2.files;
    await f2.edit({ file: 'problem', op: 'Del', record: f2.get('problem', 'S2')! });
    await f2.edit({ file: 'realserver', op: 'Mod', before: f2.get('realserver', 'RS1')!, record: ['RS1', '0.30', '2', 'up'] });
    await f2.edit({ file: 'realserver', op: 'Mod', before: f2.get('realserver', 'RS2')!, record: ['RS2', '0.30', '2', 'up'] });
    await f2.edit({ file: 'realserver', op: 'Mod', before: f2.get('realserver', 'RS3')!, record: ['RS3', '0.10', '2', 'down'] });
    w2.hosts.get('RS3')!.unreachable = true;
    const run2 = runBackupPlan({ target: 'S6', detectedBy: 'S5' }, w2.deps, { confirmWaitMs: 5000, confirmPollMs: 100 });
    await new Promise((r) => setImmediate(r));
    assert.ok(!w2.hosts.get('RS1')!.calls.some((c) => c.startsWith('resume')) && !w2.hosts.get('RS2')!.calls.some((c) => c.startsWith('resume')));
    await f2.edit({ file: 'problem', op: 'Add', record: ['S3', 'S2', 'network', 'confirmed', '-', new Date().toISOString()] });
    const r2 = await run2;
    assert.equal(r2.realServer, 'RS2');
  });

  it('confirmers counts distinct managers of VMs on the same host within the window', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    const group = [['S2', 'a', 'RS2', '-'], ['S5', 'b', 'RS2', '-'], ['S3', 'c', 'RS3', '-']];
    const problem = [
      ['S5', 'S4', 'network', 'confirmed', '-', '2026-01-01T00:00:59Z'],
      ['S3', 'S2', 'network', 'confirmed', '-', '2026-01-01T00:00:59Z'],
      ['S2', 'S6', 'network', 'recovered', 'S2b', '2025-12-31T00:00:00Z'],
    ];
    assert.deepEqual(confirmers({ target: 'S2', detectedBy: 'S1' }, group, problem, now, 60000), ['S1', 'S4']);
    assert.deepEqual(confirmers({ target: 'S2', detectedBy: 'S1', confirmations: ['S3'] }, group, [], now, 60000), ['S1', 'S3']);
    // A record without a time never counts (no confirmation for ever); one older than the window neither.
    assert.deepEqual(confirmers({ target: 'S2', detectedBy: 'S1' }, group, [['S5', 'S4', 'network', 'confirmed', '-', '-']], now, 60000), ['S1']);
    assert.deepEqual(confirmers({ target: 'S2', detectedBy: 'S1' }, group, [['S5', 'S4', 'network', 'confirmed', '-', '2026-01-01T00:00:00Z']], now, 30000), ['S1']);
    // A manager on the failed host (S5 on RS2) is on the isolated side: not a confirmer.
    assert.deepEqual(confirmers({ target: 'S2', detectedBy: 'S5', confirmations: ['S2'] }, group, [['S5', 'S2', 'network', 'confirmed', '-', '2026-01-01T00:00:59Z']], now, 60000), []);
  });

  it('OD race lost (the OD is already running): takes the next OD', async () => {
    const w = world();
    w.hosts.get('RS3')!.domains.set('OD3', 'running'); // another manager resumed it first
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.od, 'OD3x');
    assert.deepEqual(r.lostRaces, ['OD3']);
    // The winner deletes OD3 from available-od, not the loser.
    assert.ok(w.files.get('available-od', 'OD3'));
    assert.ok(!w.files.get('available-od', 'OD3x'));
  });

  it('gives up after maxOdAttempts and records failed', async () => {
    const w = world();
    for (const [rs, od] of [['RS1', 'OD1'], ['RS2', 'OD2'], ['RS3', 'OD3'], ['RS3', 'OD3x']]) w.hosts.get(rs)!.domains.set(od, 'running');
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps, { maxOdAttempts: 2 }), /resume: no OD could be resumed after 2 attempts/);
    assert.equal(w.files.get('problem', 'S2')![3], 'failed');
  });

  it('no real server can take it: failed with the placer reason', async () => {
    const w = world();
    for (const od of w.files.records('available-od')) await w.files.edit({ file: 'available-od', op: 'Del', record: od });
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.step, 'place');
      assert.match(e.message, /no available OD/);
      assert.equal(e.kind, 'no-placement');
      return true;
    });
    assert.match(w.files.get('problem', 'S2')![6], /no available OD/);
    // Nothing fits, but the failed server is fenced all the same.
    assert.equal(w.hosts.get('RS2')!.domains.get('S2'), 'shut off');
    assert.equal(w.files.get('group', 'S2')![4], 'fenced');
  });

  it('a failing installation procedure fails the recovery with its message', async () => {
    const w = world();
    w.hosts.get('RS3')!.scriptFails = 'exited 3: could not write /etc/service.conf';
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), (e: unknown) => {
      assert.ok(e instanceof RecoveryError);
      assert.equal(e.kind, 'procedure-failed');
      assert.match(e.message, /install: installation procedure .* failed: procedure-failed: exited 3/);
      return true;
    });
    assert.equal(w.files.get('problem', 'S2')![3], 'failed');
    assert.ok(w.files.get('group', 'S2'), 'the group is not edited by a failed recovery');
    assert.equal(w.files.get('available-od', 'OD3'), undefined, 'the resumed OD is no longer offered');
    assert.ok(w.files.get('available-od', 'OD3x'), 'the others stay');
    // Half installed, it might answer as S2: frozen again, so never a second copy beside S2.
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'paused', 'the half-installed OD is suspended again');
  });

  it('a missing procedure for a backup falls back to the original server\'s, and none at all is an error', async () => {
    const w = world();
    await w.files.edit({ file: 'group', op: 'Add', record: ['S7b', '127.0.1.7', 'RS2', 'tcp:80'] });
    w.hosts.get('RS2')!.domains.set('S7b', 'running');
    w.hosts.get('RS3')!.missing.add('/var/lib/p2p-ha/install/S7b.sh');
    const r = await runBackupPlan({ target: 'S7b', detectedBy: 'S1' }, w.deps);
    assert.equal(r.backup, 'S7b2');
    assert.ok(r.steps.some((s) => s.step === 'install' && /S7\.sh/.test(s.text)));
    const w2 = world();
    w2.hosts.get('RS3')!.missing.add('/var/lib/p2p-ha/install/S2.sh');
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w2.deps), (e: unknown) => e instanceof RecoveryError && e.kind === 'procedure-absent' && /no installation procedure for S2/.test(e.message));
  });

  it('a failing procedure of a backup is never replaced by the original server\'s (only procedure-absent moves on)', async () => {
    const w = world();
    await w.files.edit({ file: 'group', op: 'Add', record: ['S7b', '127.0.1.7', 'RS2', 'tcp:80'] });
    w.hosts.get('RS2')!.domains.set('S7b', 'running');
    w.hosts.get('RS3')!.scriptFails = 'sh: 3: systemctl: not found';
    await assert.rejects(runBackupPlan({ target: 'S7b', detectedBy: 'S1' }, w.deps), /S7b\.sh failed: procedure-failed/);
    assert.ok(!w.hosts.get('RS3')!.calls.some((c) => c.includes('/S7.sh')), 'S7.sh not tried');
    assert.equal(w.files.get('problem', 'S7b')![3], 'failed');
  });

  it('a role step that fails, or a target unknown to the files, is recorded failed', async () => {
    const w = world();
    w.deps.assignRole = async () => {
      throw new Error('POST /flows answered 401');
    };
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), /role: POST \/flows answered 401/);
    assert.match(w.files.get('problem', 'S2')![6], /401/);
    const w2 = world();
    await assert.rejects(runBackupPlan({ target: 'S9', detectedBy: 'S1' }, w2.deps), /S9 has no real server/);
    assert.equal(w2.files.get('problem', 'S9')![3], 'failed');
  });

  it('two failures at once get different ODs, spread over the real servers', async () => {
    const w = world();
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date().toISOString()] });
    const [a, b] = await Promise.all([runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps), runBackupPlan({ target: 'S5', detectedBy: 'S4' }, w.deps)]);
    assert.notEqual(a.od, b.od);
    assert.deepEqual([a.realServer, b.realServer], ['RS3', 'RS3']);
    assert.ok(w.files.get('group', 'S2b') && w.files.get('group', 'S5b'));
  });

  it('helpers: unreachable kinds (never words) and the reason field', () => {
    assert.ok(isUnreachable(new HvLikeError('timeout', 'x')));
    assert.ok(isUnreachable(new HvLikeError('unreachable', 'x')));
    assert.ok(!isUnreachable(new HvLikeError('failed', 'connect ECONNREFUSED')));
    assert.ok(!isUnreachable(new HvLikeError('program-missing', 'x')));
    assert.ok(!isUnreachable(new Error('plain')));
    assert.ok(!isUnreachable(new Error('Not connected')));
    assert.equal(reasonField('a, b\nc'), 'a; b c');
  });

  it('stops between steps when aborted', async () => {
    const w = world();
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(runBackupPlan({ target: 'S2', detectedBy: 'S1' }, { ...w.deps, signal: ac.signal }), /node closed/);
    assert.equal(w.hosts.get('RS3')!.domains.get('OD3'), 'paused');
  });
});
