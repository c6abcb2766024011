// Taking over a stalled recovery (lib/recovery/takeover.ts): who takes over and when, and the
// backup plan run again from where the records say a dead manager left it: the recorded fence
// stands, the recorded OD is continued with (never resumed twice, never a second OD), the backup
// keeps its name, and every edit the taker sends passes the receivers' edit authority rules.
import { strict as assert } from 'assert';
import type { Edit, IsolationGate } from '../../lib/records/cluster-api';
import type { RecordFields } from '../../lib/records/files';
import { fromProblem, toProblem } from '../../lib/records/records';
import { runBackupPlan, type PlanDriver, type StepEvent } from '../../lib/recovery/backup-plan';
import { hasIdentity } from '../../lib/recovery/role';
import { actingGone, decideTakeover, takeoverRecord, takers, type TakeoverSituation } from '../../lib/recovery/takeover';
import { authorityRefusal } from '../../lib/sem/edit-authority';
import { MemoryFiles } from '../support/memory-files';
import { sixVmGroup } from '../support/plan-fixture';

const T0 = Date.parse('2026-12-03T03:12:00.000Z');
const SINCE = new Date(T0).toISOString();

const GROUP: RecordFields[] = sixVmGroup();
const fenced = (g: RecordFields[], who: string) => g.map((r) => (r[0] === who ? [...r.slice(0, 4), 'fenced'] : r));

function situation(over: Partial<TakeoverSituation> = {}): TakeoverSituation {
  return {
    me: 'S3',
    record: ['S2', 'S1', 'network', 'fencing', 'S2b', SINCE],
    group: GROUP,
    problems: [],
    lastChangeMs: T0,
    now: T0 + 61_000,
    ...over,
  };
}

describe('takeover of a stalled recovery: the decision', () => {
  it('not stalled yet: waits until the bound', () => {
    const d = decideTakeover(situation({ now: T0 + 30_000 }));
    assert.equal(d.action, 'wait');
    assert.equal((d as { until: number }).until, T0 + 60_000);
  });

  it('stalled, the acting manager still a member: asks it first; it answers: keeps it; silent: taken over', () => {
    const d = decideTakeover(situation());
    assert.equal(d.action, 'probe');
    assert.deepEqual([(d as { manager: string }).manager, (d as { address: string }).address], ['S1', '127.0.1.1']);
    assert.equal(decideTakeover(situation({ actingAnswered: true })).action, 'wait');
    const t = decideTakeover(situation({ actingAnswered: false }));
    assert.equal(t.action, 'take-over');
    assert.match(t.reason, /S1 does not answer/);
  });

  it('the acting manager fenced or failed by the files: taken over without a probe', () => {
    // S1 fenced: the ring gives S2 the managers S6 (P1) and S3 (P2): S3 is second, so it acts at twice the bound.
    assert.deepEqual(takers('S2', 'S1', fenced(GROUP, 'S1'), []), ['S6', 'S3']);
    assert.equal(decideTakeover(situation({ group: fenced(GROUP, 'S1') })).action, 'wait');
    assert.equal(decideTakeover(situation({ group: fenced(GROUP, 'S1'), now: T0 + 121_000 })).action, 'take-over');
    const failedS1 = [['S1', 'S6', 'network', 'recovering', 'S1b', SINCE]];
    const d = decideTakeover(situation({ problems: failedS1 }));
    assert.equal(d.action, 'take-over');
    assert.match(d.reason, /S1 has failed/);
    assert.equal(actingGone('S1', GROUP.slice(1), []), 'S1 is no longer in the group');
  });

  it('no majority on this side: cannot, with the reason', () => {
    const d = decideTakeover(situation({ actingAnswered: false, quorum: { ok: false, why: 'reach 2 of 6, need 4' } }));
    assert.equal(d.action, 'cannot');
    assert.match(d.reason, /minority: reach 2 of 6/);
  });

  it('target still serving: only its P1/P2 other than the acting one take over (edit authority G2)', () => {
    // S2's P1 is S1, P2 is S3.
    assert.deepEqual(takers('S2', 'S1', GROUP, []), ['S3']);
    assert.equal(decideTakeover(situation({ me: 'S4', actingAnswered: false })).action, 'none');
  });

  it('target fenced: the ring after the acting manager, skipping the target, failing and fenced members; later takers wait longer', () => {
    const g = fenced(fenced(GROUP, 'S2'), 'S1');
    const problems = [['S4', 'S3', 'network', 'recovering', '-', SINCE]];
    assert.deepEqual(takers('S2', 'S1', g, problems), ['S3', 'S5', 'S6']);
    const second = decideTakeover(situation({ me: 'S5', group: g, problems, record: ['S2', 'S1', 'network', 'recovering', 'S2b', SINCE] }));
    assert.equal(second.action, 'wait');
    assert.equal((second as { until: number }).until, T0 + 120_000);
    assert.equal(decideTakeover(situation({ me: 'S5', group: g, problems, now: T0 + 121_000 })).action, 'take-over');
  });

  it('nothing to take over: final statuses, or a recovery this VM holds', () => {
    assert.equal(decideTakeover(situation({ record: ['S2', 'S1', 'network', 'recovered', 'S2b', SINCE] })).action, 'none');
    assert.equal(decideTakeover(situation({ record: ['S2', 'S1', 'network', 'detected', '-', SINCE] })).action, 'none');
    assert.equal(decideTakeover(situation({ me: 'S1' })).action, 'none');
  });

  it('the takeover record names the taker and keeps the rest (od and note included)', () => {
    const rec = toProblem({ target: 'S2', detectedBy: 'S1', kind: 'network', status: 'recovering', backup: 'S2b', since: SINCE, od: 'OD3' });
    assert.deepEqual(rec, ['S2', 'S1', 'network', 'recovering', 'S2b', SINCE, '-', 'OD3']);
    assert.equal(fromProblem(rec).note, '');
    const next = takeoverRecord(rec, 'S3');
    assert.deepEqual(next, ['S2', 'S3', 'network', 'recovering', 'S2b', SINCE, '-', 'OD3']);
  });
});

