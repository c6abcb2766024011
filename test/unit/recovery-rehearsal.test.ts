// The rehearsal (lib/recovery/rehearsal.ts) against the plan itself: in each state, rehearse the
// failure of a VM, check that nothing changed (files, and no mutating call reached a host), then
// run the real backup plan in the same state and check it does what the rehearsal said: the same
// fence, confirmations, placement and OD, procedure and variables, the same edits (Diff.dat lines)
// and the same mutating hypervisor commands.
import { strict as assert } from 'assert';
import type { IsolationGate } from '../../lib/records/cluster-api';
import { FILE_NAMES } from '../../lib/records/files';
import { RecoveryError, runBackupPlan, type PlanDriver, type RecoveryResult } from '../../lib/recovery/backup-plan';
import { rehearse, RehearsalError, type Rehearsal } from '../../lib/recovery/rehearsal';
import { MemoryFiles } from '../support/memory-files';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { main } from '../../lib/ops/cli';
import { domainsByHost, fourOds, sixVmGroup, threeHosts } from '../support/plan-fixture';

const READ_ONLY = /^(virsh domstate|sha256sum) /;

/** A host over a domain table and a set of files; every call logged in the command form the rehearsal reports. */
class Host implements PlanDriver {
  readonly calls: string[] = [];
  unreachable = false;
  constructor(
    readonly domains: Map<string, string>,
    readonly scripts = new Set<string>(),
  ) {}
  private hit(command: string): void {
    this.calls.push(command);
    if (this.unreachable) throw Object.assign(new Error('connect ECONNREFUSED'), { kind: 'unreachable' });
  }
  private state(name: string): string {
    const s = this.domains.get(name);
    if (s === undefined) throw Object.assign(new Error(`error: failed to get domain '${name}'`), { kind: 'domain-absent' });
    return s;
  }
  async domstate(name: string) {
    this.hit(`virsh domstate ${name}`);
    return this.state(name);
  }
  async destroy(name: string) {
    this.hit(`virsh destroy ${name}`);
    if (this.state(name) === 'shut off') throw Object.assign(new Error('domain is not running'), { kind: 'failed' });
    this.domains.set(name, 'shut off');
  }
  async autostartOff(name: string) {
    this.hit(`virsh autostart --disable ${name}`);
    this.state(name);
  }
  async resume(name: string) {
    this.hit(`virsh resume ${name}`);
    if (this.state(name) !== 'paused') throw Object.assign(new Error('not paused'), { kind: 'failed' });
    this.domains.set(name, 'running');
  }
  async suspend(name: string) {
    this.hit(`virsh suspend ${name}`);
    if (this.state(name) !== 'running') throw Object.assign(new Error('not running'), { kind: 'failed' });
    this.domains.set(name, 'paused');
  }
  async fileHashes(paths: string[]) {
    this.hit(`sha256sum ${paths.join(' ')}`);
    return new Map(paths.filter((p) => this.scripts.has(p)).map((p) => [p, 'f'.repeat(64)]));
  }
  async runFile(path: string, vars?: Record<string, string | number>) {
    this.hit(`env ${Object.entries(vars ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')} /bin/sh ${path}`);
    if (!this.scripts.has(path)) throw Object.assign(new Error(`${path}: no such file`), { kind: 'procedure-absent' });
    return { stdout: '', stderr: '', code: 0 };
  }
}

const ME = { hostname: 'S1', address: '127.0.1.1', realServer: 'RS1', services: '-' };
const T0 = Date.parse('2026-12-03T03:12:00.000Z');
const script = (name: string) => `/var/lib/p2p-ha/install/${name}.sh`;
const ALL = new Set(['S1', 'S2', 'S3', 'S4', 'S5', 'S6'].map(script));

