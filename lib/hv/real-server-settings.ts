// The settings of a p2p-real-server config node, checked: a bad field is refused with a message
// naming it, and nothing connects. Every text field accepts `${NAME}` (resolved from the
// environment, then validated like a typed value). The private key comes from the credential, or
// else from a key file or an environment variable (privateKeyFrom). Pure: the file is read by the
// caller's readFile.
import { NAME_RE } from '../records/files';
import { resolveEnv, type Env } from '../records/env-value';
import type { SshSettings } from './ssh-connection';
import * as v from './validate';

export interface RealServerConfig {
  name?: string;
  host?: string;
  port?: string | number;
  user?: string;
  fingerprint?: string;
  connectTimeout?: string | number;
  commandTimeout?: string | number;
  uri?: string;
  /** Path of an OpenSSH private key file, read at start when no key credential is set. */
  keyFile?: string;
  /** Name of an environment variable holding the private key, when neither of the above is set. */
  keyEnv?: string;
}

/** Where the private key came from (for the status and log: never the key itself). */
export type KeySource = 'credential' | 'file' | 'env';

export class KeyError extends Error {
  constructor(
    readonly kind: 'none' | 'file-unreadable' | 'env-unset' | 'not-a-key',
    message: string,
    /** What the message names (file, code, variable, where), for a translated message. */
    readonly values: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'KeyError';
  }
}

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The private key: the credential when set (preferred), else the key file, else the environment
 * variable. Throws KeyError with a message that names the source and never contains the key.
 */
export function privateKeyFrom(
  config: RealServerConfig,
  credentials: Record<string, string | undefined>,
  env: Env,
  readFile: (path: string) => string,
): { key: string; source: KeySource } {
  const check = (key: string, source: KeySource, where: string) => {
    if (!key.includes('PRIVATE KEY')) throw new KeyError('not-a-key', `${where} holds no OpenSSH/PEM private key`, { where });
    return { key, source };
  };
  if (credentials.privateKey) return check(credentials.privateKey, 'credential', 'the private key credential');
  const file = resolveEnv((config.keyFile ?? '').trim(), 'key file', env);
  if (file) {
    let key: string;
    try {
      key = readFile(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new KeyError('file-unreadable', `key file ${JSON.stringify(file)} cannot be read (${code})`, { file, code });
    }
    return check(key, 'file', `key file ${JSON.stringify(file)}`);
  }
  const name = (config.keyEnv ?? '').trim();
  if (name) {
    if (!ENV_NAME_RE.test(name)) throw new KeyError('env-unset', `key variable ${JSON.stringify(name)} is not a variable name`, { variable: JSON.stringify(name) });
    const key = env[name];
    if (!key) throw new KeyError('env-unset', `environment variable ${name} (private key) is not set`, { variable: name });
    // A key given in one line with literal \n (as many service managers pass it) is accepted.
    return check(key.includes('\n') ? key : key.replace(/\\n/g, '\n'), 'env', `environment variable ${name}`);
  }
  throw new KeyError('none', 'no private key: set the credential, a key file or a key variable');
}

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Check the editor's settings; throws a message naming the bad field. */
export function readRealServerSettings(
  config: RealServerConfig,
  credentials: Record<string, string | undefined>,
  env: Env = {},
): { name: string; uri?: string; ssh: SshSettings } {
  const field = (val: unknown, what: string) => resolveEnv(String(val ?? '').trim(), what, env);
  const num = (val: unknown, what: string, min: number, max: number, dflt: number) => {
    if (val === undefined || val === '') return dflt;
    const resolved = typeof val === 'string' ? field(val, what) : val;
    if (resolved === '') return dflt;
    const n = Number(resolved);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} ${JSON.stringify(val)} must be an integer from ${min} to ${max}`);
    return n;
  };
  const name = field(config.name, 'real server name');
  if (!NAME_RE.test(name)) throw new Error(`real server name ${JSON.stringify(name)} must be a name of letters, digits, . _ - (as in the realserver file)`);
  const host = v.hostname(field(config.host, 'host'));
  const user = field(config.user, 'user');
  if (!USER_RE.test(user)) throw new Error(`user ${JSON.stringify(user)} is not a valid login name`);
  const fingerprint = field(config.fingerprint, 'host key fingerprint');
  if (!FINGERPRINT_RE.test(fingerprint)) throw new Error(`host key fingerprint ${JSON.stringify(fingerprint)} must be SHA256:... as ssh-keygen -lf prints it`);
  const privateKey = credentials.privateKey ?? '';
  if (!privateKey.includes('PRIVATE KEY')) throw new Error('no private key (credential) set');
  const uri = field(config.uri, 'libvirt URI');
  return {
    name,
    uri: uri ? v.uri(uri) : undefined,
    ssh: {
      host,
      port: num(config.port, 'port', 1, 65535, 22),
      username: user,
      privateKey,
      passphrase: credentials.passphrase || undefined,
      hostFingerprint: fingerprint,
      connectTimeoutMs: num(config.connectTimeout, 'connect timeout (ms)', 100, 120000, 10000),
      commandTimeoutMs: num(config.commandTimeout, 'command timeout (ms)', 100, 3600000, 60000),
      autoReconnect: true,
    },
  };
}

