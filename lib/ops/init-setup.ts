// `p2p-ha init`: what a new VM's Node-RED user directory needs to join the cluster, written in one
// go: settings.js essentials (a credentialSecret, telemetry and palette installs off, admin API
// behind a token that the backup starter's role step and the command line use), the flow of this
// VM (p2p-store with its identity, the real servers, heartbeat -> backup starter, load collector,
// events, maintenance) and its credentials encrypted as Node-RED encrypts them (aes-256-ctr under
// sha256(credentialSecret), node-red's runtime/lib/nodes/credentials.js), then the host-side steps
// to print. Pure apart from the random secrets; the command line writes the files.
import * as crypto from 'crypto';
import { ADDRESS_RE, NAME_RE, SERVICE_RE } from '../records/files';

export interface RealServerSpec {
  name: string;
  host: string;
  port: number;
  user: string;
  /** `SHA256:...` of the host's SSH key, or '' (the operator must set it before anything connects). */
  fingerprint: string;
}

export interface InitOptions {
  hostname: string;
  address: string;
  realServer: string;
  services: string;
  /** Addresses of one or two members already running (none for the first VM). */
  seeds: string[];
  realServers: RealServerSpec[];
  /** The cluster secret (the same on every VM). */
  clusterSecret: string;
  /** The private key of the SSH user on the real servers (OpenSSH PEM). */
  privateKey: string;
  /** The key the replicator logs into new clones with (root in the ODS image); default privateKey. */
  guestKey?: string;
  semPort: number;
  uiPort: number;
  /** The address the editor and admin API listen on (default all: 0.0.0.0). */
  uiHost?: string;
  procedureDir: string;
  /** Reuse an admin token (this VM's editor and command line; the role step needs none). */
  adminToken?: string;
  credentialSecret?: string;
}

export interface InitOutput {
  settingsJs: string;
  flows: object[];
  credentials: Record<string, unknown>;
  credentialSecret: string;
  adminToken: string;
  hostSteps: string[];
}

export class InitError extends Error {}

