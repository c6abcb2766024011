// The isolation rule (lib/monitor/isolation.ts), its monitor (isolation-monitor.ts) and the gate, in
// fake time: who counts, when a VM cut off from the majority stops serving, when it serves again,
// that a fenced VM stays out until re-admitted, that a starved VM asks again before stopping, and
// when a recovery whose fence could not reach the host may go ahead.
import * as assert from 'assert';
import { FakeClock } from '../support/fake-clock';
import { MemoryFiles } from '../support/memory-files';
import { IsolationTracker, ISOLATION_DEFAULTS, validateIsolationSettings } from '../../lib/monitor/isolation';
import { IsolationMonitor } from '../../lib/monitor/isolation-monitor';
import { readmit, ReadmitError } from '../../lib/monitor/readmit';
import { fromMember } from '../../lib/records/records';
import type { RecordFields } from '../../lib/records/files';
import type { IsolationState } from '../../lib/monitor/isolation';
import type { Identity } from '../../lib/records/cluster-api';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const names = ['S1', 'S2', 'S3', 'S4', 'S5', 'S6'];
const groupOf = (fenced: string[] = []): RecordFields[] =>
  names.map((h, i) => [h, `127.0.1.${i + 1}`, `RS${(i % 3) + 1}`, 'tcp:80', ...(fenced.includes(h) ? ['fenced'] : [])]);

describe('monitor: isolation rule (pure)', () => {
  function tracker(fenced: string[] = [], self = 'S1') {
    const t = new IsolationTracker(self, T0);
    t.setGroup(groupOf(fenced).map(fromMember));
    return t;
  }

  it('counts itself and the members heard within the freshness window; a strict majority of 6 is 4', () => {
    const t = tracker();
    for (const p of ['S2', 'S3']) t.heard(p, T0 + 100, T0 + 110);
    let st = t.evaluate(T0 + 200);
    assert.deepStrictEqual([st.state, st.reachable.length, st.needed], ['starting', 3, 4]);
    t.heard('S4', T0 + 150, T0 + 160);
    st = t.evaluate(T0 + 200);
    assert.deepStrictEqual([st.state, st.reachable, st.stop], ['majority', ['S1', 'S2', 'S3', 'S4'], false]);
    // 1.5 s later without news, nobody is fresh any more.
    st = t.evaluate(T0 + 100 + ISOLATION_DEFAULTS.freshMs + 1);
    assert.strictEqual(st.state, 'no-majority');
  });

  it('fenced members do not vote: 5 voters need 3', () => {
    const t = tracker(['S6']);
    t.heard('S2', T0, T0 + 1);
    t.heard('S3', T0, T0 + 1);
    const st = t.evaluate(T0 + 10);
    assert.deepStrictEqual([st.state, st.voters.length, st.needed], ['majority', 5, 3]);
    // Still pinged: the gate needs to know when a fenced target was last seen.
    assert.ok(t.peers().some((m) => m.hostname === 'S6'));
  });

  it('isolated only when no majority contact for more than T_iso (measured from the last majority contact)', () => {
    const t = tracker();
    for (const p of ['S2', 'S3', 'S4']) t.heard(p, T0, T0 + 5);
    t.heard('S5', T0 + 1000, T0 + 1005); // one fresher contact: the 3rd most recent is still T0
    assert.strictEqual(t.evaluate(T0 + ISOLATION_DEFAULTS.tIsoMs).state, 'no-majority');
    const st = t.evaluate(T0 + ISOLATION_DEFAULTS.tIsoMs + 1);
    assert.deepStrictEqual([st.state, st.stop, st.majorityAt], ['isolated', true, T0 + 0]);
    assert.match(st.why, /isolated: reaches 1 of 6/);
  });

  it('a VM that never heard a majority since it started is isolated T_iso after its start', () => {
    const t = tracker();
    assert.strictEqual(t.evaluate(T0 + ISOLATION_DEFAULTS.tIsoMs).state, 'starting');
    assert.strictEqual(t.evaluate(T0 + ISOLATION_DEFAULTS.tIsoMs + 1).state, 'isolated');
  });

  it('a fenced VM must stop whatever it hears; a VM outside the group is not told to stop', () => {
    const f = tracker(['S1']);
    for (const p of ['S2', 'S3', 'S4', 'S5']) f.heard(p, T0, T0 + 1);
    const st = f.evaluate(T0 + 10);
    assert.deepStrictEqual([st.state, st.stop], ['fenced', true]);
    const od = tracker([], 'OD1');
    assert.deepStrictEqual([od.evaluate(T0 + 60_000).state, od.evaluate(T0 + 60_000).stop], ['not-member', false]);
  });

  it('a VM removed from the group after it was a member stops and stays stopped', () => {
    const t = tracker();
    t.setGroup(groupOf().filter((r) => r[0] !== 'S1').map(fromMember));
    const st = t.evaluate(T0 + 10);
    assert.deepStrictEqual([st.state, st.stop], ['removed', true]);
    assert.strictEqual(t.gate('S2', T0 + 60_000).ok, false);
  });

  it('a group of one is its own majority', () => {
    const t = new IsolationTracker('S1', T0);
    t.setGroup([fromMember(['S1', '127.0.1.1', 'RS1', '-'])]);
    assert.strictEqual(t.evaluate(T0 + 60_000).state, 'majority');
  });

  it('settings are checked together: margin below interval + tick + timeout is refused', () => {
    assert.throws(() => validateIsolationSettings({ ...ISOLATION_DEFAULTS, marginMs: 1000 }), /margin \(1000 ms\) must be at least/);
    assert.throws(() => validateIsolationSettings({ ...ISOLATION_DEFAULTS, tIsoMs: 1000 }), /T_iso \(1000 ms\) must be longer/);
    assert.throws(() => validateIsolationSettings({ ...ISOLATION_DEFAULTS, freshMs: 500 }), /freshness/);
    assert.throws(() => validateIsolationSettings({ ...ISOLATION_DEFAULTS, probeIntervalMs: NaN }), /probeIntervalMs/);
  });
});