function world() {
  const files = new MemoryFiles(ME, {
    group: sixVmGroup(),
    realserver: threeHosts(),
    'available-od': fourOds(),
  });
  const hosts = new Map<string, Host>(domainsByHost().map(([rs, d]) => [rs, new Host(d, new Set(ALL))]));
  let clock = T0;
  const gate: IsolationGate = { check: () => ({ ok: true, detail: 'majority 4/6; S2 unseen 7 s' }) };
  const deps = {
    files,
    driver: (rs: string) => hosts.get(rs),
    isolation: gate as IsolationGate | undefined,
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
      await new Promise((r) => setImmediate(r));
    },
    assignRole: async () => undefined,
  };
  return { files, hosts, deps, gate };
}

type World = ReturnType<typeof world>;

const snapshot = (files: MemoryFiles) => JSON.stringify(FILE_NAMES.map((f) => files.records(f)));
const calls = (w: World) => [...w.hosts].flatMap(([rs, h]) => h.calls.map((c) => `${rs}: ${c}`));
const mutating = (w: World) => calls(w).filter((c) => !READ_ONLY.test(c.slice(c.indexOf(': ') + 2)));

/** Rehearse, assert nothing changed, then make the state the rehearsal assumed real (the heartbeat's record). */
async function rehearseUnchanged(w: World, target: string): Promise<Rehearsal> {
  const before = snapshot(w.files);
  const r = await rehearse({ target }, { files: w.files, driver: w.deps.driver, isolation: w.deps.isolation, roleConfigured: true, now: w.deps.now });
  assert.equal(snapshot(w.files), before, 'the rehearsal changed a file');
  assert.deepEqual(w.files.lines, [], 'the rehearsal sent an edit');
  assert.deepEqual(mutating(w), [], 'the rehearsal ran a mutating command');
  for (const h of w.hosts.values()) h.calls.length = 0;
  return r;
}

/** The heartbeat's hand-over, as the rehearsal assumed it: the target confirmed by its P1. */
async function confirm(w: World, target: string, by: string, since = T0): Promise<void> {
  const before = w.files.get('problem', target);
  const record = [target, by, 'network', 'confirmed', '-', new Date(since).toISOString()];
  await w.files.edit(before ? { file: 'problem', op: 'Mod', before, record } : { file: 'problem', op: 'Add', record });
  w.files.lines.length = 0;
}

async function runPlan(w: World, target: string, by: string): Promise<{ r?: RecoveryResult; e?: RecoveryError }> {
  try {
    return { r: await runBackupPlan({ target, detectedBy: by, kind: 'network' }, w.deps) };
  } catch (e) {
    return { e: e as RecoveryError };
  }
}

const sorted = (xs: string[]) => xs.slice().sort();

