// The six management files of DESIGN.md: their fields, which field is the key, how each field is
// validated, and the text form (one record per line, fields joined by ", ", `#` lines comments).
// Pure: no I/O, no Node-RED.
import { copyList, mapList } from './lists';

export const FILE_NAMES = ['group', 'operation', 'problem', 'realserver', 'available-od', 'reservation'] as const;
export type FileName = (typeof FILE_NAMES)[number];
/** A record is its fields in order; field 0 is the key unless the schema says otherwise. */
export type RecordFields = string[];

/** Host and VM names: letters, digits, dot, dash, underscore; must not start with `-`. */
export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}$/;
/** IPv4 address, or a DNS name (which must hold a letter, so `999.1.1.1` is not taken as one). */
export const ADDRESS_RE = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}|(?=[^.]*[A-Za-z]|.*\.[A-Za-z-]+$)[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/;
/** A service check: `tcp:PORT` or `http:PORT/PATH` (see the heartbeat's help). Space-separated list. */
export const SERVICE_RE = /^(?:tcp:\d{1,5}|http:\d{1,5}(?:\/[A-Za-z0-9._~\/-]*)?)$/;
const NUMBER_RE = /^\d{1,9}(?:\.\d{1,6})?$/;
const INT_RE = /^\d{1,9}$/;
/** The realserver record's vmSizes field: `S1:2048/2 S4:1024/1`. */
const VM_SIZES_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,62}:\d{1,9}\/\d{1,4}(?: [A-Za-z0-9_][A-Za-z0-9._-]{0,62}:\d{1,9}\/\d{1,4})*$/;
const ISO_TIME_RE = /^(?:-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?Z)$/;

export const PROBLEM_KINDS = ['network', 'service', 'realserver'] as const;
export const PROBLEM_STATUSES = [
  'detected',
  'reexamining',
  'confirmed',
  'cleared',
  'fencing',
  'recovering',
  'recovered',
  'failed',
] as const;
/** A real server's state; `maintenance`: taken out of placement on purpose (lib/ops/maintenance.ts). */
export const REALSERVER_STATES = ['up', 'down', 'maintenance'] as const;
/** A group member's state: serving member, fenced (replaced; must stay out), or in maintenance. */
export const MEMBER_STATES = ['member', 'fenced', 'maintenance'] as const;
/** A public key in a record: base64 of a raw Ed25519 key (32 bytes -> 43-44 chars), or -. */
const PUBLIC_KEY_RE = /^(?:-|[A-Za-z0-9+/]{43}=?)$/;
/**
 * An OD's SSH host key: the whole public key as the base64 blob of its known_hosts line (e.g.
 * `AAAAC3NzaC1lZDI1NTE5...`; its type is inside the blob), so an installation procedure can pin
 * it in a known_hosts file; or, from older records, only its fingerprint `SHA256:...`; or '-'.
 */
const HOST_KEY_RE = /^(?:-|SHA256:[A-Za-z0-9+/]{43}|AAAA[A-Za-z0-9+/]{16,1020}={0,2})$/;

type FieldCheck = (value: string) => boolean;
const re = (r: RegExp): FieldCheck => (v) => r.test(v);
const oneOf = (values: readonly string[]): FieldCheck => (v) => values.includes(v);
const servicesCheck: FieldCheck = (v) => v === '' || v === '-' || v.split(' ').every((s) => SERVICE_RE.test(s));
/** Free text inside a field (a failure reason): no separator, no control characters. */
const textCheck: FieldCheck = (v) => v.length <= 200 && !/[,\x00-\x1f\x7f]/.test(v);

export interface FieldSpec {
  name: string;
  check: FieldCheck;
  /** Shown in a refusal so the operator knows what was expected. */
  expect: string;
}

export interface FileSchema {
  name: FileName;
  fields: FieldSpec[];
  /**
   * Trailing fields a record may carry after `fields`, in order (a record may stop after any of
   * them). Older records without them stay valid: the codecs in records.ts give their defaults.
   */
  optional?: FieldSpec[];
  /** Derived from another file on every change; never edited or replicated by itself. */
  derived?: boolean;
  /** The key of a record: the fields that identify it. */
  key: (record: RecordFields) => string;
}

const name = (n: string): FieldSpec => ({ name: n, check: re(NAME_RE), expect: 'a name of letters, digits, . _ -' });
const address = (n: string): FieldSpec => ({ name: n, check: re(ADDRESS_RE), expect: 'an IPv4 address or DNS name' });