/** Read `RS1=10.0.0.1[:22][@user][#SHA256:...]` (one real server). */
export function parseRealServerSpec(text: string): RealServerSpec {
  const m = /^([^=]+)=([^:@#]+)(?::(\d{1,5}))?(?:@([a-z_][a-z0-9_-]{0,31}))?(?:#(SHA256:[A-Za-z0-9+/]{43}=?))?$/.exec(text.trim());
  if (!m) throw new InitError(`real server ${JSON.stringify(text)}: expected NAME=HOST[:PORT][@USER][#SHA256:fingerprint]`);
  const [, name, host, port, user, fp] = m;
  if (!NAME_RE.test(name)) throw new InitError(`real server name ${JSON.stringify(name)} is not a name of letters, digits, . _ -`);
  if (!ADDRESS_RE.test(host)) throw new InitError(`real server ${name}: ${JSON.stringify(host)} is not an address`);
  return { name, host, port: port ? Number(port) : 22, user: user ?? 'p2pha', fingerprint: fp ?? '' };
}

function check(o: InitOptions): void {
  if (!NAME_RE.test(o.hostname)) throw new InitError(`hostname ${JSON.stringify(o.hostname)} is not a name of letters, digits, . _ -`);
  if (!ADDRESS_RE.test(o.address)) throw new InitError(`address ${JSON.stringify(o.address)} is not an IPv4 address or DNS name`);
  if (!NAME_RE.test(o.realServer)) throw new InitError(`real server ${JSON.stringify(o.realServer)} is not a name`);
  const svc = o.services.trim();
  if (svc && svc !== '-' && !svc.split(/\s+/).every((s) => SERVICE_RE.test(s))) throw new InitError(`services ${JSON.stringify(svc)}: expected tcp:PORT or http:PORT/PATH checks`);
  for (const s of o.seeds) if (!ADDRESS_RE.test(s)) throw new InitError(`seed ${JSON.stringify(s)} is not an address`);
  if (o.clusterSecret.length < 16) throw new InitError('the cluster secret must be at least 16 characters');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(o.privateKey)) throw new InitError('the SSH private key is not an OpenSSH/PEM private key');
  if (o.guestKey !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(o.guestKey)) throw new InitError('the guest key is not an OpenSSH/PEM private key');
  if (!o.realServers.some((r) => r.name === o.realServer)) throw new InitError(`this VM's real server ${o.realServer} is not among --real-server`);
  if (o.uiHost !== undefined && !ADDRESS_RE.test(o.uiHost)) throw new InitError(`ui host ${JSON.stringify(o.uiHost)} is not an address`);
  for (const p of [o.semPort, o.uiPort]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InitError(`port ${p} is not 1-65535`);
}

/** Node-RED's own credential encryption (so the runtime reads flows_cred.json as its own). */
export function encryptCredentials(credentialSecret: string, creds: Record<string, unknown>): { $: string } {
  const key = crypto.createHash('sha256').update(credentialSecret).digest();
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + c.update(JSON.stringify(creds), 'utf8', 'base64') + c.final('base64') };
}

export function decryptCredentials(credentialSecret: string, enc: { $: string }): Record<string, unknown> {
  const key = crypto.createHash('sha256').update(credentialSecret).digest();
  const d = crypto.createDecipheriv('aes-256-ctr', key, Buffer.from(enc.$.slice(0, 32), 'hex'));
  return JSON.parse(d.update(enc.$.slice(32), 'base64', 'utf8') + d.final('utf8'));
}

export function settingsJs(o: { credentialSecret: string; uiPort: number; uiHost: string }): string {
  return `// Node-RED settings for a p2p-ha VM, written by \`p2p-ha init\`. Only the essentials: add your own.
// The admin API answers only with a token (the p2p-ha command line uses P2P_HA_ADMIN_TOKEN, kept in
// p2p-ha-admin-token beside this file; the role step needs none: POST /p2p-ha/role is a call
// signed by the calling VM's key). Add editor users
// with \`node-red admin hash-pw\` under adminAuth.users.
const fs = require('fs');
const path = require('path');
const tokenFile = path.join(__dirname, 'p2p-ha-admin-token');
const adminToken = process.env.P2P_HA_ADMIN_TOKEN || fs.readFileSync(tokenFile, 'utf8').trim();

module.exports = {
  uiHost: ${JSON.stringify(o.uiHost)},
  uiPort: ${o.uiPort},
  flowFile: 'flows.json',
  credentialSecret: ${JSON.stringify(o.credentialSecret)},
  adminAuth: {
    type: 'credentials',
    users: [],
    tokens: function (token) {
      return Promise.resolve(token === adminToken ? { user: 'p2p-ha', permissions: '*' } : null);
    },
  },
  telemetry: { enabled: false, updateNotification: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false, allowUpload: false }, modules: { allowInstall: false } },
  editorTheme: { palette: { catalogues: [] }, projects: { enabled: false } },
  diagnostics: { enabled: false, ui: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`;
}

const rsId = (name: string) => `rs-${name}`;

export function buildInit(o: InitOptions): InitOutput {
  check(o);
  const credentialSecret = o.credentialSecret ?? crypto.randomBytes(32).toString('hex');
  const adminToken = o.adminToken ?? crypto.randomBytes(24).toString('base64url');
  const z = 'p2p-ha-tab';
  const flows: object[] = [
    { id: z, type: 'tab', label: `p2p-ha ${o.hostname}`, info: 'Written by p2p-ha init: this VM as a member of the cluster.' },
    {
      id: 'store',
      type: 'p2p-store',
      name: o.hostname,
      hostname: o.hostname,
      address: o.address,
      realServer: o.realServer,
      services: o.services.trim() || '-',
      folder: '',
      port: o.semPort,
      seeds: o.seeds.join(' '),
      syncInterval: 2000,
      requestTimeout: 2000,
      autoJoin: true,
    },
    ...o.realServers.map((r) => ({ id: rsId(r.name), type: 'p2p-real-server', name: r.name, host: r.host, port: r.port, user: r.user, fingerprint: r.fingerprint, connectTimeout: 3000, commandTimeout: 15000 })),
    { id: 'hb', z, type: 'p2p-heartbeat', store: 'store', interval: 1000, timeout: 500, reexamNetwork: 2000, reexamService: 3000, takeoverGrace: 1500, settle: 500, x: 140, y: 80, wires: [['only-failures']] },
    { id: 'only-failures', z, type: 'switch', name: 'failures', property: 'topic', propertyType: 'msg', rules: [{ t: 'eq', v: 'failure', vt: 'str' }], checkall: 'true', outputs: 1, x: 320, y: 80, wires: [['starter']] },
    { id: 'starter', z, type: 'p2p-backup-starter', store: 'store', procedureDir: o.procedureDir, confirmWait: 8, maxOdAttempts: 3, roleMode: 'admin-api', adminPort: o.uiPort, x: 520, y: 80, wires: [['steps']] },
    { id: 'steps', z, type: 'debug', name: 'recovery steps', active: true, console: true, complete: 'payload', x: 760, y: 80, wires: [] },
    { id: 'starter-catch', z, type: 'catch', scope: ['starter'], x: 520, y: 140, wires: [['errors']] },
    { id: 'errors', z, type: 'debug', name: 'recovery errors', active: true, console: true, complete: 'error', x: 760, y: 140, wires: [] },
    // One collector per real server (the reference is what marks the p2p-real-server as used).
    ...o.realServers.map((r, i) => ({ id: `collector-${r.name}`, z, type: 'p2p-load-collector', name: `load of ${r.name}`, store: 'store', realServer: rsId(r.name), interval: 10, threshold: 0.1, capacity: true, x: 140, y: 220 + 40 * i, wires: [] })),
    // Seed mode (the identity on a seed volume before the clone's first boot): the only mode that
    // gives a clone on a real bridge its own address and host key (issue 13); it logs into the
    // clone with the guest key to check it is ready.
    { id: 'replicator', z, type: 'p2p-od-replicator', store: 'store', ods: 'ODS-{rs}', reidentify: 'seed', guestUser: 'root', procedureDir: o.procedureDir, interval: 30, debounce: 0.5, x: 160, y: 300 + 40 * o.realServers.length, wires: [['steps']] },
    { id: 'events', z, type: 'p2p-events', store: 'store', stall: 120, x: 130, y: 360, wires: [[], ['alerts']] },
    { id: 'alerts', z, type: 'debug', name: 'alerts (wire mail / MQTT / a webhook here: examples/06)', active: true, console: true, complete: 'payload.text', x: 420, y: 360, wires: [] },
    { id: 'maintenance', z, type: 'p2p-maintenance', store: 'store', x: 150, y: 440, wires: [[]] },
  ];
  const plain: Record<string, Record<string, string>> = {
    store: { secret: o.clusterSecret },
  };
  for (const r of o.realServers) plain[rsId(r.name)] = { privateKey: o.privateKey };
  plain.replicator = { guestKey: o.guestKey ?? o.privateKey };
  const credentials = encryptCredentials(credentialSecret, plain);
  const hostSteps = [
    `On every real server (${o.realServers.map((r) => `${r.name} ${r.host}`).join(', ')}), as root:`,
    '  p2p-ha host-setup --user p2pha --public-key <the public half of the key you gave init>  (prints what it does; add --apply to do it)',
    `  install each target's installation procedure as ${o.procedureDir}/<target>.sh (same files on every real server)`,
    '  keep an ODS (template VM with this package and every service installed, named ODS-<real server>) shut off, and one suspended OD per real server',
    `  in each ODS image: root accepts the public half of the ${o.guestKey ? 'guest key you gave init' : 'key you gave init'} (the replicator logs into each new clone with it to check it is ready), and cloud-init reads a NoCloud seed (docs/recovery.md)`,
    ...o.realServers.filter((r) => !r.fingerprint).map((r) => `  ${r.name}: no host key fingerprint given: read it with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on ${r.host} and set it in the p2p-real-server node (nothing connects until then)`),
    `On this VM: npm install @p2p-ha/node-red-server-manager in the user directory, then start node-red -u <user dir>.`,
    `  Suggested: NODE_OPTIONS=--max-semi-space-size=4 in Node-RED's environment (caps V8's young generation: about 20 MB less RSS once edits flow, same CPU; docs/memory.md).`,
    `Managers reach a backup's admin port (${o.uiPort}) for the role step with a call signed by their VM key: no token is shared between VMs.`,
  ];
  return { settingsJs: settingsJs({ credentialSecret, uiPort: o.uiPort, uiHost: o.uiHost ?? '0.0.0.0' }), flows, credentials, credentialSecret, adminToken, hostSteps };
}

/** `p2p-ha host-setup`: the least-privilege SSH user on a KVM host, as shell lines to run as root. */
export function hostSetupScript(o: { user: string; publicKey: string; procedureDir: string }): string[] {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(o.user)) throw new InitError(`user ${JSON.stringify(o.user)} is not a login name`);
  if (!/^ssh-(ed25519|rsa) [A-Za-z0-9+/=]+(?: [^\n'"]*)?$/.test(o.publicKey.trim())) throw new InitError('the public key must be one ssh-ed25519 or ssh-rsa line');
  if (!/^\/[A-Za-z0-9._/-]+$/.test(o.procedureDir)) throw new InitError(`procedure folder ${JSON.stringify(o.procedureDir)} is not an absolute path`);
  const home = `/home/${o.user}`;
  return [
    `id -u ${o.user} >/dev/null 2>&1 || useradd --create-home --shell /bin/sh ${o.user}`,
    // libvirt's own group: virsh and virt-clone against qemu:///system without root or sudo.
    `usermod -a -G libvirt ${o.user}`,
    `install -d -m 700 -o ${o.user} -g ${o.user} ${home}/.ssh`,
    `printf '%s\\n' '${o.publicKey.trim()}' > ${home}/.ssh/authorized_keys`,
    `chown ${o.user}:${o.user} ${home}/.ssh/authorized_keys && chmod 600 ${home}/.ssh/authorized_keys`,
    `install -d -m 755 ${o.procedureDir}`,
    `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`,
  ];
}