describe('monitor: isolation gate (fence could not reach the host)', () => {
  const wait = ISOLATION_DEFAULTS.tIsoMs + ISOLATION_DEFAULTS.marginMs;
  function side(members: string[], at: number) {
    const t = new IsolationTracker('S1', T0);
    t.setGroup(groupOf().map(fromMember));
    for (const p of members) t.heard(p, at, at + 2);
    return t;
  }

  it('refuses on a minority side, whatever the target', () => {
    const t = side(['S4'], T0 + 2000);
    const v = t.gate('S2', T0 + 2010);
    assert.strictEqual(v.ok, false);
    assert.match((v as { why: string }).why, /no strict majority on this side: reaches 2 of 6/);
    assert.strictEqual((v as { retryAfterMs: number }).retryAfterMs, ISOLATION_DEFAULTS.probeIntervalMs);
  });

  it('on the majority side waits T_iso + margin after the target was last seen, then allows', () => {
    const t = side(['S3', 'S4', 'S6'], T0);
    t.heard('S2', T0 + 1000, T0 + 1003); // last answer of the target at T0 + 1003
    // keep the majority fresh
    const fresh = (now: number) => ['S3', 'S4', 'S6'].forEach((p) => t.heard(p, now - 10, now - 5));
    fresh(T0 + 1003 + wait);
    const early = t.gate('S2', T0 + 1003 + wait);
    assert.strictEqual(early.ok, false);
    assert.match((early as { why: string }).why, /S2 last seen 6000 ms ago: an isolated VM stops serving within T_iso \+ margin = 6000 ms/);
    assert.strictEqual((early as { retryAfterMs: number }).retryAfterMs, 1);
    fresh(T0 + 1004 + wait);
    const ok = t.gate('S2', T0 + 1004 + wait);
    assert.strictEqual(ok.ok, true, JSON.stringify(ok));
  });

  it('a target never seen counts as seen when this VM started', () => {
    const t = side(['S3', 'S4', 'S6'], T0 + 3000);
    const v = t.gate('S2', T0 + 3005);
    assert.strictEqual(v.ok, false);
    assert.match((v as { why: string }).why, /not seen since this VM started/);
    assert.strictEqual((v as { retryAfterMs: number }).retryAfterMs, wait - 3005 + 1);
  });

  it('an isolated or fenced VM never allows', () => {
    const t = side(['S3', 'S4', 'S6'], T0);
    assert.strictEqual(t.gate('S2', T0 + 60_000).ok, false);
    const f = new IsolationTracker('S1', T0);
    f.setGroup(groupOf(['S1']).map(fromMember));
    for (const p of ['S3', 'S4', 'S6']) f.heard(p, T0 + 59_000, T0 + 59_001);
    assert.match((f.gate('S2', T0 + 59_002) as { why: string }).why, /cannot decide for the group: S1 is fenced/);
  });
});

