// The editor to the core nodes' standard, in Debian's Chromium against a real Node-RED: a dark
// theme (a page stylesheet that sets the editor's --red-ui-* variables, as a theme package does;
// Node-RED 4 ships no dark theme) and Japanese (runtime `lang: 'ja'`, browser locale ja-JP).
// One VM whose flow gives its identity only through the environment (empty fields and ${NAME}),
// a p2p-real-server whose host is ${...} and whose key file is missing, and a load collector that
// references it. Checks: the catalogues and help are served in ja where Node-RED looks for them;
// the cluster tab opens from the button of a node's edit dialog; no untranslated key (p2p-...)
// shows in the dialog, the sidebar or a status; the sidebar's CSS holds no fixed colour and takes
// its colours from the theme; the real server is counted as used. Screenshots in .artifacts/.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { Cluster, FlowNode, startCluster } from '../../harness/cluster/launcher';
import { allocLoopbackRange, pickPortFreeOnAll } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { waitFor } from '../../harness/wait';
import { artifactsDir, launchBrowser, openEditor, requireChromium } from '../../harness/browser';

// Browser globals, used only inside page.evaluate callbacks (which run in Chromium).
declare const window: any, document: any, localStorage: any, getComputedStyle: any;

const PKG = '@p2p-ha/node-red-server-manager';
const FINGERPRINT = 'SHA256:' + 'A'.repeat(43);

/** A dark palette: only --red-ui-* variables, the way Node-RED themes restyle the editor. */
const DARK_CSS = `:root {
  --red-ui-primary-background: #1e1f22;
  --red-ui-secondary-background: #2b2d31;
  --red-ui-secondary-background-selected: #3a3d43;
  --red-ui-secondary-background-hover: #33363b;
  --red-ui-tertiary-background: #2b2d31;
  --red-ui-workspace-background: #17181a;
  --red-ui-form-background: #2b2d31;
  --red-ui-form-input-background: #1e1f22;
  --red-ui-form-text-color: #d8d8d8;
  --red-ui-form-tips-background: #33363b;
  --red-ui-primary-text-color: #e6e6e6;
  --red-ui-secondary-text-color: #a9adb3;
  --red-ui-header-text-color: #e6e6e6;
  --red-ui-primary-border-color: #4a4d52;
  --red-ui-secondary-border-color: #3c3f44;
  --red-ui-tab-background: #2b2d31;
  --red-ui-tab-background-active: #1e1f22;
  --red-ui-tab-background-inactive: #26282c;
  --red-ui-palette-background: #2b2d31;
  --red-ui-view-background: #17181a;
  --red-ui-view-grid-color: #25272b;
}`;

/** Text that looks like one of our message keys left untranslated (p2p-xyz.section.key). */
const KEY_RE = /\bp2p-[a-z-]+\.[a-zA-Z]+(?:\.[a-zA-Z-]+)*\b/g;
/** A fixed colour in CSS. */
const COLOUR_RE = /#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(/;

function flow(semPort: number): FlowNode[] {
  const z = 'tab';
  return [
    { id: z, type: 'tab', label: 'p2p' },
    {
      id: 'store',
      type: 'p2p-store',
      // Identity only from the environment: hostname through ${...}, the rest left empty.
      hostname: '${P2P_HOSTNAME}',
      address: '',
      realServer: '',
      services: '',
      port: semPort,
      seeds: '',
      syncInterval: 1000,
      requestTimeout: 2000,
      autoJoin: true,
      credentials: { secret: 'theme-i18n-test-secret' },
    },
    {
      id: 'rs1',
      type: 'p2p-real-server',
      name: 'RS1',
      host: '${P2P_RS1_HOST}',
      port: 22,
      user: 'root',
      fingerprint: FINGERPRINT,
      keyFile: '/nonexistent/p2p-test-key',
    },
    { id: 'collector', z, type: 'p2p-load-collector', store: 'store', realServer: 'rs1', interval: 60, threshold: 0.1, x: 180, y: 80, wires: [[]] },
    { id: 'send', z, type: 'p2p-sem-send', store: 'store', x: 180, y: 160, wires: [[]] },
    { id: 'recv', z, type: 'p2p-sem-receive', store: 'store', x: 180, y: 240, wires: [[], []] },
  ];
}

