// The editor in Debian's Chromium: the cluster sidebar shows the ring of a running cluster.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { Cluster, startCluster } from '../../harness/cluster/launcher';
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';
import { semFlow } from '../../harness/flows/sem-flow';
import { artifactsDir, launchBrowser, openEditor, requireChromium } from '../../harness/browser';

describe('editor: cluster sidebar in Chromium', function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  let page: Page;

  before(async function () {
    requireChromium(this);
    const range = allocLoopbackRange();
    const ips = Array.from({ length: 3 }, (_, i) => range.ip(i + 1));
    const semPort = await pickPortFreeOnAll(ips);
    cluster = await startCluster({
      count: 3,
      ips,
      flows: (vm) => semFlow(vm, ips.indexOf(vm.ip), { semPort, secret: 'browser-test-secret', seeds: ips }),
    });
    await waitFor(() => cluster.vms.every((vm) => (fs.readFileSync(path.join(vm.userDir, 'p2p-ha', 'group'), 'utf8').match(/^S\d/gm) ?? []).length === 3), {
      what: 'three members everywhere',
      timeoutMs: 30_000,
    });
    ({ browser, close: closeBrowser } = await launchBrowser());
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  after(async () => {
    await closeBrowser?.();
    await cluster?.stopAll();
  });

  it('opens S1\'s editor and the sidebar shows the ring of three VMs', async () => {
    await openEditor(page, cluster.vms[0].url);
    // Open the cluster tab of the sidebar.
    await page.evaluate("RED.sidebar.show('p2p-ha-cluster')");
    await page.waitForSelector('#p2p-ha-cluster-content g[data-vm="S3"]', { timeout: 30_000 });
    const vms = await page.$$eval('#p2p-ha-cluster-content g[data-vm]', (els) => els.map((e) => [e.getAttribute('data-vm'), e.getAttribute('data-state')]));
    assert.deepEqual(vms, [
      ['S1', 'ok'],
      ['S2', 'ok'],
      ['S3', 'ok'],
    ]);
    const p1 = await page.$eval('#p2p-ha-cluster-content tr[data-vm-row="S2"] td:nth-child(5)', (e) => e.textContent);
    assert.equal(p1, 'S1');
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-ring.png') });
  });
});