describe('monitor: isolation monitor (fake time, pings)', () => {
  function setup(opts: { fenced?: string[]; catchUp?: () => Promise<void>; self?: Identity } = {}) {
    const clock = new FakeClock(T0);
    const files = new MemoryFiles(opts.self ?? { hostname: 'S2', address: '127.0.1.2', realServer: 'RS2', services: 'tcp:80' }, { group: groupOf(opts.fenced) });
    let cut = new Set<string>();
    let starved: [number, number] | undefined;
    const pings: string[] = [];
    const mon = new IsolationMonitor({
      files,
      clock,
      // An answer after 5 ms, or nothing within the deadline.
      ping: (m, timeoutMs) => {
        pings.push(m.hostname);
        return new Promise((resolve) => {
          const reach = !cut.has(m.hostname);
          clock.setTimeout(() => resolve(reach), reach ? 5 : timeoutMs);
        });
      },
      starvation: { inconclusive: (from, to) => !!starved && from <= starved[1] && starved[0] <= to },
      catchUp: opts.catchUp,
    });
    const events = [] as { ev: string; at: number; st: IsolationState }[];
    for (const ev of ['self-fence', 'rejoined'] as const) mon.on(ev, (st: IsolationState) => events.push({ ev, at: clock.now(), st }));
    const warnings: string[] = [];
    mon.on('warn', (w: string) => warnings.push(w));
    return {
      clock,
      files,
      mon,
      events,
      warnings,
      pings,
      setCut: (c: string[]) => (cut = new Set(c)),
      setStarved: (w: [number, number] | undefined) => (starved = w),
    };
  }

  it('S2 cut off with S5 (2 of 6): self-fence after T_iso, not before; majority back: rejoined', async () => {
    const x = setup();
    x.mon.start();
    await x.clock.advance(2000);
    assert.strictEqual(x.mon.majority().ok, true);
    const cutAt = x.clock.now();
    x.setCut(['S1', 'S3', 'S4', 'S6']);
    await x.clock.advance(ISOLATION_DEFAULTS.tIsoMs - 600);
    assert.strictEqual(x.events.length, 0, 'no self-fence before T_iso');
    assert.strictEqual(x.mon.majority().ok, false, 'no majority for claims long before T_iso');
    await x.clock.advance(1000);
    assert.strictEqual(x.events.length, 1);
    assert.strictEqual(x.events[0].ev, 'self-fence');
    const after = x.events[0].at - cutAt;
    // Last majority contact started at most one interval before the cut; one tick of evaluation.
    assert.ok(after > ISOLATION_DEFAULTS.tIsoMs - ISOLATION_DEFAULTS.probeIntervalMs && after <= ISOLATION_DEFAULTS.tIsoMs + ISOLATION_DEFAULTS.tickMs, `self-fence ${after} ms after the cut`);
    assert.deepStrictEqual(x.events[0].st.reachable, ['S2', 'S5']);
    assert.strictEqual(x.mon.stopAsserted, true);
    await x.clock.advance(10_000);
    assert.strictEqual(x.events.length, 1, 'one self-fence, held');
    x.setCut([]);
    await x.clock.advance(1000);
    assert.deepStrictEqual(
      x.events.map((e) => e.ev),
      ['self-fence', 'rejoined'],
    );
    assert.strictEqual(x.mon.stopAsserted, false);
    x.mon.stop();
    assert.strictEqual(x.clock.pending, 0, 'stop clears every timer');
  });

  it('a self-fenced VM catches up before it serves again: fenced meanwhile, it stays out', async () => {
    let files: MemoryFiles | undefined;
    let caughtUp = 0;
    const x = setup({
      // The majority's files say S2 was fenced while it was cut off.
      catchUp: async () => {
        caughtUp++;
        const before = files!.get('group', 'S2')!;
        files!.data.set('group', files!.records('group').map((r) => (r[0] === 'S2' ? [...before, 'fenced'] : r)));
        files!.emit('change', { file: 'group' });
      },
    });
    files = x.files;
    x.mon.start();
    await x.clock.advance(1000);
    x.setCut(['S1', 'S3', 'S4', 'S6']);
    await x.clock.advance(6000);
    assert.deepStrictEqual(x.events.map((e) => e.ev), ['self-fence']);
    x.setCut([]);
    await x.clock.advance(3000);
    assert.strictEqual(caughtUp, 1);
    assert.deepStrictEqual(x.events.map((e) => e.ev), ['self-fence'], 'no rejoined: it learned it was fenced first');
    assert.strictEqual(x.mon.state().state, 'fenced');
    x.mon.stop();
  });

  it('a backup that took a member\'s role is judged under its new name at once: cut off, it self-fences before any deploy', async () => {
    // OD7 (outside the group) takes the role of S2, which was fenced: its store switches identity in
    // place (the role call) and the manager adds S2b to the group. No flow deploy restarts this
    // monitor (it failed, or has not happened yet): the rule must still apply to S2b.
    const od: Identity = { hostname: 'OD7', address: '127.0.1.7', realServer: 'RS2', services: 'tcp:80' };
    const x = setup({ fenced: ['S2'], self: od });
    x.mon.start();
    await x.clock.advance(2000);
    assert.strictEqual(x.mon.state().state, 'not-member');
    od.hostname = 'S2b';
    await x.files.edit({ file: 'group', op: 'Add', record: ['S2b', '127.0.1.7', 'RS2', 'tcp:80'] });
    await x.clock.advance(1000);
    assert.strictEqual(x.mon.state().state, 'majority', 'S2b is a voter that hears the majority');
    assert.ok(x.warnings.some((w) => /now S2b \(was OD7\)/.test(w)), x.warnings.join(' | '));
    x.setCut(['S1', 'S3', 'S4', 'S5', 'S6']);
    await x.clock.advance(ISOLATION_DEFAULTS.tIsoMs + 1000);
    assert.deepStrictEqual(x.events.map((e) => e.ev), ['self-fence']);
    assert.strictEqual(x.events[0].st.state, 'isolated');
    assert.ok(x.events[0].st.reachable.includes('S2b'));
    x.mon.stop();
  });

  it('a catch-up that fails keeps the VM stopped and is tried again', async () => {
    let calls = 0;
    const x = setup({ catchUp: async () => {
      calls++;
      if (calls === 1) throw new Error('peer refused');
    } });
    x.mon.start();
    await x.clock.advance(1000);
    x.setCut(['S1', 'S3', 'S4', 'S6']);
    await x.clock.advance(6000);
    x.setCut([]);
    await x.clock.advance(2000);
    assert.strictEqual(calls, 2);
    assert.deepStrictEqual(x.events.map((e) => e.ev), ['self-fence', 'rejoined']);
    assert.ok(x.warnings.some((w) => /catching up before rejoining: peer refused/.test(w)));
    x.mon.stop();
  });

  it('losing two of five peers keeps the majority (4 of 6): no self-fence', async () => {
    const x = setup();
    x.mon.start();
    x.setCut(['S1', 'S3']);
    await x.clock.advance(20_000);
    assert.deepStrictEqual(x.events, []);
    assert.strictEqual(x.mon.state().state, 'majority');
    x.mon.stop();
  });

  it('fenced in the group file: self-fence at once, no rejoin with a majority, rejoined once re-admitted', async () => {
    const x = setup({ fenced: ['S2'] });
    x.mon.start();
    await x.clock.advance(10);
    assert.deepStrictEqual(
      x.events.map((e) => [e.ev, e.st.state]),
      [['self-fence', 'fenced']],
    );
    await x.clock.advance(5000);
    assert.strictEqual(x.events.length, 1, 'a fenced VM stays out though it hears everyone');
    assert.strictEqual(x.mon.majority().ok, false, 'and claims nothing');
    // The operator re-admits S2.
    await readmit(x.files, 'S2');
    x.files.emit('change', { file: 'group' });
    await x.clock.advance(300);
    assert.deepStrictEqual(
      x.events.map((e) => e.ev),
      ['self-fence', 'rejoined'],
    );
    x.mon.stop();
  });

  it('starved while cut off from nobody: the verdict is deferred and the fresh answers keep it serving', async () => {
    const x = setup();
    x.mon.start();
    await x.clock.advance(1000);
    // The process is frozen for 4.5 s (longer than T_iso, shorter than T_iso + margin - one ping
    // interval: nobody may have replaced it yet): its timers fire late, all at once.
    const frozenAt = x.clock.now();
    x.setStarved([frozenAt, frozenAt + 4500]);
    x.clock.jump(4500);
    await x.clock.advance(1000);
    assert.deepStrictEqual(x.events, [], 'no self-fence: the members answered once asked again');
    assert.ok(x.warnings.some((w) => /starved meanwhile; asking every member again/.test(w)));
    x.mon.stop();
  });

  it('frozen longer than T_iso + margin: it may have been replaced, so it stops first and serves again only after catching up', async () => {
    let caughtUp = 0;
    const x = setup({ catchUp: async () => void caughtUp++ });
    x.mon.start();
    await x.clock.advance(1000);
    const frozenAt = x.clock.now();
    x.setStarved([frozenAt, frozenAt + 8000]);
    x.clock.jump(8000);
    await x.clock.advance(1000);
    assert.deepStrictEqual(
      x.events.map((e) => e.ev),
      ['self-fence', 'rejoined'],
    );
    assert.strictEqual(caughtUp, 1);
    x.mon.stop();
  });

  it('starved and really cut off: the deferred round fails too, and it stops (one ping timeout later)', async () => {
    const x = setup();
    x.mon.start();
    await x.clock.advance(1000);
    const frozenAt = x.clock.now();
    x.setCut(['S1', 'S3', 'S4', 'S6']);
    x.setStarved([frozenAt, frozenAt + 6000]);
    x.clock.jump(6000);
    await x.clock.advance(2000);
    assert.deepStrictEqual(
      x.events.map((e) => e.ev),
      ['self-fence'],
    );
    assert.ok(x.events[0].at - (frozenAt + 6000) <= ISOLATION_DEFAULTS.probeTimeoutMs + ISOLATION_DEFAULTS.tickMs, `stopped ${x.events[0].at - frozenAt - 6000} ms after it ran again`);
    x.mon.stop();
  });

  it('the gate of the monitor is the rule 5 of the tracker, on the monitor\'s contacts', async () => {
    const x = setup();
    x.mon.start();
    await x.clock.advance(1000);
    x.setCut(['S4']);
    const cutAt = x.clock.now();
    await x.clock.advance(3000);
    const v = x.mon.check('S4', x.clock.now());
    assert.strictEqual(v.ok, false);
    assert.ok((v as { retryAfterMs: number }).retryAfterMs > 0);
    await x.clock.advance((v as { retryAfterMs: number }).retryAfterMs);
    assert.strictEqual(x.mon.check('S4', x.clock.now()).ok, true);
    assert.ok(x.clock.now() - cutAt >= ISOLATION_DEFAULTS.tIsoMs + ISOLATION_DEFAULTS.marginMs - ISOLATION_DEFAULTS.probeIntervalMs);
    x.mon.stop();
  });
});

describe('monitor: readmit', () => {
  const id = { hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: 'tcp:80' };
  it('sets a fenced member back to member; refuses anything else and changes nothing', async () => {
    const files = new MemoryFiles(id, { group: groupOf(['S2']) });
    const r = await readmit(files, 'S2');
    assert.strictEqual(r.line, 'group, Mod, S2, 127.0.1.2, RS2, tcp:80, fenced, S2, 127.0.1.2, RS2, tcp:80');
    assert.deepStrictEqual(files.get('group', 'S2'), ['S2', '127.0.1.2', 'RS2', 'tcp:80']);
    const before = JSON.stringify(files.records('group'));
    for (const [arg, kind] of [
      ['S2', 'not-fenced'],
      ['S9', 'not-in-group'],
      ['S2; rm -rf /', 'bad-name'],
      [42, 'bad-name'],
    ] as const) {
      await assert.rejects(readmit(files, arg), (e: unknown) => e instanceof ReadmitError && e.kind === kind);
    }
    assert.strictEqual(JSON.stringify(files.records('group')), before);
  });
});
