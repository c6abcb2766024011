// Issue 12 on real Node-RED processes: never two serving copies across a cut.
// (a), (b): the recovery cluster runs inside a network namespace this test creates, one real
// server's VMs and its SSH endpoint are cut off by iptables DROP rules for 20 s, then healed
// (harness/cluster/isolation-scenario.ts); every 100 ms each VM's service is asked who it serves.
// Needs root, ip and iptables: under CI=true their absence fails naming the apt command, elsewhere
// the two are skipped loudly. (d): a fenced server restarted by an operator stays out until
// re-admitted (loopback only, no namespace needed).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { NetNamespace, requireNetns } from '../../harness/cluster/netns';
import type { ScenarioResult } from '../../harness/cluster/isolation-scenario';
import { RecoveryCluster } from '../../harness/recovery/recovery-cluster';
import { httpRequest } from '../../harness/http';
import { EDIT_PATH } from '../../harness/recovery/recovery-flow';
import { sleep, waitFor } from '../../harness/wait';

const SCENARIO = path.join(__dirname, '..', '..', 'harness', 'cluster', 'isolation-scenario.js');

async function inNamespace(scenario: 'a' | 'b'): Promise<ScenarioResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `p2p-iso-${scenario}-`));
  const out = path.join(dir, 'result.json');
  const log = path.join(dir, 'scenario.log');
  const ns = NetNamespace.create(`p2p-iso-${process.pid}-${scenario}`);
  try {
    const child = ns.spawn([process.execPath, SCENARIO, scenario, out], log);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 420_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    if (code !== 0 || !fs.existsSync(out)) throw new Error(`scenario ${scenario} ended with ${code}:\n${text.slice(-4000)}`);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as ScenarioResult;
    if (r.error) throw new Error(`scenario ${scenario}: ${r.error}\n${text.slice(-3000)}`);
    return r;
  } finally {
    ns.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(r: ScenarioResult): string {
  const iso = Object.keys(r.backups);
  return iso
    .map((t) => `${t}: last answer ${r.lastAnswerAfterCut[t]} ms after the cut, backup ${r.backups[t].vm} first answered at ${r.backups[t].firstAnswer} ms`)
    .join('; ') + `\nproblem file after the heal:\n${r.problemsAfterHeal}`;
}

function judge(r: ScenarioResult, o: { backups: 'all' | 'or-original' }): void {
  try {
    check(r, o);
  } catch (e) {
    const { rounds: _r, ...rest } = r;
    (e as Error).message += `\n${report(r)}\n${JSON.stringify({ ...rest, doubles: r.doubles.slice(0, 20) }, null, 1).slice(0, 6000)}`;
    throw e;
  }
}

/**
 * backups 'all': every isolated member was replaced and stays out. 'or-original': a member the
 * majority did not replace (its recovery failed, recorded in the problem file) may serve again
 * after the heal, as the only copy (the doubles check covers that).
 */
function check(r: ScenarioResult, o: { backups: 'all' | 'or-original' }): void {
  assert.ok(r.rounds.length > (r.cutMs + 10_000) / 100 / 2, `sampled every 100 ms (${r.rounds.length} rounds)`);
  assert.deepEqual(r.doubles.slice(0, 10), [], `two VMs answered one service (${r.doubles.length} times): ${JSON.stringify(r.doubles.slice(0, 10))}`);
  assert.deepEqual(r.minorityClaims, [], 'no recovery claimed on the minority side');
  assert.deepEqual(r.minorityFailures, [], 'no failure sent on the minority side');
  for (const [vm, fenced] of Object.entries(r.selfFences)) assert.ok(fenced, `${vm} self-fenced`);
  for (const t of Object.keys(r.backups)) {
    if (!r.backups[t].vm && o.backups === 'or-original') {
      // Not replaced (its recovery failed, with the reason in the problem file, or was never
      // confirmed on a loaded machine): it is still a member and the only copy (doubles above).
      assert.equal(r.groupStateAfterHeal[t], 'member', `${t}: not replaced, so still a member`);
      assert.doesNotMatch(r.problemsAfterHeal, new RegExp(`^${t}, .*, recovered, `, 'm'), `${t}: recorded recovered, yet no backup serves`);
      continue;
    }
    assert.ok(r.backups[t].vm, `${t} has a backup after the heal: ${JSON.stringify(r.backups)}`);
    assert.ok(r.backups[t].firstAnswer !== null, `${t}'s backup serves`);
    assert.equal(r.answersAfterHeal[t], false, `${t} stays out after the heal`);
    assert.notEqual(r.groupStateAfterHeal[t], 'member', `${t} is not a serving member after the heal`);
  }
}

describe('isolation: at most one serving copy across a cut (network namespace, iptables)', function () {
  this.timeout(480_000);

  it('(a) RS2 with S2, S5, OD2 and its SSH endpoint cut off for 20 s: one copy at every sample, the originals stay out after the heal', async function () {
    requireNetns(this);
    const r = await inNamespace('a');
    judge(r, { backups: 'all' });
    console.log(`      (a) ${r.rounds.length} samples, no double; ${report(r)}`);
  });

  it('(b) RS1 cut off with S1 and S4, which hold both monitors of S5: no recovery starts on the minority side', async function () {
    requireNetns(this);
    const r = await inNamespace('b');
    judge(r, { backups: 'or-original' });
    console.log(`      (b) ${r.rounds.length} samples, no double; ${report(r)}`);
  });
});

describe('isolation: a fenced server does not rejoin (loopback)', function () {
  this.timeout(180_000);
  let rc: RecoveryCluster | undefined;
  after(async () => {
    await rc?.stop();
  });

  it('(d) S2 fenced, then restarted by an operator: it never serves and stays fenced until re-admitted', async () => {
    // A re-examination longer than the restart: this test is about the fenced server itself, not
    // about its managers (until the ring leaves fenced members out, S1 would fence S2 again).
    rc = await RecoveryCluster.start({ vms: 3, reexamNetworkMs: 60_000 });
    const c = rc;
    const s2 = c.vm('S2');
    await waitFor(async () => (await c.service(s2.ip)) === 'S2', { what: 'S2 serves', timeoutMs: 20_000, intervalMs: 200 });
    // What a recovery of S2 writes: S1 (its P1) records the failure, then S2's group record state
    // fenced. Peers accept the group edit only with that dated claim (edit authority G2).
    const claim = await httpRequest(c.vm('S1').url + EDIT_PATH, {
      method: 'POST',
      body: { file: 'problem', op: 'Add', record: ['S2', 'S1', 'network', 'failed', '-', new Date().toISOString(), 'test: fenced by hand'] },
      timeoutMs: 10_000,
    });
    assert.equal(claim.status, 200, claim.body);
    const rec = c.recordsOf('S1', 'group').find((r) => r[0] === 'S2')!;
    const fencedRec = [...rec.slice(0, 4), 'fenced', rec[5] ?? '-'];
    const r = await httpRequest(c.vm('S1').url + EDIT_PATH, { method: 'POST', body: { file: 'group', op: 'Mod', before: rec, record: fencedRec }, timeoutMs: 10_000 });
    assert.equal(r.status, 200, r.body);
    await waitFor(async () => (await c.service(s2.ip)) === null, { what: 'S2 stops serving once it learns it is fenced', timeoutMs: 30_000, intervalMs: 100 });
    // The operator (or the host's autostart) restarts S2's server.
    await c.cluster.kill('S2');
    let answered = 0;
    let samples = 0;
    let sampling = true;
    const loop = (async () => {
      while (sampling) {
        samples++;
        if ((await c.service(s2.ip)) === 'S2') answered++;
        await sleep(100);
      }
    })();
    await c.cluster.start('S2');
    await sleep(8000);
    sampling = false;
    await loop;
    assert.equal(answered, 0, `the restarted fenced S2 answered its service ${answered} times in ${samples} samples`);
    for (const n of ['S1', 'S2', 'S3']) {
      assert.deepEqual(c.recordsOf(n, 'group').find((x) => x[0] === 'S2')?.slice(4, 5), ['fenced'], `S2 stays fenced in ${n}'s group file`);
    }
    assert.match(c.logs('S2'), /fenced in the group file \(replaced\): not rejoining|self-fence: S2 is fenced/);
    // Re-admitted by the operator (the sidebar's button posts this): it serves again.
    const res = await httpRequest(`${c.vm('S1').url}/p2p-ha/readmit`, { method: 'POST', body: { hostname: 'S2' }, timeoutMs: 10_000 });
    assert.equal(res.status, 200, res.body);
    await waitFor(async () => (await c.service(s2.ip)) === 'S2', { what: 'S2 serves again after re-admission', timeoutMs: 15_000, intervalMs: 200 });
    assert.notEqual(c.recordsOf('S2', 'group').find((x) => x[0] === 'S2')?.[4], 'fenced', 'S2 a member again');
    const again = await httpRequest(`${c.vm('S1').url}/p2p-ha/readmit`, { method: 'POST', body: { hostname: 'S2' }, timeoutMs: 10_000 });
    assert.equal(again.status, 409, 'a member cannot be re-admitted');
  });
});