/** Domains of every host in one table; the calls of each host in order. */
class Host implements PlanDriver {
  readonly calls: string[] = [];
  unreachable = false;
  constructor(readonly domains: Map<string, string>) {}
  private go(c: string): void {
    this.calls.push(c);
    if (this.unreachable) throw Object.assign(new Error('connect ECONNREFUSED'), { kind: 'unreachable' });
  }
  private state(name: string): string {
    const s = this.domains.get(name);
    if (s === undefined) throw Object.assign(new Error(`no domain ${name}`), { kind: 'domain-absent' });
    return s;
  }
  async destroy(n: string) {
    this.go(`destroy ${n}`);
    if (this.state(n) === 'shut off') throw Object.assign(new Error('domain is not running'), { kind: 'failed' });
    this.domains.set(n, 'shut off');
  }
  async autostartOff(n: string) {
    this.go(`autostart-off ${n}`);
    this.state(n);
  }
  async domstate(n: string) {
    this.go(`domstate ${n}`);
    return this.state(n);
  }
  async resume(n: string) {
    this.go(`resume ${n}`);
    if (this.state(n) !== 'paused') throw Object.assign(new Error('not paused'), { kind: 'failed' });
    this.domains.set(n, 'running');
  }
  async suspend(n: string) {
    this.go(`suspend ${n}`);
    this.domains.set(n, 'paused');
  }
  async runFile(path: string) {
    this.go(`run ${path}`);
    return { stdout: '', stderr: '', code: 0 };
  }
}

/**
 * The files as S3 sees them after S1 died half-way through the recovery of S2 (S2 fenced and
 * marked so, OD3 recorded and in `od3` state), with every edit checked by the edit authority rules
 * of a receiver holding the same files.
 */
function afterDeath(od3: 'running' | 'paused', problemStatus: 'fencing' | 'recovering' = 'recovering') {
  const files = new MemoryFiles(
    { hostname: 'S3', address: '127.0.1.3', realServer: 'RS3', services: 'tcp:80' },
    {
      group: fenced(fenced(GROUP, 'S2'), 'S1'),
      realserver: [['RS1', '0.40', '2', 'up'], ['RS2', '0.30', '2', 'up'], ['RS3', '0.10', '2', 'up']],
      'available-od': [['OD1', '127.0.2.1', 'RS1'], ['OD2', '127.0.2.2', 'RS2'], ['OD3', '127.0.2.3', 'RS3']],
      problem: [
        toProblem({ target: 'S2', detectedBy: 'S1', kind: 'network', status: problemStatus, backup: 'S2b', since: new Date().toISOString(), od: 'OD3' }),
        ['S1', 'S6', 'network', 'recovering', '-', new Date().toISOString()],
      ],
    },
  );
  const refusals: string[] = [];
  const edit = files.edit.bind(files);
  files.edit = (e: Edit | string) => {
    const why = typeof e === 'string' ? 'text edit' : authorityRefusal('S3', e, files);
    if (why) refusals.push(why);
    return edit(e);
  };
  const hosts = new Map<string, Host>([
    ['RS1', new Host(new Map([['S1', 'shut off'], ['S4', 'running'], ['OD1', 'paused']]))],
    ['RS2', new Host(new Map([['S2', 'shut off'], ['S5', 'running'], ['OD2', 'paused']]))],
    ['RS3', new Host(new Map([['S3', 'running'], ['S6', 'running'], ['OD3', od3]]))],
  ]);
  const steps: StepEvent[] = [];
  const roles: unknown[] = [];
  const deps = {
    files,
    driver: (rs: string) => hosts.get(rs),
    isolation: { check: () => ({ ok: true, detail: 'majority' }) } as IsolationGate,
    assignRole: async (r: unknown) => void roles.push(r),
    onStep: (e: StepEvent) => steps.push(e),
  };
  return { files, hosts, steps, roles, deps, refusals };
}

