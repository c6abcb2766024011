// The settings of a p2p-real-server config node, checked: a bad field is refused with a message
// naming it, and nothing connects. Pure.
import { NAME_RE } from '../records/files';
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
}

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Check the editor's settings; throws a message naming the bad field. */
export function readRealServerSettings(
  config: RealServerConfig,
  credentials: Record<string, string | undefined>,
): { name: string; uri?: string; ssh: SshSettings } {
  const num = (val: unknown, what: string, min: number, max: number, dflt: number) => {
    if (val === undefined || val === '') return dflt;
    const n = Number(val);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} ${JSON.stringify(val)} must be an integer from ${min} to ${max}`);
    return n;
  };
  const name = (config.name ?? '').trim();
  if (!NAME_RE.test(name)) throw new Error(`real server name ${JSON.stringify(name)} must be a name of letters, digits, . _ - (as in the realserver file)`);
  const host = v.hostname((config.host ?? '').trim());
  const user = (config.user ?? '').trim();
  if (!USER_RE.test(user)) throw new Error(`user ${JSON.stringify(user)} is not a valid login name`);
  const fingerprint = (config.fingerprint ?? '').trim();
  if (!FINGERPRINT_RE.test(fingerprint)) throw new Error(`host key fingerprint ${JSON.stringify(fingerprint)} must be SHA256:... as ssh-keygen -lf prints it`);
  const privateKey = credentials.privateKey ?? '';
  if (!privateKey.includes('PRIVATE KEY')) throw new Error('no private key (credential) set');
  const uri = (config.uri ?? '').trim();
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