describe('editor: dark theme and Japanese (Chromium)', function () {
  this.timeout(180_000);
  let cluster: Cluster;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  let page: Page;
  let cssDir: string;
  let url: string;

  before(async function () {
    requireChromium(this);
    const range = allocLoopbackRange();
    const ip = range.ip(1);
    const semPort = await pickPortFreeOnAll([ip]);
    cssDir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-theme-'));
    const css = path.join(cssDir, 'dark.css');
    fs.writeFileSync(css, DARK_CSS);
    cluster = await startCluster({
      count: 1,
      ips: [ip],
      flows: flow(semPort),
      settings: { lang: 'ja', editorTheme: { page: { css: [css] } } },
      env: { P2P_HOSTNAME: 'S1', P2P_ADDRESS: ip, P2P_REAL_SERVER: 'RS1', P2P_SERVICES: '-', P2P_RS1_HOST: 'kvm1.example.test' },
    });
    url = cluster.vms[0].url;
    // The store took its identity from the environment: S1 at its address is in the group file.
    const group = path.join(cluster.vms[0].userDir, 'p2p-ha', 'group');
    await waitFor(() => fs.existsSync(group) && new RegExp(`^S1, ${ip.replace(/\./g, '\\.')}, RS1, -(?:, member, \\S+)?$`, 'm').test(fs.readFileSync(group, 'utf8')), {
      what: 'S1 in its group file from P2P_* variables',
      timeoutMs: 30_000,
    });
    ({ browser, close: closeBrowser } = await launchBrowser());
    page = await browser.newPage({ viewport: { width: 1400, height: 900 }, locale: 'ja-JP' });
    await page.addInitScript(() => localStorage.setItem('editor-language', 'ja'));
  });

  after(async () => {
    await closeBrowser?.();
    await cluster?.stopAll();
    if (cssDir) fs.rmSync(cssDir, { recursive: true, force: true });
  });

  it('serves the ja catalogues of every node set and of the plugin, and ja help', async () => {
    for (const set of ['p2p-store', 'p2p-sem-send', 'p2p-sem-receive', 'p2p-real-server', 'p2p-load-collector', 'p2p-heartbeat', 'p2p-placer', 'p2p-backup-starter', 'p2p-od-replicator']) {
      const r = await httpRequest(`${url}/locales/${PKG}/${set}?lng=ja`);
      assert.equal(r.status, 200, `${set}: ${r.status}`);
      const cat = JSON.parse(r.body) as Record<string, Record<string, unknown>>;
      assert.ok(cat[set], `${set} catalogue: ${r.body.slice(0, 200)}`);
      assert.match(JSON.stringify(cat[set]), /[\u3040-\u30ff\u4e00-\u9fff]/, `${set} catalogue is Japanese`);
    }
    const plugin = JSON.parse((await httpRequest(`${url}/locales/${PKG}/p2p-cluster-sidebar?lng=ja`)).body);
    assert.equal(plugin['p2p-cluster'].section.ring, 'リング');
    const html = (await httpRequest(`${url}/nodes`, { headers: { Accept: 'text/html', 'Accept-Language': 'ja' }, timeoutMs: 15_000 })).body;
    for (const t of ['p2p-store', 'p2p-sem-send', 'p2p-sem-receive', 'p2p-real-server', 'p2p-load-collector', 'p2p-heartbeat', 'p2p-placer', 'p2p-backup-starter', 'p2p-od-replicator']) {
      const help = html.split(`data-help-name="${t}"`)[1]?.split('</script>')[0] ?? '';
      assert.match(help, /[\u3040-\u30ff]/, `ja help of ${t}`);
    }
  });

  it('the runtime fails a real server with a missing key file clearly, in Japanese, and the store substituted ${P2P_HOSTNAME}', async () => {
    const log = cluster.logs(cluster.vms[0]).nodeRed;
    assert.match(log, /\/nonexistent\/p2p-test-key/, 'the key file is named in the log');
    assert.match(log, /鍵ファイル .*を読めません \(ENOENT\)/, 'the error is in Japanese');
  });

  it('opens the cluster tab from the button of a node\'s edit dialog; no untranslated key, no fixed colour', async () => {
    await openEditor(page, url);
    // Statuses arrive over comms after the editor connects: wait for the collector's.
    await page.waitForFunction(() => {
      const n = window.RED.nodes.node('collector');
      return n && n.status && n.status.text;
    }, undefined, { timeout: 30_000 });

    // The real server is used by the collector: no "unused config nodes" at deploy.
    const users = await page.evaluate(() => window.RED.nodes.node('rs1').users.length);
    assert.ok(users >= 1, `p2p-real-server users: ${users}`);

    await page.evaluate(() => window.RED.editor.edit(window.RED.nodes.node('collector')));
    const button = page.locator('.p2p-ha-open-cluster').first();
    await button.waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal((await button.innerText()).trim(), 'クラスタ表示');
    const dialogText = await page.locator('.red-ui-tray').last().innerText();
    assert.deepEqual(dialogText.match(KEY_RE) ?? [], [], 'untranslated keys in the edit dialog');
    await button.click();
    await page.waitForSelector('#p2p-ha-cluster-content g[data-vm="S1"]', { timeout: 30_000 });
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-dark-ja-dialog.png') });
    await page.evaluate(() => window.RED.tray.close());
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(artifactsDir(), 'sidebar-dark-ja.png') });

    const sidebar = await page.locator('#p2p-ha-cluster-content').innerText();
    assert.deepEqual(sidebar.match(KEY_RE) ?? [], [], 'untranslated keys in the sidebar');
    for (const w of ['リング', 'VM', '実サーバ', 'フェイルオーバーの経過', '正常']) assert.ok(sidebar.includes(w), `sidebar shows ${w}: ${sidebar.slice(0, 300)}`);
    const tabLabel = await page.locator('#red-ui-tab-p2p-ha-cluster').innerText().catch(() => '');
    assert.ok(!/p2p-/.test(tabLabel), `tab label ${tabLabel}`);

    // Statuses on the canvas: translated by the runtime (lang ja), never a bare key.
    const statuses = await page.$$eval('.red-ui-flow-node-status-label', (els) => els.map((e: any) => e.textContent ?? ''));
    assert.ok(statuses.some((s) => /[\u3040-\u30ff\u4e00-\u9fff]/.test(s)), `statuses: ${JSON.stringify(statuses)}`);
    for (const s of statuses) assert.deepEqual(s.match(KEY_RE) ?? [], [], `untranslated status ${s}`);

    // No fixed colour in the sidebar's stylesheet nor in its markup; colours follow the theme.
    const css = await page.$eval('#p2p-ha-cluster-style', (e) => e.textContent ?? '');
    assert.ok(css.includes('var(--red-ui-'), 'the sidebar CSS uses the theme variables');
    assert.ok(!COLOUR_RE.test(css), `fixed colour in the sidebar CSS: ${css.match(COLOUR_RE)}`);
    const markup = await page.$eval('#p2p-ha-cluster-content', (e) => e.innerHTML);
    assert.ok(!COLOUR_RE.test(markup), `fixed colour in the sidebar markup: ${markup.match(COLOUR_RE)}`);
    const [th, themeSecondary] = await page.evaluate(() => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--red-ui-secondary-text-color)';
      document.body.appendChild(probe);
      const want = getComputedStyle(probe).color;
      probe.remove();
      const h = document.querySelector('#p2p-ha-cluster-content .p2p-table th');
      return [h ? getComputedStyle(h).color : '', want];
    });
    assert.equal(th, themeSecondary, 'table headings take the theme\'s secondary text colour');
    assert.equal(themeSecondary, 'rgb(169, 173, 179)', 'the dark theme is in force');

    // Long text wraps or scrolls inside the sidebar: nothing wider than the sidebar is clipped.
    const overflow = await page.$$eval('#p2p-ha-cluster-content .p2p-table-wrap', (els) =>
      els.map((e) => getComputedStyle(e).overflowX),
    );
    assert.ok(overflow.length > 0 && overflow.every((o) => o === 'auto'), `table wrappers scroll: ${overflow}`);
  });
});
