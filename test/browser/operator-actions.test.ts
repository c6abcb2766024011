// The operator's actions in the cluster sidebar, in Debian's Chromium against the loopback
// recovery cluster (six real Node-RED VMs, three simulated real servers over SSH, one OD each):
// rehearse a VM's failover (the result shows the fence, the confirmations, the candidates with
// their reasons, the OD and the procedure, and nothing changed: no file, no mutating command on
// any real server), maintenance on and off for a VM and for a real server (confirmed first; the
// state replicates to the other VMs; the next rehearsal places nothing on the host in
// maintenance), evacuate asks first (cancel moves nothing; without a p2p-maintenance node the
// runtime's refusal is shown; with one, RS2's VMs move and the sidebar says where), an error from
// the runtime is shown, and without the write permission the write buttons are disabled (the
// editor's permission check is made to say no: no adminAuth user here). Screenshots in .artifacts/.
import { strict as assert } from 'assert';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { RecoveryCluster } from '../../harness/recovery/recovery-cluster';
import { artifactsDir, launchBrowser, openEditor, requireChromium } from '../../harness/browser';
import { waitFor } from '../../harness/wait';
import { httpRequest } from '../../harness/http';

// Browser globals, used only inside page.evaluate callbacks (which run in Chromium).
declare const RED: any, document: any;

/** A command line that changes something on a real server (the sims log every exec). */
const MUTATING = /\b(destroy|start|shutdown|suspend|resume|autostart|define|undefine|managedsave|setmem|reset|virt-clone)\b|\/bin\/sh \S+\.sh/;
const RS = ['RS1', 'RS2', 'RS3'];
/**
 * The files a rehearsal or a cancelled action must leave alone: group and available-od whole, and
 * the problem records of the VMs concerned (realserver moves with the load collector, and on a
 * loaded machine a heartbeat may record and clear a suspicion of some other VM meanwhile).
 */
const FILES = ['group', 'available-od'];
const CONCERNED = ['S2', 'S5'];

