// A past failover as its steps with their reasons (issue 15): the plan's step events become
// timeline entries with duration and `why` (lib/ops/failover-steps.ts), they survive the lasting
// history (lib/ops/history.ts) and come back grouped per failover (lib/view/failovers.ts), with
// the confirmations, the candidates of the placement and each step's time.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { History } from '../../lib/ops/history';
import { timelineEntry } from '../../lib/ops/failover-steps';
import { runBackupPlan, type PlanDriver, type StepEvent } from '../../lib/recovery/backup-plan';
import { failoverStories } from '../../lib/view/failovers';
import type { TimelineEntry } from '../../lib/view/cluster-view';
import { MemoryFiles } from '../support/memory-files';

const T0 = Date.parse('2026-12-03T03:12:00.000Z');

/** A host whose every domain does what it is told (the plan's happy path). */
function host(domains: Record<string, string>): PlanDriver {
  const d = new Map(Object.entries(domains));
  return {
    destroy: async (n) => void d.set(n, 'shut off'),
    autostartOff: async () => undefined,
    suspend: async (n) => void d.set(n, 'paused'),
    domstate: async (n) => d.get(n) ?? 'shut off',
    resume: async (n) => void d.set(n, 'running'),
    runFile: async () => ({ stdout: '', stderr: '', code: 0 }),
  };
}

describe('past failovers: steps with their reasons, kept and grouped', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-failovers-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a recovery\'s steps carry duration and reason through the history, and open as one story', async () => {
    const files = new MemoryFiles({ hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: '-' }, {
      group: [['S1', '127.0.1.1', 'RS1', 'tcp:80'], ['S2', '127.0.1.2', 'RS2', 'tcp:80'], ['S3', '127.0.1.3', 'RS3', 'tcp:80']],
      realserver: [['RS1', '0.40', '1', 'up'], ['RS2', '0.30', '1', 'up'], ['RS3', '0.10', '1', 'up']],
      'available-od': [['OD1', '127.0.2.1', 'RS1'], ['OD3', '127.0.2.3', 'RS3']],
      problem: [['S2', 'S1', 'network', 'confirmed', '-', new Date(T0).toISOString()]],
    });
    const hosts: Record<string, PlanDriver> = { RS1: host({ OD1: 'paused' }), RS2: host({ S2: 'running' }), RS3: host({ OD3: 'paused' }) };
    let clock = T0 + 3000;
    const history = new History({ dir });
    // What the heartbeat wrote before (the problem file's steps), then the plan's steps.
    history.append({ at: T0, target: 'S2', step: 'detected', by: 'S1', detail: 'network' });
    history.append({ at: T0 + 2000, target: 'S2', step: 'confirmed', by: 'S1', detail: 'network' });
    await runBackupPlan({ target: 'S2', detectedBy: 'S1' }, {
      files,
      driver: (rs) => hosts[rs],
      now: () => (clock += 10),
      onStep: (e: StepEvent) => history.append(timelineEntry(e, 'S1', clock)),
    });
    history.append({ at: clock + 5, target: 'S2', step: 'recovered', by: 'S1', detail: 'network' });
    // An unrelated event and a later failover of another VM.
    history.append({ at: clock + 100, target: 'RS2', step: 'host-down', by: 'S3' });
    history.append({ at: clock + 200, target: 'S3', step: 'detected', by: 'S2', detail: 'service' });
    history.append({ at: clock + 3200, target: 'S3', step: 'cleared', by: 'S2', detail: 'service' });

    const back: TimelineEntry[] = history.read();
    const stories = failoverStories(back);
    assert.deepEqual(stories.map((s) => [s.target, s.outcome]), [['S3', 'cleared'], ['S2', 'recovered']]);
    const s2 = stories[1];
    assert.equal(s2.backup, 'S2b');
    assert.equal(s2.by, 'S1');
    assert.deepEqual(s2.steps.map((s) => s.step).slice(0, 2), ['detected', 'confirmed']);
    assert.equal(s2.steps[1].sincePrevMs, 2000, 'the re-examination took 2 s');
    for (const step of ['fenced', 'placed', 'resumed', 'installed', 'role-given', 'files-edited', 'recovered']) {
      assert.ok(s2.steps.some((s) => s.step === step), `no ${step} in ${s2.steps.map((s) => s.step).join(', ')}`);
    }
    const placed = s2.steps.find((s) => s.step === 'placed')!;
    assert.equal(typeof placed.ms, 'number');
    assert.equal(placed.why!.realServer, 'RS3');
    assert.equal(placed.why!.od, 'OD3');
    const cands = placed.why!.candidates as { realServer: string; rank?: number; reason?: string }[];
    assert.deepEqual(cands.map((c) => [c.realServer, c.rank ?? c.reason]), [['RS3', 1], ['RS1', 2], ['RS2', 'no available OD']]);
    const fenced = s2.steps.find((s) => s.step === 'fenced')!;
    assert.deepEqual([fenced.why!.fence, fenced.why!.realServer], ['destroyed', 'RS2']);
    assert.equal(s2.steps.find((s) => s.step === 'installed')!.why!.path, '/var/lib/p2p-ha/install/S2.sh');
    // The plan's own `recovered` after the problem record's joins the same story.
    assert.equal(stories.filter((s) => s.target === 'S2').length, 1);
  });

  it('a second failure of the same VM is a second story; an oversized reason is not kept', () => {
    const e = (at: number, step: string): TimelineEntry => ({ at, target: 'S4', step, by: 'S3' });
    const stories = failoverStories([e(1000, 'detected'), e(3000, 'confirmed'), e(9000, 'failed'), e(200_000, 'detected'), e(202_000, 'cleared')]);
    assert.deepEqual(stories.map((s) => [s.outcome, s.totalMs]), [['cleared', 2000], ['failed', 8000]]);
    const history = new History({ dir });
    history.append({ at: 1, target: 'S4', step: 'placed', why: { blob: 'x'.repeat(5000) } });
    assert.equal(history.read()[0].why, undefined);
  });
});