async function takeOver(w: ReturnType<typeof afterDeath>) {
  const rec = w.files.get('problem', 'S2')!;
  await w.files.edit({ file: 'problem', op: 'Mod', before: rec, record: takeoverRecord(rec, 'S3') });
  return runBackupPlan({ target: 'S2', detectedBy: 'S3' }, w.deps);
}

const resumes = (w: ReturnType<typeof afterDeath>) => [...w.hosts.values()].flatMap((h) => h.calls.filter((c) => c.startsWith('resume ')));

describe('takeover of a stalled recovery: the plan run again', () => {
  it('OD already resumed by the dead manager: continued with, not resumed again, no second OD; same backup name', async () => {
    const w = afterDeath('running');
    const r = await takeOver(w);
    assert.deepEqual([r.od, r.backup, r.realServer], ['OD3', 'S2b', 'RS3']);
    assert.deepEqual(resumes(w), []);
    assert.equal(w.hosts.get('RS1')!.domains.get('OD1'), 'paused');
    assert.equal(w.hosts.get('RS2')!.domains.get('OD2'), 'paused');
    assert.ok(w.steps.some((s) => s.step === 'resume' && s.detail?.adopted === true));
    const p = fromProblem(w.files.get('problem', 'S2')!);
    assert.deepEqual([p.status, p.detectedBy, p.backup, p.od], ['recovered', 'S3', 'S2b', 'OD3']);
    assert.deepEqual(w.files.get('group', 'S2b'), ['S2b', '127.0.2.3', 'RS3', 'tcp:80']);
    assert.equal(w.files.get('available-od', 'OD3'), undefined);
    assert.deepEqual(w.refusals, [], 'every edit of the taker passes the edit authority rules');
  });

  it('OD recorded but still paused (the manager died before the resume): that OD resumed once', async () => {
    const w = afterDeath('paused', 'fencing');
    const r = await takeOver(w);
    assert.equal(r.od, 'OD3');
    assert.deepEqual(resumes(w), ['resume OD3']);
    assert.deepEqual(w.refusals, []);
  });

  it('fenced host not reached any more: the recorded fence stands (no confirmation round)', async () => {
    const w = afterDeath('running');
    w.hosts.get('RS2')!.unreachable = true;
    const r = await takeOver(w);
    assert.equal(r.fence, 'recorded');
    assert.deepEqual(resumes(w), []);
  });

  it('recorded OD gone from the host: placed anew, still one OD', async () => {
    const w = afterDeath('running');
    w.hosts.get('RS3')!.domains.set('OD3', 'shut off');
    const r = await takeOver(w);
    assert.notEqual(r.od, 'OD3');
    assert.equal(resumes(w).length, 1);
  });

  it('recorded OD whose host does not answer: the takeover fails with the reason, no second OD is resumed', async () => {
    const w = afterDeath('running');
    w.hosts.get('RS3')!.unreachable = true;
    await assert.rejects(takeOver(w), (e: Error & { kind?: string }) => {
      assert.equal(e.kind, 'no-od');
      assert.match(e.message, /OD3 on RS3, the OD an earlier run of this recovery resumed, is not reached .*not starting a second OD/);
      return true;
    });
    assert.deepEqual(resumes(w), []);
    assert.equal(w.hosts.get('RS3')!.calls.filter((c) => c === 'domstate OD3').length, 3, 'asked three times');
    const p = fromProblem(w.files.get('problem', 'S2')!);
    assert.equal(p.status, 'failed');
    assert.match(p.note, /not starting a second OD/);
  });

  it('a first run records its OD in the problem record before resuming it', async () => {
    const w = afterDeath('paused');
    // A fresh episode: S2 a member, a plain claim by S1 (the plan runs as S1 here).
    w.files.data.set('group', GROUP.map((g) => g.slice()));
    w.files.data.set('problem', [['S2', 'S1', 'network', 'confirmed', '-', new Date().toISOString()]]);
    const seen: string[] = [];
    const resume = w.hosts.get('RS3')!.resume.bind(w.hosts.get('RS3'));
    w.hosts.get('RS3')!.resume = async (n: string) => {
      seen.push(fromProblem(w.files.get('problem', 'S2')!).od);
      return resume(n);
    };
    const r = await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, w.deps);
    assert.equal(r.od, 'OD3');
    assert.deepEqual(seen, ['OD3']);
  });
});

describe('role step: a VM that already has the role', () => {
  it('is recognised, so it is not deployed again', () => {
    const flows = [{ id: 's', type: 'p2p-store', hostname: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', autoJoin: false }];
    assert.ok(hasIdentity(flows, { hostname: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', autoJoin: false }));
    assert.ok(!hasIdentity(flows, { hostname: 'OD3', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', autoJoin: false }));
  });
});
