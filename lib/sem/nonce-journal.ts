// The nonces of admin calls (role calls, admin-call.ts) kept across a restart of the runtime
// (issue 14): a call captured on the wire could otherwise be replayed at an OD whose Node-RED
// restarted within the call's 2-minute window, since the in-memory NonceCache starts empty. Each
// admitted nonce is appended to `<files folder>/.admin-nonces` (one line `<until ms> <nonce>`,
// mode 0600) and made durable (fdatasync) before the call is acted on; at start the lines still
// valid are loaded back into the cache and the file is rewritten with only those, so it holds at
// most the calls of one window. A torn or malformed line (a crash mid-append) is skipped: its call
// was never acted on.
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from './atomic-write';
import type { NonceCache } from './replay-guard';

export const ADMIN_NONCES_FILE = '.admin-nonces';
const LINE = /^(\d{1,16}) ([0-9a-f]{32})$/;

export class NonceJournal {
  readonly file: string;

  constructor(folder: string) {
    this.file = path.join(folder, ADMIN_NONCES_FILE);
  }

  /** Load the still valid nonces into `cache` and compact the file; returns how many. */
  load(cache: NonceCache, now = Date.now()): number {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    const live: string[] = [];
    for (const line of text.split('\n')) {
      const m = LINE.exec(line);
      if (!m || Number(m[1]) <= now) continue;
      cache.restore(m[2], Number(m[1]), now);
      live.push(line);
    }
    writeFileAtomicSync(this.file, live.length ? `${live.join('\n')}\n` : '');
    fs.chmodSync(this.file, 0o600);
    return live.length;
  }

  /** Record an admitted nonce durably; throws when it cannot (the call must then be refused). */
  record(nonce: string, until: number): void {
    const fd = fs.openSync(this.file, 'a', 0o600);
    try {
      fs.writeSync(fd, `${Math.ceil(until)} ${nonce}\n`);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
