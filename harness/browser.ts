// Debian's Chromium driven by playwright-core (never a browser downloaded by Playwright), with the
// flags this closed machine needs: no sandbox as root, and no background networking, which would
// otherwise try to reach Google's hosts and be refused.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chromium, Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM);
}

/** In a suite's before(): without Chromium, fail under CI (it must be installed) and skip loudly elsewhere. */
export function requireChromium(ctx: Mocha.Context): void {
  if (chromiumAvailable()) return;
  if (process.env.CI) throw new Error(`Chromium is missing at ${CHROMIUM}: .ci/run must install Debian's chromium`);
  console.warn(`\n  !!! SKIPPING the browser suite: no Chromium at ${CHROMIUM} (apt-get install chromium)\n`);
  ctx.skip();
}

export async function launchBrowser(): Promise<{ browser: Browser; close: () => Promise<void> }> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-chromium-'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    // Playwright gives each launch a fresh temporary profile of its own; keep caches out of $HOME.
    env: { ...process.env, HOME: profile },
  });
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where tests leave their screenshots (CI artifacts). */
export function artifactsDir(): string {
  const dir = path.join(__dirname, '..', '..', '.artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Open a Node-RED editor and wait until its flows are loaded (the loading overlay is gone). */
export async function openEditor(page: import('playwright-core').Page, url: string): Promise<void> {
  await page.goto(url + '/', { waitUntil: 'domcontentloaded', timeout: 60_000 });
  await page.waitForSelector('#red-ui-workspace', { timeout: 60_000 });
  await page.waitForSelector('#red-ui-loading-progress', { state: 'hidden', timeout: 60_000 });
  await page.waitForSelector('#red-ui-workspace-chart .red-ui-flow-node-group', { timeout: 60_000 }).catch(() => undefined);
}
