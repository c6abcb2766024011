// Every value that reaches a command line on a real server passes through here first: checked
// against a strict pattern (so a name like `S2; rm -rf /` or `--help` is refused, never run) and
// then single-quoted (so even a value that passed cannot be read by the shell as syntax).
// Pure: no I/O.
import { NAME_RE, truncate } from '../records/files';

export class ValidationError extends Error {
  /** What kind of value was refused (domain name, MAC, ...). */
  readonly what: string;
  /** The refused value itself. */
  readonly value: unknown;
  constructor(what: string, value: unknown, expected: string) {
    const shown = typeof value === 'string' ? JSON.stringify(truncate(value, 80)) : String(value);
    super(`${what} ${shown} refused: expected ${expected}`);
    this.name = 'ValidationError';
    this.what = what;
    this.value = value;
  }
}

/** libvirt domain names: the management files' names (letters, digits, . _ -, not starting with - or .). */
export const DOMAIN_RE = NAME_RE;
/** A DNS hostname (RFC 1123 labels) or a dotted IPv4 address. */
export const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** An absolute path of plain characters; `..` segments are refused separately. */
export const PATH_RE = /^\/[A-Za-z0-9._/-]{1,254}$/;
/** A MAC address as libvirt prints it: six hex pairs separated by `:`. */
export const MAC_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;
/** A shell variable name for the installation procedure. */
export const VARIABLE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** A variable's value: printable ASCII only (it is quoted anyway; this keeps logs and files sane). */
export const VARIABLE_VALUE_RE = /^[\x20-\x7e]{0,1024}$/;
/** A libvirt connection URI such as `qemu:///system` or `test+unix:///default?socket=/run/x`. */
export const URI_RE = /^[a-z][a-z0-9+]{0,31}:\/\/[A-Za-z0-9._~:@/?=&%+-]{0,480}$/;

function check(what: string, value: unknown, re: RegExp, expected: string): string {
  if (typeof value !== 'string' || !re.test(value)) throw new ValidationError(what, value, expected);
  return value;
}

export function domainName(value: unknown): string {
  return check('domain name', value, DOMAIN_RE, '1-63 letters, digits, . _ - not starting with - or .');
}

export function hostname(value: unknown): string {
  return check('hostname', value, HOSTNAME_RE, 'a DNS hostname or IPv4 address');
}

export function absolutePath(value: unknown): string {
  check('path', value, PATH_RE, 'an absolute path of letters, digits, . _ - /');
  const segs = (value as string).split('/').slice(1);
  if (segs.some((seg) => seg === '' || seg === '.' || seg === '..' || seg.startsWith('-'))) {
    throw new ValidationError('path', value, 'a file path: no empty, . or .. segment, no segment starting with -');
  }
  return value as string;
}

/** Returns the MAC in lower case, the form libvirt prints. Multicast MACs are refused (a NIC cannot use one). */
export function mac(value: unknown): string {
  const v = check('MAC address', value, MAC_RE, 'six hex pairs like 52:54:00:12:34:56').toLowerCase();
  if (parseInt(v.slice(0, 2), 16) & 1) throw new ValidationError('MAC address', value, 'a unicast MAC (first octet even)');
  return v;
}

export function variableName(value: unknown): string {
  return check('variable name', value, VARIABLE_NAME_RE, 'letters, digits, _ not starting with a digit');
}

export function variableValue(name: string, value: unknown): string {
  return check(`value of ${name}`, value, VARIABLE_VALUE_RE, 'at most 1024 printable ASCII characters');
}

export function uri(value: unknown): string {
  return check('libvirt URI', value, URI_RE, 'a libvirt URI such as qemu:///system');
}

/** Variables for the installation procedure: names and values checked, order kept. */
export function variables(vars: unknown): [string, string][] {
  if (vars === undefined || vars === null) return [];
  if (typeof vars !== 'object' || Array.isArray(vars)) throw new ValidationError('variables', vars, 'an object of name: value');
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(vars as Record<string, unknown>)) {
    out.push([variableName(k), variableValue(k, typeof v === 'number' ? String(v) : v)]);
  }
  if (out.length > 64) throw new ValidationError('variables', `${out.length} variables`, 'at most 64');
  return out;
}

/** An SSH public key as in a known_hosts line: `<type> <base64 blob>`. */
export const SSH_PUBLIC_KEY_RE = /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) AAAA[A-Za-z0-9+/]{16,1020}={0,2}$/;

export function sshPublicKey(value: unknown): string {
  return check('SSH public key', value, SSH_PUBLIC_KEY_RE, 'an SSH public key `<type> AAAA...`');
}

/** POSIX single-quoting: the value becomes one word whatever it holds. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