describe('editor: operator actions in the cluster sidebar (maintenance, evacuate, rehearse)', function () {
  this.timeout(400_000);
  let rc: RecoveryCluster | undefined;
  let browser: Browser;
  let closeBrowser: (() => Promise<void>) | undefined;
  let page: Page;
  const C = '#p2p-ha-cluster-content';

  before(async function () {
    requireChromium(this);
    rc = await RecoveryCluster.start();
    ({ browser, close: closeBrowser } = await launchBrowser());
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await openEditor(page, rc.vm('S1').url);
    await page.evaluate("RED.sidebar.show('p2p-ha-cluster')");
    await page.waitForSelector(`${C} tr[data-vm-row="S6"] button[data-act="rehearse"]`, { timeout: 60_000 });
    // The load collector has written every real server (their maintenance buttons need the record).
    await page.waitForSelector(`${C} tr[data-rs="RS3"] button[data-act="rs-maintenance"]`, { timeout: 90_000 });
  });

  after(async () => {
    await closeBrowser?.();
    await rc?.stop();
  });

  const files = (vm: string) =>
    JSON.stringify([...FILES.map((f) => rc!.recordsOf(vm, f).map((r) => r.join(','))), rc!.recordsOf(vm, 'problem').filter((p) => CONCERNED.includes(p[0])).map((r) => r.join(','))]);
  const logMarks = () => RS.map((r) => rc!.sim(r).execLog.length);
  const mutatingSince = (marks: number[]) => RS.flatMap((r, i) => rc!.sim(r).execLog.slice(marks[i]).filter((l) => MUTATING.test(l)).map((l) => `${r}: ${l}`));
  const click = (selector: string) => page.click(selector, { timeout: 30_000 });

  it('rehearse S2: the result shows what the plan would do, and nothing changed', async () => {
    const before = files('S1');
    const marks = logMarks();
    await click(`${C} tr[data-vm-row="S2"] button[data-act="rehearse"]`);
    const panel = `${C} #p2p-ha-rehearsal[data-target="S2"]`;
    await page.waitForSelector(`${panel}[data-outcome="ok"]`, { timeout: 60_000 });
    assert.equal(await page.getAttribute(`${panel} tr[data-row="fence"]`, 'data-fence'), 'destroyed');
    const host = await page.getAttribute(`${panel} tr[data-row="placement"]`, 'data-host');
    const od = await page.getAttribute(`${panel} tr[data-row="placement"]`, 'data-od');
    assert.ok(host && RS.includes(host), `placement host ${host}`);
    assert.equal(od, `OD${host!.slice(2)}`);
    // Every real server is a candidate, the chosen one ranked first.
    assert.equal(await page.getAttribute(`${panel} tr[data-candidate]:first-child`, 'data-rank'), '1');
    assert.equal((await page.$$(`${panel} tr[data-candidate]`)).length, 3);
    assert.match((await page.textContent(`${panel} tr[data-row="procedure"]`)) ?? '', /\/var\/lib\/p2p-ha\/install\/S2\.sh/);
    assert.match((await page.textContent(panel)) ?? '', /virsh destroy S2/);
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-rehearsal.png') });
    assert.equal(files('S1'), before, 'the rehearsal changed a file');
    assert.deepEqual(mutatingSince(marks), [], 'the rehearsal ran a mutating command on a real server');
    // No recovery of S2 began (a suspicion that a loaded machine's heartbeat records and clears is not one).
    assert.ok(!rc!.recordsOf('S1', 'problem').some((p) => p[0] === 'S2' && ['confirmed', 'fencing', 'recovering', 'recovered', 'failed'].includes(p[3])), 'a recovery of S2 began');
  });

  it('VM maintenance on and off from its row; the state replicates to the other VMs', async () => {
    await click(`${C} tr[data-vm-row="S5"] button[data-act="vm-maintenance"][data-on="true"]`);
    await page.waitForSelector(`${C} tr[data-vm-row="S5"][data-state="maintenance"] button[data-act="vm-maintenance"][aria-pressed="true"]`, { timeout: 30_000 });
    await waitFor(() => ['S2', 'S3', 'S6'].every((vm) => rc!.recordsOf(vm, 'group').find((r) => r[0] === 'S5')?.[4] === 'maintenance'), { what: 'S5 in maintenance everywhere', timeoutMs: 30_000 });
    await page.waitForSelector(`${C} #p2p-ha-cluster-message[data-type="ok"]`, { timeout: 10_000 });
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-maintenance-vm.png') });
    await click(`${C} tr[data-vm-row="S5"] button[data-act="vm-maintenance"][data-on="false"]`);
    await page.waitForSelector(`${C} tr[data-vm-row="S5"][data-state="ok"]`, { timeout: 30_000 });
    await waitFor(() => ['S2', 'S3', 'S6'].every((vm) => (rc!.recordsOf(vm, 'group').find((r) => r[0] === 'S5')?.[4] ?? 'member') === 'member'), { what: 'S5 out of maintenance everywhere', timeoutMs: 30_000 });
  });

  it('real server maintenance is confirmed first (cancel changes nothing); the next rehearsal places nothing there', async () => {
    const rehearsed = await page.getAttribute(`${C} #p2p-ha-rehearsal tr[data-row="placement"]`, 'data-host');
    const target = rehearsed!;
    await click(`${C} tr[data-rs="${target}"] button[data-act="rs-maintenance"][data-on="true"]`);
    await page.waitForSelector('#p2p-ha-confirm-cancel', { timeout: 10_000 });
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-maintenance-confirm.png') });
    await click('#p2p-ha-confirm-cancel');
    await new Promise((r) => setTimeout(r, 1500));
    assert.notEqual(rc!.recordsOf('S3', 'realserver').find((r) => r[0] === target)?.[3], 'maintenance', 'cancel put the host in maintenance');
    await click(`${C} tr[data-rs="${target}"] button[data-act="rs-maintenance"][data-on="true"]`);
    await click('#p2p-ha-confirm-ok');
    await page.waitForSelector(`${C} tr[data-rs="${target}"][data-state="maintenance"]`, { timeout: 30_000 });
    await waitFor(() => rc!.recordsOf('S4', 'realserver').find((r) => r[0] === target)?.[3] === 'maintenance', { what: `${target} in maintenance on S4`, timeoutMs: 30_000 });
    // Rehearse again: the host in maintenance is a candidate that is not eligible, and not chosen.
    await click(`${C} tr[data-vm-row="S2"] button[data-act="rehearse"]`);
    await page.waitForSelector(`${C} #p2p-ha-rehearsal[data-target="S2"][data-outcome="ok"]`, { timeout: 60_000 });
    const now = await page.getAttribute(`${C} #p2p-ha-rehearsal tr[data-row="placement"]`, 'data-host');
    assert.notEqual(now, target);
    assert.match((await page.textContent(`${C} #p2p-ha-rehearsal tr[data-candidate="${target}"]`)) ?? '', /state maintenance/);
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-maintenance-rs.png') });
    await click(`${C} tr[data-rs="${target}"] button[data-act="rs-maintenance"][data-on="false"]`);
    await page.waitForSelector(`${C} tr[data-rs="${target}"][data-state="up"]`, { timeout: 30_000 });
  });

  it('evacuate asks first (cancel moves nothing); an error from the runtime is shown, not swallowed', async () => {
    const marks = logMarks();
    const before = files('S1');
    await click(`${C} tr[data-rs="RS2"] button[data-act="evacuate"]`);
    await page.waitForSelector('#p2p-ha-confirm-cancel', { timeout: 10_000 });
    assert.match((await page.textContent('.red-ui-notification')) ?? '', /RS2/);
    await click('#p2p-ha-confirm-cancel');
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(mutatingSince(marks), []);
    assert.equal(files('S1'), before);
    // A request the runtime refuses (a VM that is not in the group file): its reason is shown.
    await page.evaluate(() => {
      const b = document.querySelector('#p2p-ha-cluster-content tr[data-vm-row="S6"] button[data-act="vm-maintenance"]');
      b.setAttribute('data-name', 'S99');
      b.click();
    });
    await page.waitForSelector(`${C} #p2p-ha-cluster-message[data-type="error"]`, { timeout: 20_000 });
    assert.match((await page.textContent(`${C} #p2p-ha-cluster-message`)) ?? '', /S99 is not in the group file/);
  });

  it('evacuate RS2 from the sidebar: refused with its reason without a p2p-maintenance node; with one, S2 and S5 move after the confirmation', async () => {
    // No p2p-maintenance node on S1 yet: the runtime refuses, the sidebar says why.
    await click(`${C} tr[data-rs="RS2"] button[data-act="evacuate"]`);
    await click('#p2p-ha-confirm-ok');
    await page.waitForSelector(`${C} #p2p-ha-cluster-message[data-type="error"]`, { timeout: 30_000 });
    await waitFor(async () => /deploy a p2p-maintenance node/.test((await page.textContent(`${C} #p2p-ha-cluster-message`)) ?? ''), { what: 'the 409 reason shown', timeoutMs: 10_000 });
    // Deploy one (its admin port gives the backups their role), as an operator would.
    const flows = JSON.parse((await httpRequest(rc!.vm('S1').url + '/flows', { timeoutMs: 5000 })).body);
    flows.push({ id: 'maint', z: 'rec-tab', type: 'p2p-maintenance', store: 'store', adminPort: rc!.uiPort, procedureDir: '/var/lib/p2p-ha/install', x: 700, y: 400, wires: [[]] });
    const dep = await httpRequest(rc!.vm('S1').url + '/flows', {
      method: 'POST',
      body: JSON.stringify(flows),
      headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'nodes' },
      timeoutMs: 10_000,
    });
    assert.ok(dep.status === 200 || dep.status === 204, `deploy: ${dep.status} ${dep.body}`);
    await new Promise((r) => setTimeout(r, 3000));
    await click(`${C} tr[data-rs="RS2"] button[data-act="evacuate"]`);
    await click('#p2p-ha-confirm-ok');
    await waitFor(async () => /evacuated/.test((await page.textContent(`${C} #p2p-ha-cluster-message[data-type="ok"]`).catch(() => '')) ?? ''), { what: 'RS2 evacuated, said in the sidebar', timeoutMs: 180_000, intervalMs: 500 });
    const said = (await page.textContent(`${C} #p2p-ha-cluster-message`)) ?? '';
    assert.match(said, /S2 now S2b/);
    assert.match(said, /S5 now S5b/);
    await page.waitForSelector(`${C} tr[data-rs="RS2"][data-state="maintenance"]`, { timeout: 30_000 });
    // The moved VMs are fenced (stopped, replaced): their rows offer re-admission.
    await page.waitForSelector(`${C} tr[data-vm-row="S2"][data-state="fenced"] button[data-act="readmit"]`, { timeout: 30_000 });
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-evacuated.png') });
  });

  it('without the write permission the write buttons are disabled; rehearse stays', async () => {
    await page.evaluate(() => {
      RED.user.hasPermission = (p: string) => p !== 'p2p-ha.write';
      (document.querySelector('#p2p-ha-cluster-content button[data-act="close-message"]')).click();
    });
    await page.waitForSelector(`${C} tr[data-rs="RS1"] button[data-act="evacuate"][disabled]`, { timeout: 10_000 });
    const states = await page.$$eval(`${C} button.p2p-act`, (bs) => bs.map((b: any) => [b.getAttribute('data-act'), b.disabled]));
    for (const [act, disabled] of states) {
      if (act === 'vm-maintenance' || act === 'rs-maintenance' || act === 'evacuate' || act === 'readmit') assert.equal(disabled, true, `${act} enabled without p2p-ha.write`);
      if (act === 'rehearse') assert.equal(disabled, false, 'rehearse disabled');
    }
    const tip = await page.getAttribute(`${C} tr[data-rs="RS1"] button[data-act="evacuate"]`, 'title');
    assert.match(tip ?? '', /p2p-ha\.write/);
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-no-write.png') });
  });
});