describe('recovery rehearsal (a dry run of the backup plan)', () => {
  it('a healthy VM: the rehearsal says what the plan then does, and changes nothing', async () => {
    const w = world();
    const h = await rehearseUnchanged(w, 'S2');
    assert.equal(h.detection.p1, 'S1');
    assert.equal(h.detection.p2, 'S3');
    assert.equal(h.detection.verdict, true);
    assert.equal(h.fence.how, 'destroyed');
    assert.equal(h.fence.stateNow, 'running');
    assert.equal(h.confirmation.needed, false);
    // If RS2 failed whole: S2's P1 (S1) and S5's P1 (S4) would confirm, both off RS2.
    assert.deepEqual(h.confirmation.ifHostFails, ['S1', 'S4']);
    assert.deepEqual([h.placement?.realServer, h.placement?.od], ['RS3', 'OD3']);
    assert.equal(h.placement!.candidates[0].rank, 1);
    assert.deepEqual(h.procedure, {
      path: script('S2'),
      checked: true,
      variables: { TARGET: 'S2', TARGET_ADDRESS: '127.0.1.2', BACKUP: 'S2b', BACKUP_ADDRESS: '127.0.2.3', OD: 'OD3', REAL_SERVER: 'RS3', SERVICES: 'tcp:80' },
    });
    assert.equal(h.outcome.ok, true);
    assert.equal(h.role.backup, 'S2b');

    await confirm(w, 'S2', 'S1');
    const { r } = await runPlan(w, 'S2', 'S1');
    assert.ok(r, 'the plan failed');
    assert.equal(r.fence, h.fence.how);
    assert.deepEqual([r.realServer, r.od, r.address, r.backup], [h.placement!.realServer, h.placement!.od, h.placement!.address, h.role.backup]);
    assert.deepEqual(r.placement.candidates, h.placement!.candidates);
    assert.deepEqual(sorted(w.files.lines), sorted(h.edits));
    assert.deepEqual(sorted(mutating(w)), sorted(h.wouldRun.map((c) => `${c.realServer}: ${c.command}`)));
  });

  it('host unreachable, one confirmer: the rehearsal and the plan both refuse (unconfirmed), nothing started', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    const h = await rehearseUnchanged(w, 'S2');
    assert.equal(h.fence.how, 'host-not-reached');
    assert.match(h.fence.stateNow!, /^unreachable/);
    assert.equal(h.confirmation.needed, true);
    assert.deepEqual(h.outcome.ok ? undefined : [h.outcome.step, h.outcome.kind], ['confirm', 'unconfirmed']);
    await confirm(w, 'S2', 'S1');
    const { e } = await runPlan(w, 'S2', 'S1');
    assert.deepEqual([e?.step, e?.kind], ['confirm', 'unconfirmed']);
    assert.deepEqual(sorted(w.files.lines), sorted(h.edits));
    assert.deepEqual(sorted(mutating(w).filter((c) => !c.startsWith('RS2'))), sorted(h.wouldRun.map((c) => `${c.realServer}: ${c.command}`)));
  });

  it('host unreachable, two confirmers and the gate: confirmed-unreachable, placed off the dead host', async () => {
    const w = world();
    w.hosts.get('RS2')!.unreachable = true;
    await w.files.edit({ file: 'problem', op: 'Add', record: ['S5', 'S4', 'network', 'confirmed', '-', new Date(T0).toISOString()] });
    w.files.lines.length = 0;
    const h = await rehearseUnchanged(w, 'S2');
    assert.equal(h.fence.how, 'host-not-reached');
    assert.deepEqual(h.confirmation.confirmedBy, ['S1', 'S4']);
    assert.equal(h.confirmation.isolation, 'majority 4/6; S2 unseen 7 s');
    assert.ok(h.outcome.ok, JSON.stringify(h.outcome));
    assert.notEqual(h.placement!.realServer, 'RS2');
    await confirm(w, 'S2', 'S1');
    const { r } = await runPlan(w, 'S2', 'S1');
    assert.equal(r?.fence, 'confirmed-unreachable');
    assert.deepEqual([r!.realServer, r!.od], [h.placement!.realServer, h.placement!.od]);
    assert.deepEqual(sorted(w.files.lines), sorted(h.edits));
    assert.ok(h.edits.some((l) => /^realserver, Mod, RS2, .*, down$/.test(l)), `no host-down edit: ${h.edits.join(' | ')}`);
  });

  it('the chosen OD is already running (taken): both go to the next OD', async () => {
    const w = world();
    w.hosts.get('RS3')!.domains.set('OD3', 'running');
    const h = await rehearseUnchanged(w, 'S2');
    assert.deepEqual(h.skippedOds.map((o) => [o.od, o.state]), [['OD3', 'running']]);
    assert.deepEqual([h.placement?.realServer, h.placement?.od], ['RS3', 'OD3x']);
    await confirm(w, 'S2', 'S1');
    const { r } = await runPlan(w, 'S2', 'S1');
    assert.deepEqual([r?.od, r?.lostRaces], ['OD3x', ['OD3']]);
    assert.deepEqual(sorted(w.files.lines), sorted(h.edits));
    assert.deepEqual(sorted(mutating(w)), sorted(h.wouldRun.map((c) => `${c.realServer}: ${c.command}`)));
  });

  it('no installation procedure on the chosen host: both fail at install (procedure-absent)', async () => {
    const w = world();
    w.hosts.get('RS3')!.scripts.clear();
    const h = await rehearseUnchanged(w, 'S2');
    assert.deepEqual(h.outcome.ok ? undefined : [h.outcome.step, h.outcome.kind], ['install', 'procedure-absent']);
    await confirm(w, 'S2', 'S1');
    const { e } = await runPlan(w, 'S2', 'S1');
    assert.deepEqual([e?.step, e?.kind], ['install', 'procedure-absent']);
    assert.deepEqual(sorted(w.files.lines), sorted(h.edits));
    // The plan tried the procedure (it failed) and put the OD back to sleep: the rehearsal said so.
    assert.deepEqual(sorted(mutating(w)), sorted(h.wouldRun.map((c) => `${c.realServer}: ${c.command}`)));
  });

  it('a VM in maintenance gets no verdict; a fenced one is not watched; bad names are refused', async () => {
    const w = world();
    await w.files.edit({ file: 'group', op: 'Mod', before: ['S2', '127.0.1.2', 'RS2', 'tcp:80'], record: ['S2', '127.0.1.2', 'RS2', 'tcp:80', 'maintenance'] });
    await w.files.edit({ file: 'group', op: 'Mod', before: ['S3', '127.0.1.3', 'RS3', 'tcp:80'], record: ['S3', '127.0.1.3', 'RS3', 'tcp:80', 'fenced'] });
    w.files.lines.length = 0;
    const m = await rehearseUnchanged(w, 'S2');
    assert.equal(m.detection.verdict, false);
    assert.match(m.detection.why!, /maintenance/);
    const f = await rehearseUnchanged(w, 'S3');
    assert.equal(f.detection.verdict, false);
    assert.match(f.detection.why!, /fenced/);
    const deps = { files: w.files, driver: w.deps.driver, roleConfigured: false };
    await assert.rejects(rehearse({ target: 'S2; rm -rf /' }, deps), RehearsalError);
    await assert.rejects(rehearse({ target: 'S9' }, deps), /not in the group/);
  });

  it('a real server without a driver here: the rehearsal says the host is not reached, as the plan would', async () => {
    const w = world();
    const h = await rehearse({ target: 'S2' }, { files: w.files, driver: (rs) => (rs === 'RS2' ? undefined : w.hosts.get(rs)), isolation: w.gate, roleConfigured: false, now: w.deps.now });
    assert.equal(h.fence.how, 'host-not-reached');
    assert.match(h.fence.stateNow!, /no driver/);
    assert.deepEqual(mutating(w), []);
  });

  it('p2p-ha rehearse S2 asks the admin endpoint and prints the decision with its reasons', async () => {
    const w = world();
    const seen: unknown[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push([req.method, req.url, req.headers.authorization, JSON.parse(body)]);
        rehearse(JSON.parse(body), { files: w.files, driver: w.deps.driver, isolation: w.gate, roleConfigured: true, now: w.deps.now }).then(
          (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r)),
          (e: Error) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: e.message })),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      let out = '';
      let err = '';
      const io = { out: (x: string) => (out += x), err: (x: string) => (err += x), env: { P2P_HA_ADMIN_TOKEN: 'tok' } };
      assert.equal(await main(['rehearse', 'S2', '--url', url], io), 0, err);
      assert.deepEqual(seen[0], ['POST', '/p2p-ha/rehearse', 'Bearer tok', { target: 'S2' }]);
      assert.match(out, /fence: +destroyed on RS2 \(state now: running\)/);
      assert.match(out, /placement: +OD3 \(127\.0\.2\.3\) on RS3/);
      assert.match(out, /RS3: rank 1; load 0\.1, 2 VMs/);
      assert.match(out, /if RS2 failed whole: confirmed by S1, S4 \(enough\)/);
      assert.match(out, /RS2: virsh destroy S2/);
      assert.match(out, /group, Add, S2b, 127\.0\.2\.3, RS3, tcp:80/);
      assert.match(out, /outcome: +S2 -> S2b on RS3/);
      assert.deepEqual(mutating(w), [], 'the command line changed something');
      out = '';
      assert.equal(await main(['rehearse', 'S9', '--url', url], io), 1);
      assert.match(err, /S9 is not in the group file/);
      assert.equal(await main(['rehearse'], io), 2);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
