// The editor-facing settings of the nodes, pure: ${NAME} in a field, identity from P2P_*
// variables, the private key's sources, the status rule of the store's users, and the message
// catalogues (every key the code uses exists in en-US; ja has exactly the same keys).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { EnvValueError, fieldOrEnv, hasEnvRef, resolveEnv } from '../../lib/records/env-value';
import { KeyError, privateKeyFrom, readRealServerSettings } from '../../lib/hv/real-server-settings';
import { MissingIdentityError, storeIdentity } from '../../nodes/common/store-identity';
import { combineStatus } from '../../nodes/common/store-user';
import { COMMON_NS, englishText, interpolate, translator } from '../../nodes/common/i18n';
import type { StoreStatus } from '../../lib/sem/replicated-store';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n';
const FP = 'SHA256:' + 'B'.repeat(43);
const noFile = (p: string): string => {
  throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
};

describe('editor settings: ${NAME} values', () => {
  it('substitutes every ${NAME}, keeps other text, and names the field and variable when unset', () => {
    assert.equal(resolveEnv('10.0.0.${N}', 'address', { N: '7' }), '10.0.0.7');
    assert.equal(resolveEnv('${A}-${B}', 'x', { A: 'a', B: 'b' }), 'a-b');
    assert.equal(resolveEnv('plain', 'x', {}), 'plain');
    assert.ok(hasEnvRef('${P2P_HOSTNAME}') && !hasEnvRef('$P2P_HOSTNAME'));
    assert.throws(
      () => resolveEnv('${P2P_HOSTNAME}', 'hostname', {}),
      (e: unknown) => e instanceof EnvValueError && e.field === 'hostname' && e.variable === 'P2P_HOSTNAME',
    );
    assert.equal(fieldOrEnv('', 'address', { P2P_ADDRESS: ' 10.0.0.2 ' }, 'P2P_ADDRESS'), '10.0.0.2');
    assert.equal(fieldOrEnv(' S1 ', 'hostname', { P2P_HOSTNAME: 'S9' }, 'P2P_HOSTNAME'), 'S1', 'a typed value wins');
  });

  it('store identity: empty fields from P2P_*, hostname falling back to the host name', () => {
    assert.deepEqual(storeIdentity({}, { P2P_HOSTNAME: 'S3', P2P_ADDRESS: '10.0.0.3', P2P_REAL_SERVER: 'RS2', P2P_SERVICES: 'tcp:80' }, 'vm-host'), {
      hostname: 'S3',
      address: '10.0.0.3',
      realServer: 'RS2',
      services: 'tcp:80',
    });
    assert.equal(storeIdentity({ address: '10.0.0.3', realServer: 'RS1' }, {}, 'vm-host').hostname, 'vm-host');
    assert.equal(storeIdentity({ hostname: '${ME}', address: 'a', realServer: 'RS1' }, { ME: 'S4' }, 'vm-host').hostname, 'S4');
    assert.throws(() => storeIdentity({ address: '${NOPE}' }, {}, 'h'), EnvValueError);
    assert.throws(() => storeIdentity({ realServer: 'RS1' }, {}, 'h'), (e: unknown) => e instanceof MissingIdentityError && e.variable === 'P2P_ADDRESS');
  });

  it('real server: ${NAME} in host and port resolved then validated; a bad substituted value is refused', () => {
    const base = { name: 'RS1', host: '${RS_HOST}', port: '${RS_PORT}', user: 'root', fingerprint: FP };
    const s = readRealServerSettings(base, { privateKey: KEY }, { RS_HOST: 'kvm1.example.org', RS_PORT: '2222' });
    assert.equal(s.ssh.host, 'kvm1.example.org');
    assert.equal(s.ssh.port, 2222);
    assert.throws(() => readRealServerSettings(base, { privateKey: KEY }, { RS_PORT: '22' }), /RS_HOST/);
    assert.throws(() => readRealServerSettings(base, { privateKey: KEY }, { RS_HOST: 'a; rm -rf /', RS_PORT: '22' }));
    assert.throws(() => readRealServerSettings(base, { privateKey: KEY }, { RS_HOST: 'kvm1', RS_PORT: '99999' }), /port/);
  });
});

describe('editor settings: the private key\'s sources', () => {
  it('prefers the credential, then the key file, then the variable', () => {
    const files: Record<string, string> = { '/keys/rs1': KEY };
    const read = (p: string) => {
      if (!(p in files)) return noFile(p);
      return files[p];
    };
    assert.equal(privateKeyFrom({ keyFile: '/keys/rs1', keyEnv: 'K' }, { privateKey: KEY }, { K: KEY }, read).source, 'credential');
    assert.equal(privateKeyFrom({ keyFile: '/keys/rs1', keyEnv: 'K' }, {}, { K: KEY }, read).source, 'file');
    assert.equal(privateKeyFrom({ keyEnv: 'K' }, {}, { K: KEY }, read).source, 'env');
    assert.equal(privateKeyFrom({ keyFile: '${KEYS}/rs1' }, {}, { KEYS: '/keys' }, read).source, 'file');
  });

  it('accepts a one-line key from a variable with literal \\n', () => {
    const r = privateKeyFrom({ keyEnv: 'K' }, {}, { K: KEY.replace(/\n/g, '\\n') }, noFile);
    assert.equal(r.key, KEY);
  });

  it('fails clearly (kind and source named, key never in the message)', () => {
    const secret = '-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-MATERIAL\n';
    const cases: [Parameters<typeof privateKeyFrom>, KeyError['kind'], RegExp][] = [
      [[{}, {}, {}, noFile], 'none', /no private key/],
      [[{ keyFile: '/missing' }, {}, {}, noFile], 'file-unreadable', /\/missing.*ENOENT/],
      [[{ keyEnv: 'K' }, {}, {}, noFile], 'env-unset', /K .*not set/],
      [[{ keyEnv: 'K' }, {}, { K: 'not a key' }, noFile], 'not-a-key', /environment variable K/],
      [[{ keyFile: '/f' }, {}, {}, () => 'SECRET-MATERIAL garbage'], 'not-a-key', /key file/],
      [[{}, { privateKey: 'SECRET-MATERIAL' }, {}, noFile], 'not-a-key', /credential/],
    ];
    for (const [args, kind, re] of cases) {
      assert.throws(
        () => privateKeyFrom(...args),
        (e: unknown) => e instanceof KeyError && e.kind === kind && re.test(e.message) && !e.message.includes('SECRET-MATERIAL'),
        `${kind} ${re}`,
      );
    }
    assert.ok(secret);
  });
});

