// The installation procedure file: the steps that install one target server's configuration on a
// resumed OD (DESIGN.md "Words"). Pure: paths, names and the variables, all validated.
//
// Where: on every real server, `<dir>/<NAME>.sh`, dir default /var/lib/p2p-ha/install (a setting
// of the backup starter). NAME is the target's hostname; a backup of a backup (S2b failing) uses
// the procedure of the server it stands for: S2b.sh if the operator wrote one, else S2.sh.
// Format: a /bin/sh script (`#!/bin/sh` first line recommended), run by the backup starter over
// SSH as `env VAR=value ... /bin/sh <path>` on the real server that holds the OD; exit 0 = done,
// anything else = the recovery fails (`procedure-failed`) with the exit code and the script's last
// stderr line as the reason.
// Variables (every value checked against a strict pattern before it reaches the command line):
//   TARGET          the failed server (S2)
//   TARGET_ADDRESS  its address
//   BACKUP          the backup's new hostname (S2b)
//   BACKUP_ADDRESS  the OD's address, which the backup keeps
//   OD              the OD's domain name on the real server
//   REAL_SERVER     the real server the backup runs on
//   SERVICES        the target's service checks from the group file (`tcp:80 http:8080/health`, or -)
import { ADDRESS_RE, NAME_RE, SERVICE_RE } from '../records/files';

export const DEFAULT_PROCEDURE_DIR = '/var/lib/p2p-ha/install';
const DIR_RE = /^\/[A-Za-z0-9._/-]{0,200}$/;
/** Largest procedure the editor or a copy will accept. */
export const MAX_PROCEDURE_BYTES = 64 * 1024;

export class ProcedureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProcedureError';
  }
}

export interface ProcedureInput {
  target: string;
  targetAddress: string;
  backup: string;
  backupAddress: string;
  od: string;
  realServer: string;
  services: string;
}

export type ProcedureVariables = {
  TARGET: string;
  TARGET_ADDRESS: string;
  BACKUP: string;
  BACKUP_ADDRESS: string;
  OD: string;
  REAL_SERVER: string;
  SERVICES: string;
};

function need(what: string, value: unknown, ok: (v: string) => boolean, expect: string): string {
  if (typeof value !== 'string' || !ok(value)) {
    throw new ProcedureError(`${what} is ${JSON.stringify(value)}, expected ${expect}`);
  }
  return value;
}
const isName = (v: string) => NAME_RE.test(v);
const isAddress = (v: string) => ADDRESS_RE.test(v);
const isServices = (v: string) => v === '-' || (v !== '' && v.split(' ').every((s) => SERVICE_RE.test(s)));

export function checkDir(dir: unknown): string {
  const d = need('procedure folder', dir, (v) => DIR_RE.test(v) && !v.split('/').includes('..'), 'an absolute path of letters, digits, . _ - /');
  return d.length > 1 ? d.replace(/\/+$/, '') : d;
}

/** The variables the procedure gets, every one validated. */
export function procedureVariables(input: ProcedureInput): ProcedureVariables {
  return {
    TARGET: need('TARGET', input.target, isName, 'a hostname'),
    TARGET_ADDRESS: need('TARGET_ADDRESS', input.targetAddress, isAddress, 'an IPv4 address or DNS name'),
    BACKUP: need('BACKUP', input.backup, isName, 'a hostname'),
    BACKUP_ADDRESS: need('BACKUP_ADDRESS', input.backupAddress, isAddress, 'an IPv4 address or DNS name'),
    OD: need('OD', input.od, isName, 'a domain name'),
    REAL_SERVER: need('REAL_SERVER', input.realServer, isName, 'a real server name'),
    SERVICES: need('SERVICES', (input.services ?? '').trim() || '-', isServices, 'space-separated tcp:PORT / http:PORT/PATH checks or -'),
  };
}

/** The server a backup stands for: S2b -> S2, S2b3 -> S2 (see backupName). */
export function functionName(name: string): string {
  const m = /^(.+?)(?:b\d*)+$/.exec(name);
  return m ? m[1] : name;
}

/**
 * Paths to try, in order: the target's own procedure, then the one of the server it stands for
 * (only when the name looks like a backup's). The next is tried only when the driver says
 * `procedure-absent` (an explicit `test -f` on the host), so a name like `Web` keeps its own Web.sh
 * and a procedure that fails is never silently replaced by another.
 */
export function procedurePaths(dir: string, target: string): string[] {
  const d = checkDir(dir);
  need('target', target, isName, 'a hostname');
  const base = functionName(target);
  const names = base !== target ? [target, base] : [target];
  return names.map((n) => `${d === '/' ? '' : d}/${n}.sh`);
}

/**
 * The backup's hostname: the target's with `b` (the note's S2b); if taken (in group, or an earlier
 * backup of the same server), `b2`, `b3`, ... A backup of S2b is S2b2-style too: based on S2.
 */
export function backupName(target: string, taken: Iterable<string>): string {
  need('target', target, isName, 'a hostname');
  const used = new Set(taken);
  const base = functionName(target);
  for (let i = 1; i < 1000; i++) {
    const name = `${base}b${i === 1 ? '' : i}`;
    if (!used.has(name) && NAME_RE.test(name)) return name;
  }
  throw new ProcedureError(`no free backup name for ${target}`);
}

/** Check a procedure's text before it is copied to the real servers (editor, replicator). */
export function validateProcedureText(text: unknown): string {
  if (typeof text !== 'string' || text.trim() === '') throw new ProcedureError('the procedure is empty');
  if (Buffer.byteLength(text) > MAX_PROCEDURE_BYTES) throw new ProcedureError(`the procedure is over ${MAX_PROCEDURE_BYTES} bytes`);
  if (/\x00/.test(text)) throw new ProcedureError('the procedure holds a NUL byte (binary?)');
  const first = text.split('\n', 1)[0];
  if (first.startsWith('#!') && !/^#!\s*\/bin\/sh\b/.test(first)) {
    throw new ProcedureError(`the procedure must be a /bin/sh script, its first line is ${JSON.stringify(first.slice(0, 60))}`);
  }
  return text;
}