export const SCHEMAS: Record<FileName, FileSchema> = {
  group: {
    name: 'group',
    fields: [
      name('hostname'),
      address('address'),
      name('realServer'),
      { name: 'services', check: servicesCheck, expect: 'space-separated tcp:PORT or http:PORT/PATH checks, or -' },
    ],
    optional: [
      { name: 'state', check: oneOf(MEMBER_STATES), expect: MEMBER_STATES.join('|') },
      { name: 'publicKey', check: re(PUBLIC_KEY_RE), expect: 'a base64 Ed25519 public key or -' },
      // The X25519 key answers are authenticated with (lib/sem/pair-key.ts); published only once
      // every member speaks wire version 3 (a release before refuses a group record this long).
      { name: 'dhKey', check: re(PUBLIC_KEY_RE), expect: 'a base64 X25519 public key or -' },
    ],
    key: (r) => r[0],
  },
  operation: {
    name: 'operation',
    fields: [
      { name: 'priority', check: oneOf(['P1', 'P2']), expect: 'P1 or P2' },
      name('manager'),
      name('target'),
    ],
    derived: true,
    key: (r) => `${r[0]}:${r[1]}:${r[2]}`,
  },
  problem: {
    name: 'problem',
    fields: [
      name('target'),
      name('detectedBy'),
      { name: 'kind', check: oneOf(PROBLEM_KINDS), expect: PROBLEM_KINDS.join('|') },
      { name: 'status', check: oneOf(PROBLEM_STATUSES), expect: PROBLEM_STATUSES.join('|') },
      { name: 'backup', check: (v) => v === '-' || NAME_RE.test(v), expect: 'a name or -' },
      { name: 'since', check: re(ISO_TIME_RE), expect: 'an ISO time (UTC, Z) or -' },
    ],
    // note: why a recovery failed. od: the OD a recovery resumed (a takeover continues with it).
    optional: [
      { name: 'note', check: textCheck, expect: 'text without commas' },
      { name: 'od', check: (v) => v === '-' || NAME_RE.test(v), expect: 'an OD name or -' },
    ],
    key: (r) => r[0],
  },
  realserver: {
    name: 'realserver',
    fields: [
      name('realServer'),
      { name: 'load', check: re(NUMBER_RE), expect: 'a non-negative number' },
      { name: 'vmCount', check: re(INT_RE), expect: 'a non-negative integer' },
      { name: 'state', check: oneOf(REALSERVER_STATES), expect: REALSERVER_STATES.join('|') },
    ],
    // Capacity figures of the load collector (placement fits a backup only where it fits) and
    // when they were read (placement ranks stale figures last). '-' when unknown.
    optional: [
      { name: 'freeMemMiB', check: (v) => v === '-' || INT_RE.test(v), expect: 'a non-negative integer (MiB) or -' },
      { name: 'freeVcpus', check: (v) => v === '-' || /^-?\d{1,6}$/.test(v), expect: 'an integer or -' },
      { name: 'measuredAt', check: re(ISO_TIME_RE), expect: 'an ISO time (UTC, Z) or -' },
      // The size of each active domain (virsh dominfo), so a failed VM's size is known when it fails.
      { name: 'vmSizes', check: (v) => v === '-' || (v.length <= 4000 && VM_SIZES_RE.test(v)), expect: 'name:memMiB/vcpus entries separated by spaces, or -' },
    ],
    key: (r) => r[0],
  },
  'available-od': {
    name: 'available-od',
    fields: [name('od'), address('address'), name('realServer')],
    // The OD's SSH host key after re-identification, so later steps can pin it (issue 13).
    optional: [{ name: 'hostKey', check: re(HOST_KEY_RE), expect: 'an SSH public key (base64 blob), a fingerprint SHA256:... or -' }],
    key: (r) => r[0],
  },
  reservation: {
    name: 'reservation',
    fields: [name('od'), address('address'), name('realServer')],
    key: (r) => r[0],
  },
};

export function isFileName(v: unknown): v is FileName {
  return typeof v === 'string' && (FILE_NAMES as readonly string[]).includes(v);
}

export class RecordError extends Error {}

/**
 * Check a record against its file's schema. Throws RecordError naming the bad field and value.
 * A record may carry its schema's optional trailing fields (e.g. the problem's free-text note).
 */
export function validateRecord(file: FileName, record: unknown): RecordFields {
  const schema = SCHEMAS[file];
  if (!Array.isArray(record) || !record.every((f) => typeof f === 'string')) {
    throw new RecordError(`${file}: a record must be a list of text fields`);
  }
  const all = [...schema.fields, ...(schema.optional ?? [])];
  if (record.length < schema.fields.length || record.length > all.length) {
    const opt = schema.optional?.length ? ` [, ${schema.optional.map((f) => f.name).join(', ')}]` : '';
    throw new RecordError(
      `${file}: expected ${schema.fields.length} fields (${schema.fields.map((f) => f.name).join(', ')}${opt}), got ${record.length}`,
    );
  }
  record.forEach((value, i) => {
    const spec = all[i];
    if (!spec.check(value)) {
      throw new RecordError(`${file}: field ${spec.name} is ${JSON.stringify(truncate(value))}, expected ${spec.expect}`);
    }
  });
  return copyList(record);
}

export function recordKey(file: FileName, record: RecordFields): string {
  return SCHEMAS[file].key(record);
}

export function formatRecord(record: RecordFields): string {
  return record.join(', ');
}

/** Split one line into fields. Fields are separated by ", " (a comma and any spaces). */
export function splitFields(line: string): string[] {
  return mapList(line.split(','), (f) => f.trim());
}

/** Parse a file's text: every non-empty, non-comment line is one record. Validates each record. */
export function parseFile(file: FileName, text: string): RecordFields[] {
  const out: RecordFields[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    try {
      out.push(validateRecord(file, splitFields(line)));
    } catch (e) {
      throw new RecordError(`${file} line ${i + 1}: ${(e as Error).message}`);
    }
  });
  return out;
}

export function formatFile(file: FileName, records: RecordFields[]): string {
  const header = `# ${file}: ${mapList(SCHEMAS[file].fields, (f) => f.name).join(', ')}\n`;
  return header + mapList(records, (r) => formatRecord(r) + '\n').join('');
}

export function truncate(v: string, n = 60): string {
  return v.length > n ? v.slice(0, n) + '…' : v;
}