describe('editor settings: who owns a node\'s status', () => {
  const ok: StoreStatus = { state: 'ok', text: 'S1: 2 peers in sync' };
  const degraded: StoreStatus = { state: 'degraded', text: 'S1: 1/5 peers unreachable (S6)' };
  const own = { fill: 'green', shape: 'dot', text: '2 up, 0 edit(s)' } as const;

  it('the store\'s status shows only while the node has none of its own', () => {
    assert.equal(combineStatus(undefined, ok).text, 'S1: 2 peers in sync');
    assert.deepEqual(combineStatus(own, ok), own);
  });

  it('a degraded store adds a suffix to the node\'s own status, never replaces it', () => {
    const s = combineStatus(own, degraded);
    assert.equal(s.fill, 'green');
    assert.match(s.text!, /^2 up, 0 edit\(s\) · store degraded$/);
  });

  it('a store that cannot serve (starting, stopped, failed) shows instead, and the node\'s own comes back after', () => {
    for (const state of ['starting', 'stopped', 'error'] as const) {
      assert.notEqual(combineStatus(own, { state, text: state }).text, own.text, state);
    }
    assert.deepEqual(combineStatus(own, ok), own);
  });
});

describe('editor settings: message catalogues', () => {
  const root = path.join(__dirname, '..', '..', '..');
  const keys = (o: unknown, p = ''): string[] =>
    Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => (typeof v === 'object' && v ? keys(v, `${p}${k}.`) : [`${p}${k}`]));

  it('ja has exactly the keys of en-US, for every node and the sidebar', () => {
    for (const dir of ['nodes/locales', 'plugins/locales']) {
      for (const f of fs.readdirSync(path.join(root, dir, 'en-US')).filter((x) => x.endsWith('.json'))) {
        const en = keys(JSON.parse(fs.readFileSync(path.join(root, dir, 'en-US', f), 'utf8'))).sort();
        const ja = keys(JSON.parse(fs.readFileSync(path.join(root, dir, 'ja', f), 'utf8'))).sort();
        assert.deepEqual(ja, en, `${dir} ${f}`);
      }
    }
    for (const f of fs.readdirSync(path.join(root, 'nodes/locales/en-US')).filter((x) => x.endsWith('.html'))) {
      assert.ok(fs.existsSync(path.join(root, 'nodes/locales/ja', f)), `ja help ${f}`);
    }
  });

  it('every message key the runtime code uses exists in en-US', () => {
    const used = new Set<string>();
    for (const dir of ['nodes', 'nodes/common', 'plugins']) {
      for (const f of fs.readdirSync(path.join(root, dir)).filter((x) => x.endsWith('.ts'))) {
        const src = fs.readFileSync(path.join(root, dir, f), 'utf8');
        for (const m of src.matchAll(/\bt\(\s*'(p2p-[A-Za-z0-9_.-]+)'/g)) used.add(m[1]);
        for (const m of src.matchAll(/common\(t, '([A-Za-z0-9_.]+)'/g)) used.add(`p2p-store.common.${m[1]}`);
      }
    }
    assert.ok(used.size > 40, `found ${used.size} keys`);
    const missing = [...used].filter((k) => englishText(k) === undefined && englishText(k, path.join(root, 'plugins/locales/en-US')) === undefined);
    assert.deepEqual(missing, []);
    // The ids that are built at run time.
    for (const id of ['starting', 'stopped', 'alone', 'inSync', 'unreachable', 'cannotListen']) assert.ok(englishText(`p2p-store.common.store.${id}`), id);
    for (const kind of ['file-unreadable', 'env-unset', 'not-a-key']) assert.ok(englishText(`p2p-real-server.errors.${kind}`), kind);
    for (const id of ['watchingNobody', 'failedHere', 'failedElsewhere', 'failedP2', 'suspect', 'reexamining', 'starved', 'watching']) {
      assert.ok(englishText(`p2p-heartbeat.status.${id}`), id);
    }
  });

  it('translates through RED._, and falls back to en-US (never a bare key) where RED._ knows none', () => {
    const ja = translator({ _: (k: string) => (k === 'p2p-sem-send.status.sending' ? '送信中…' : k) });
    assert.equal(ja('p2p-sem-send.status.sending'), '送信中…');
    const none = translator({ _: (k: string) => k.slice(k.indexOf(':') + 1) });
    assert.equal(none('p2p-sem-send.status.acked', { acked: 2, peers: 3, ms: '1.5' }), '2/3 peers in 1.5 ms');
    assert.equal(none(`${COMMON_NS}:p2p-store.common.noStore`), 'no p2p-store configured');
    assert.equal(interpolate('__a__ and __b__', { a: 1 }), '1 and __b__');
  });
});
