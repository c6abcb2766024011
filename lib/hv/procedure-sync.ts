// Installation procedures reach the real servers by themselves: the operator keeps them in one
// folder (beside the management files, or wherever the backup starter points), and this module
// validates them and copies each to every real server's procedure folder, copying only what
// differs there (SHA-256 compare with `sha256sum` on the host), so a recovery never depends on
// a file someone forgot to copy by hand. A procedure that fails validation is reported and not
// copied; the others still are.
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as v from './validate';

/** Largest procedure copied (the same bound the editor and the install step use: 64 KiB). */
export const MAX_PROCEDURE_FILE = 64 * 1024;
/** `<server name>.sh`: the file the install step looks for. */
const PROCEDURE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}\.sh$/;

export interface ProcedureFile {
  name: string;
  content: string;
  sha256: string;
}

export interface ProcedureProblem {
  name: string;
  why: string;
}

export interface ProcedureHost {
  fileHashes(paths: string[]): Promise<Map<string, string>>;
  copyFile(path: string, content: string | Buffer): Promise<void>;
}

export interface SyncReport {
  copied: string[];
  unchanged: string[];
}

/** Check one procedure: its name, size, text, and that /bin/sh can parse it (`sh -n`). */
export function validateProcedure(name: string, content: Buffer): ProcedureProblem | undefined {
  if (!PROCEDURE_NAME_RE.test(name)) return { name, why: 'not <name>.sh with letters, digits, . _ -' };
  if (content.length > MAX_PROCEDURE_FILE) return { name, why: `${content.length} bytes, more than ${MAX_PROCEDURE_FILE}` };
  if (content.includes(0)) return { name, why: 'binary (contains NUL bytes)' };
  try {
    execFileSync('/bin/sh', ['-n'], { input: content, stdio: ['pipe', 'ignore', 'pipe'], timeout: 5000 });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-1)[0] ?? String(e);
    return { name, why: `/bin/sh -n: ${err}` };
  }
  return undefined;
}

/** The valid procedures of a folder, and the reasons the others were left out. */
export function readProcedureFolder(dir: string): { files: ProcedureFile[]; problems: ProcedureProblem[] } {
  const files: ProcedureFile[] = [];
  const problems: ProcedureProblem[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.sh')) continue;
    const full = path.join(dir, name);
    if (!fs.statSync(full).isFile()) continue;
    const content = fs.readFileSync(full);
    const problem = validateProcedure(name, content);
    if (problem) problems.push(problem);
    else files.push({ name, content: content.toString('utf8'), sha256: createHash('sha256').update(content).digest('hex') });
  }
  return { files, problems };
}

/** Bring one real server's procedure folder in step: copy the files whose hash differs or is missing. */
export async function syncProcedures(host: ProcedureHost, remoteDir: string, files: ProcedureFile[]): Promise<SyncReport> {
  const dir = v.absolutePath(remoteDir).replace(/\/+$/, '');
  const paths = files.map((f) => `${dir}/${f.name}`);
  const there = await host.fileHashes(paths);
  const report: SyncReport = { copied: [], unchanged: [] };
  for (const [i, f] of files.entries()) {
    if (there.get(paths[i]) === f.sha256) {
      report.unchanged.push(f.name);
      continue;
    }
    await host.copyFile(paths[i], f.content);
    report.copied.push(f.name);
  }
  return report;
}
