// The operator's view of a failover, in Debian's Chromium: S1's editor, the cluster sidebar's ring,
// then S2 is killed and the failover appears in the sidebar's timeline and on the node statuses.
import { strict as assert } from 'assert';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { RecoveryCluster } from '../../harness/recovery/recovery-cluster';
import { artifactsDir, launchBrowser, openEditor, requireChromium } from '../../harness/browser';

describe('editor: a failover seen in the cluster sidebar', function () {
  this.timeout(300_000);
  let rc: RecoveryCluster | undefined;
  let browser: Browser;
  let closeBrowser: (() => Promise<void>) | undefined;
  let page: Page;

  before(async function () {
    requireChromium(this);
    rc = await RecoveryCluster.start();
    ({ browser, close: closeBrowser } = await launchBrowser());
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  });

  after(async () => {
    await closeBrowser?.();
    await rc?.stop();
  });

  const timelineSteps = (target: string) =>
    page.$$eval(`#p2p-ha-cluster-content tr[data-timeline-target="${target}"]`, (rows) => rows.map((r) => r.getAttribute('data-step')));

  it('shows the ring of six VMs in S1\'s sidebar', async () => {
    await openEditor(page, rc!.vm('S1').url);
    await page.evaluate("RED.sidebar.show('p2p-ha-cluster')");
    await page.waitForSelector('#p2p-ha-cluster-content g[data-vm="S6"]', { timeout: 30_000 });
    const vms = await page.$$eval('#p2p-ha-cluster-content g[data-vm]', (els) => els.map((e) => e.getAttribute('data-vm')));
    assert.deepEqual(vms, ['S1', 'S2', 'S3', 'S4', 'S5', 'S6']);
    // No false failure on a fresh cluster: peers deployed after their managers were booting, not
    // failed (the heartbeat's start-up grace). A suspicion of a peer that had answered and then
    // answered late (a machine shared with other test runs) may be recorded and cleared by itself:
    // that is the monitor at work, not a false failure; it is reported, not failed on.
    const problems = rc!.recordsOf('S1', 'problem');
    const suspicions = problems.filter((p) => p[3] === 'cleared' || p[3] === 'detected' || p[3] === 'reexamining');
    if (suspicions.length) console.warn(`      note: suspicions at start (load?): ${suspicions.map((p) => p.join(', ')).join(' | ')}`);
    assert.deepEqual(problems.filter((p) => !suspicions.includes(p)), [], 'a failure recorded on a fresh cluster');
    await page.screenshot({ path: path.join(artifactsDir(), 'failover-0-ring.png') });
  });

  it('kill S2: the failover shows in the timeline and the node statuses turn', async () => {
    await rc!.cluster.kill(rc!.vm('S2'), 'SIGKILL');
    // The re-examination is visible while it runs.
    await page.waitForSelector('#p2p-ha-cluster-content tr[data-problem="S2"]', { timeout: 20_000 });
    await page.screenshot({ path: path.join(artifactsDir(), 'failover-1-detected.png') });
    await page.waitForSelector('#p2p-ha-cluster-content tr[data-problem="S2"][data-status="recovered"]', { timeout: 60_000 });
    // The timeline's last step is pushed with the next update (at most 250 ms later).
    await page.waitForSelector('#p2p-ha-cluster-content tr[data-timeline-target="S2"][data-step="recovered"]', { timeout: 10_000 });
    const steps = await timelineSteps('S2');
    for (const step of ['confirmed', 'fenced', 'placed', 'resumed', 'installed', 'recovered']) {
      assert.ok(steps.includes(step), `timeline of S2 lacks "${step}": ${steps.join(', ')}`);
    }
    // The ring now has S2b in S2's place.
    await page.waitForSelector('#p2p-ha-cluster-content g[data-vm="S2b"]', { timeout: 20_000 });
    assert.equal(await page.$('#p2p-ha-cluster-content g[data-vm="S2"]'), null);
    // The backup starter's status on the canvas says the recovery is done.
    const statuses = await page.$$eval('.red-ui-flow-node-status-label', (els) => els.map((e) => e.textContent ?? ''));
    assert.ok(statuses.some((s) => /S2b|recovered/.test(s)), `no node status tells of the recovery: ${statuses.join(' | ')}`);
    await page.screenshot({ path: path.join(artifactsDir(), 'failover-2-recovered.png') });
  });

  it('the past failover opens as its steps, each with its time and the reason of its decision', async () => {
    const row = '#p2p-ha-cluster-content tr[data-failover][data-target="S2"][data-outcome="recovered"]';
    await page.waitForSelector(row, { timeout: 20_000 });
    await page.click(`${row} button[data-act="open-story"]`, { timeout: 20_000 });
    const story = '#p2p-ha-cluster-content #p2p-ha-story';
    await page.waitForSelector(`${story} tr[data-story-step="placed"]`, { timeout: 10_000 });
    const steps = await page.$$eval(`${story} tr[data-story-step]`, (rows) => rows.map((r) => r.getAttribute('data-story-step')));
    for (const step of ['confirmed', 'fenced', 'placed', 'resumed', 'installed', 'recovered']) assert.ok(steps.includes(step), `story of S2 lacks "${step}": ${steps.join(', ')}`);
    // Why this host: every real server as a candidate, the chosen one ranked 1, the dead host's reason.
    const cands = await page.$$eval(`${story} tr[data-story-step="placed"] tr[data-candidate]`, (rows) => rows.map((r) => [r.getAttribute('data-candidate'), r.getAttribute('data-rank')]));
    assert.equal(cands.length, 3, JSON.stringify(cands));
    assert.equal(cands[0][1], '1');
    // How the fence was done, and how long the steps took.
    assert.match((await page.textContent(`${story} tr[data-story-step="fenced"]`)) ?? '', /RS2/);
    assert.match((await page.textContent(`${story} tr[data-story-step="installed"]`)) ?? '', /S2\.sh/);
    const took = await page.$$eval(`${story} tr[data-story-step] td:nth-child(4)`, (tds) => tds.map((t) => t.textContent ?? ''));
    assert.ok(took.some((t) => /\d+ (ms|s)$/.test(t)), `no step duration shown: ${took.join(' | ')}`);
    await page.screenshot({ path: path.join(artifactsDir(), 'failover-3-story.png') });
  });
});
