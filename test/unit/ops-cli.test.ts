// The lasting history (rotation, torn lines, filters, times of day) and the p2p-ha command line
// (status, history, init, host-setup, usage errors), run in-process on temporary folders.
import * as assert from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { History, parseWhen, readHistory } from '../../lib/ops/history';
import { main } from '../../lib/ops/cli';
import { parseWindowEnd, rotatedFlows } from '../../lib/ops/rotate-secret';
import { decryptCredentials, parseRealServerSpec } from '../../lib/ops/init-setup';
import { sshKeyPair } from '../../harness/ssh-keys';
import { loadKeyAnchors } from '../../lib/sem/key-anchors';

const T = Date.parse('2026-01-02T03:12:00.000Z');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s), env, now: () => T });
  return { code, out, err };
}

describe('ops: history and the p2p-ha command line', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ops-cli-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('history: appended in order, rotated by size, pruned by count and age, torn lines skipped', () => {
    let now = T;
    const h = new History({ dir, maxBytes: 400, maxFiles: 2, maxAgeMs: 3600_000, now: () => now });
    for (let i = 0; i < 30; i++) {
      now = T + i * 1000;
      h.append({ at: now, target: `S${i % 3}`, step: 'detected', by: 'S1', detail: `entry ${i}` });
    }
    assert.ok(h.rotated().length <= 2, `kept ${h.rotated().length} rotated files`);
    const all = h.read();
    assert.ok(all.length > 0 && all.length < 30, 'the oldest were pruned');
    assert.deepStrictEqual(all.map((e) => e.at), [...all.map((e) => e.at)].sort((a, b) => a - b), 'in time order across files');
    assert.strictEqual(all[all.length - 1].detail, 'entry 29');
    fs.appendFileSync(h.file, '{"at": 1, "targ');
    assert.strictEqual(readHistory(dir).length, all.length, 'a torn last line is skipped');
    assert.deepStrictEqual(h.read({ target: 'S1' }).every((e) => e.target === 'S1'), true);
    assert.throws(() => h.append({ at: NaN, target: 'S1', step: 'x' }), /needs at/);
  });

  it('times: HH:MM today or yesterday, relative, ISO; junk refused', () => {
    const local = new Date(T);
    const hm = `${String(local.getHours()).padStart(2, '0')}:${String(local.getMinutes()).padStart(2, '0')}`;
    assert.strictEqual(parseWhen(hm, T), T);
    assert.strictEqual(parseWhen('2h', T), T - 7200_000);
    assert.strictEqual(parseWhen('2026-01-02T03:00:00Z', T), T - 12 * 60_000);
    const later = new Date(T + 3600_000);
    assert.strictEqual(parseWhen(`${String(later.getHours()).padStart(2, '0')}:${String(later.getMinutes()).padStart(2, '0')}`, T), T + 3600_000 - 86_400_000, 'a time still to come is yesterday');
    for (const bad of ['25:00', 'yesterday', '3', '']) assert.throws(() => parseWhen(bad, T), /cannot read|not a time/);
  });

  it('p2p-ha history --since filters and prints one line a step; status prints ring, problems, hosts, ODs, maintenance', async () => {
    const hdir = path.join(dir, 'p2p-ha-history');
    const h = new History({ dir: hdir });
    h.append({ at: T - 3600_000, target: 'S5', step: 'recovered', by: 'S4' });
    h.append({ at: T - 60_000, target: 'S2', step: 'confirmed', by: 'S1', detail: 'network' });
    h.append({ at: T - 59_000, target: 'S2', step: 'recovered', by: 'S1', detail: 'S2 -> S2b on RS3 in 2310 ms' });
    const r = await cli(['history', '--since', '10m', '--user-dir', dir]);
    assert.strictEqual(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    assert.strictEqual(lines.length, 2);
    assert.match(lines[1], /^2026-01-02T03:11:01.000Z {2}S2 +recovered +by S1 {2}S2 -> S2b on RS3 in 2310 ms$/);
    const j = await cli(['history', '--json', '--target', 'S5', '--dir', hdir]);
    assert.deepStrictEqual(JSON.parse(j.out.trim()), { at: T - 3600_000, target: 'S5', step: 'recovered', by: 'S4' });

    const fdir = path.join(dir, 'p2p-ha');
    fs.mkdirSync(fdir);
    fs.writeFileSync(path.join(fdir, 'group'), 'S1, 10.0.0.1, RS1, tcp:80\nS2, 10.0.0.2, RS2, tcp:80, maintenance\nS3, 10.0.0.3, RS1, -\n');
    fs.writeFileSync(path.join(fdir, 'problem'), 'S4, S3, network, failed, -, 2026-01-02T03:00:00.000Z, fence: RS2 unreachable\n');
    fs.writeFileSync(path.join(fdir, 'realserver'), `RS1, 0.25, 2, up, 2048, 2, ${new Date(T - 30_000).toISOString()}\nRS2, 0.10, 1, maintenance\n`);
    fs.writeFileSync(path.join(fdir, 'available-od'), 'OD1, 10.0.0.121, RS1\n');
    const s = await cli(['status', '--user-dir', dir]);
    assert.strictEqual(s.code, 0, s.err);
    assert.match(s.out, /3 members, 2 real servers \(0 down\), 1 available ODs, 1 problem open/);
    assert.match(s.out, /S2 +10\.0\.0\.2 +RS2 +tcp:80 +S1 +S3 +maintenance/);
    assert.match(s.out, /S4 +FAILED +network +S3 +- +2026-01-02T03:00:00\.000Z +fence: RS2 unreachable/);
    assert.match(s.out, /RS1 +up +0\.25 +2 +1 +2048 +2 +30 s old/);
    assert.match(s.out, /OD1 \(10\.0\.0\.121 on RS1\)/);
    assert.match(s.out, /Maintenance: VMs S2; real servers RS2/);
    const none = await cli(['status', '--dir', path.join(dir, 'nowhere')]);
    assert.strictEqual(none.code, 1);
    assert.match(none.err, /holds no management files/);
  });

  it('p2p-ha init writes settings.js, the flow with the identity and credentials Node-RED can decrypt; refuses to overwrite', async () => {
    const key = sshKeyPair();
    fs.writeFileSync(path.join(dir, 'secret'), 'a-cluster-secret-of-some-length\n');
    fs.writeFileSync(path.join(dir, 'key'), key.private);
    const ud = path.join(dir, 'nr');
    const args = ['init', '--user-dir', ud, '--hostname', 'S4', '--address', '10.0.0.4', '--real-server', 'RS1', '--rs', 'RS1=10.0.1.1#SHA256:' + 'A'.repeat(43), '--rs', 'RS2=10.0.1.2:2222@kvm'];
    args.push('--services', 'tcp:80', '--seeds', '10.0.0.1,10.0.0.2', '--secret-file', path.join(dir, 'secret'), '--key-file', path.join(dir, 'key'));
    const r = await cli(args);
    assert.strictEqual(r.code, 0, r.err);
    assert.match(r.out, /RS2: no host key fingerprint given/);
    // The V8 option docs/memory.md recommends is suggested, never set behind the user's back.
    assert.match(r.out, /Suggested: NODE_OPTIONS=--max-semi-space-size=4/);
    const settings = fs.readFileSync(path.join(ud, 'settings.js'), 'utf8');
    const secret = /credentialSecret: "([0-9a-f]{64})"/.exec(settings)![1];
    assert.match(settings, /telemetry: \{ enabled: false/);
    assert.match(settings, /catalogues: \[\]/);
    const flows = JSON.parse(fs.readFileSync(path.join(ud, 'flows.json'), 'utf8'));
    const store = flows.find((n: { type: string }) => n.type === 'p2p-store');
    assert.deepStrictEqual([store.hostname, store.address, store.realServer, store.services, store.seeds], ['S4', '10.0.0.4', 'RS1', 'tcp:80', '10.0.0.1 10.0.0.2']);
    assert.deepStrictEqual(flows.filter((n: { type: string }) => n.type === 'p2p-real-server').map((n: { host: string; port: number; user: string }) => `${n.host}:${n.port}@${n.user}`), ['10.0.1.1:22@p2pha', '10.0.1.2:2222@kvm']);
    const creds = decryptCredentials(secret, JSON.parse(fs.readFileSync(path.join(ud, 'flows_cred.json'), 'utf8')));
    assert.deepStrictEqual((creds.store as { secret: string }).secret, 'a-cluster-secret-of-some-length');
    assert.strictEqual((creds['rs-RS2'] as { privateKey: string }).privateKey, key.private);
    // The replicator in seed mode (the one mode that re-identifies a clone on a real bridge) with its guest key.
    assert.strictEqual(flows.find((n: { type: string }) => n.type === 'p2p-od-replicator').reidentify, 'seed');
    assert.strictEqual((creds.replicator as { guestKey: string }).guestKey, key.private);
    // One load collector per real server, each naming its own (no "every real server" fallback).
    assert.deepStrictEqual(flows.filter((n: { type: string }) => n.type === 'p2p-load-collector').map((n: { realServer: string }) => n.realServer), ['rs-RS1', 'rs-RS2']);
    const token = fs.readFileSync(path.join(ud, 'p2p-ha-admin-token'), 'utf8').trim();
    assert.strictEqual(creds.starter, undefined, 'the role step needs no token: nothing for the starter');
    // The settings file loads and its token check answers.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require(path.join(ud, 'settings.js'));
    assert.deepStrictEqual(await loaded.adminAuth.tokens(token), { user: 'p2p-ha', permissions: '*' });
    assert.strictEqual(await loaded.adminAuth.tokens('guess'), null);
    const again = await cli(args);
    assert.strictEqual(again.code, 1);
    assert.match(again.err, /already holds settings\.js/);
    const bad = await cli([...args.slice(0, 6), 'S4; rm -rf /', ...args.slice(7), '--force']);
    assert.strictEqual(bad.code, 1);
    assert.match(bad.err, /address "S4; rm -rf \/" is not/);
    // --trust-group: the members' keys from a member's group file, as the store's key anchors.
    const k1 = 'A'.repeat(43) + '=';
    fs.writeFileSync(path.join(dir, 'group'), `# group\nS1, 10.0.0.1, RS1, tcp:80, member, ${k1}\nS2, 10.0.0.2, RS1, tcp:80\n`);
    const anchored = await cli([...args, '--force', '--trust-group', path.join(dir, 'group')]);
    assert.strictEqual(anchored.code, 0, anchored.err);
    const anchorPath = path.join(ud, 'p2p-ha', '.keys', 'anchors');
    assert.deepStrictEqual(Array.from(loadKeyAnchors(path.join(ud, 'p2p-ha'))), [['S1', k1]]);
    assert.strictEqual(fs.statSync(anchorPath).mode & 0o777, 0o600);
    fs.writeFileSync(path.join(dir, 'group'), 'not a group file\n');
    const notGroup = await cli([...args, '--force', '--trust-group', path.join(dir, 'group')]);
    assert.strictEqual(notGroup.code, 1);
  });

  it('host-setup prints the least-privilege user steps; usage errors exit 2', async () => {
    const r = await cli(['host-setup', '--public-key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm3 p2p-ha']);
    assert.strictEqual(r.code, 0, r.err);
    assert.match(r.out, /useradd --create-home --shell \/bin\/sh p2pha/);
    assert.match(r.out, /usermod -a -G libvirt p2pha/);
    assert.strictEqual((await cli(['host-setup', '--public-key', "x'; reboot"])).code, 1);
    assert.strictEqual((await cli(['frobnicate'])).code, 2);
    assert.strictEqual((await cli(['maintenance', 'maybe'])).code, 2);
    assert.throws(() => parseRealServerSpec('RS1=host;reboot'), /is not an address/);
    assert.throws(() => parseRealServerSpec('RS1'), /expected NAME=HOST/);
  });

  it('rotate-secret: only the store changes (new secret, previous one, the window end); weak, same, empty or past refused', () => {
    const flows = [
      { id: 't', type: 'tab' },
      { id: 'st', type: 'p2p-store', hostname: 'S1', port: 18800 },
      { id: 'hb', type: 'p2p-heartbeat', store: 'st' },
    ];
    const until = T + 3_600_000;
    const r = rotatedFlows(flows, { secret: 'n'.repeat(32), previous: 'o'.repeat(32), until }, T);
    assert.deepStrictEqual(r.flows[1], { id: 'st', type: 'p2p-store', hostname: 'S1', port: 18800, previousUntil: new Date(until).toISOString(), credentials: { secret: 'n'.repeat(32), previousSecret: 'o'.repeat(32) } });
    assert.strictEqual(r.flows[0], flows[0]);
    assert.strictEqual(r.flows[2], flows[2]);
    assert.throws(() => rotatedFlows(flows, { secret: 'short', previous: 'o'.repeat(32), until }, T), /shorter than 22 characters/);
    assert.throws(() => rotatedFlows(flows, { secret: 'o'.repeat(32), previous: 'o'.repeat(32), until }, T), /is the previous one/);
    assert.throws(() => rotatedFlows(flows, { secret: 'n'.repeat(32), previous: '', until }, T), /previous secret is empty/);
    assert.throws(() => rotatedFlows(flows, { secret: 'n'.repeat(32), previous: 'o'.repeat(32), until: T - 1 }, T), /not in the future/);
    assert.throws(() => rotatedFlows([...flows, { id: 'st2', type: 'p2p-store' }], { secret: 'n'.repeat(32), previous: 'o'.repeat(32), until }, T), /2 p2p-store nodes: name one with --store ID/);
    assert.strictEqual(rotatedFlows([...flows, { id: 'st2', type: 'p2p-store' }], { secret: 'n'.repeat(32), previous: 'o'.repeat(32), until, storeId: 'st2' }, T).store.id, 'st2');
    assert.strictEqual(parseWindowEnd('1h', T), T + 3_600_000);
    assert.strictEqual(parseWindowEnd('2026-01-02T04:00:00Z', T), Date.parse('2026-01-02T04:00:00Z'));
    assert.throws(() => parseWindowEnd('soon', T), /expected an ISO time/);
  });

  it('evacuate: prints what moved and where each unmoved VM was left, exits 1 on a partial evacuation; a refusal is its error', async () => {
    // A stand-in for a VM's admin API on loopback: the answers are what nodes/p2p-maintenance.ts sends.
    const answers: [number, unknown][] = [
      [200, { realServer: 'RS2', moved: [{ vm: 'S2', backup: 'S2b', realServer: 'RS1', stop: 'shut down' }], failed: [] }],
      [
        500,
        {
          realServer: 'RS2',
          moved: [{ vm: 'S2', backup: 'S2b', realServer: 'RS1', stop: 'shut down' }],
          failed: [{ vm: 'S5', error: 'no OD on a live real server', outcome: 'kept-serving' }],
        },
      ],
      [409, { error: 'deploy a p2p-maintenance node on this VM first' }],
    ];
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''} ${body}`);
        const [status, json] = answers.shift()!;
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const ok = await cli(['evacuate', '--real-server', 'RS2', '--url', url], { P2P_HA_ADMIN_TOKEN: 'tok' });
      assert.strictEqual(ok.code, 0, ok.err);
      assert.strictEqual(ok.out, 'S2: shut down, its role now on S2b (RS1)\nRS2: evacuated, in maintenance\n');
      assert.strictEqual(seen[0], `POST /p2p-ha/evacuate Bearer tok {"realServer":"RS2"}`);
      const part = await cli(['evacuate', '--real-server', 'RS2', '--url', url]);
      assert.strictEqual(part.code, 1);
      assert.match(part.out, /^S2: shut down, its role now on S2b \(RS1\)\nS5: NOT moved, still serving where it was: no OD on a live real server\nRS2: in maintenance, 1 VM\(s\) not moved\n$/);
      assert.match(part.err, /evacuation incomplete: 1 of 2 VMs not moved/);
      assert.doesNotMatch(part.out + part.err, /[{}]/, 'no raw JSON');
      const refused = await cli(['evacuate', '--real-server', 'RS2', '--url', url]);
      assert.strictEqual(refused.code, 1);
      assert.match(refused.err, /HTTP 409 deploy a p2p-maintenance node on this VM first/);
      assert.strictEqual(refused.out, '');
    } finally {
      server.close();
    }
  });
});
