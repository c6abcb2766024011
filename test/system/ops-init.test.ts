// `p2p-ha init` as a newcomer uses it: the user directory it writes is started by a real Node-RED
// with this package installed (linked into the user directory's node_modules). The runtime reads
// the settings and decrypts the credentials init wrote: the store starts as the given identity
// with the cluster secret and joins its own group file; the admin API answers only with the token.
import { strict as assert } from 'assert';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { freeLoopbackIp, pickFreePort } from '../../harness/net';
import { sshKeyPair } from '../../harness/ssh-keys';
import { waitFor } from '../../harness/wait';
import { main } from '../../lib/ops/cli';

describe('p2p-ha init: a new VM from one command', function () {
  this.timeout(120_000);
  let dir: string;
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    child = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes a user directory that Node-RED starts as S1 with its cluster secret, admin API behind the token', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ops-init-'));
    const ip = freeLoopbackIp();
    const uiPort = await pickFreePort(ip);
    let semPort = await pickFreePort(ip);
    while (semPort === uiPort) semPort = await pickFreePort(ip);
    fs.writeFileSync(path.join(dir, 'secret'), 'init-test-cluster-secret\n');
    fs.writeFileSync(path.join(dir, 'key'), sshKeyPair().private);
    const ud = path.join(dir, 'user');
    let out = '';
    const code = await main(
      ['init', '--user-dir', ud, '--hostname', 'S1', '--address', ip, '--real-server', 'RS1', '--rs', `RS1=${ip}:1#SHA256:${'A'.repeat(43)}`, '--secret-file', path.join(dir, 'secret'), '--key-file', path.join(dir, 'key')]
        .concat(['--sem-port', String(semPort), '--ui-port', String(uiPort), '--ui-host', ip]),
      { out: (s) => (out += s), err: (s) => (out += s), env: {} },
    );
    assert.equal(code, 0, out);
    // The package, as npm would put it (a link to this build).
    fs.mkdirSync(path.join(ud, 'node_modules', '@p2p-ha'), { recursive: true });
    fs.symlinkSync(packageRoot(), path.join(ud, 'node_modules', '@p2p-ha', 'node-red-server-manager'), 'dir');
    fs.writeFileSync(path.join(ud, 'package.json'), JSON.stringify({ name: 'p2p-ha-vm', private: true, dependencies: { '@p2p-ha/node-red-server-manager': '*' } }));
    let log = '';
    child = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', ud, '--settings', path.join(ud, 'settings.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b) => (log += b));
    child.stderr!.on('data', (b) => (log += b));
    await waitFor(() => /\[p2p-store:S1\] SEM listening/.test(log), { what: `the store of S1 running (log: ${log.slice(-2000)})`, timeoutMs: 90_000, intervalMs: 250 });
    const url = `http://${ip}:${uiPort}`;
    const token = fs.readFileSync(path.join(ud, 'p2p-ha-admin-token'), 'utf8').trim();
    assert.equal((await httpRequest(`${url}/flows`, { timeoutMs: 5000 })).status, 401, 'no token, no admin API');
    const flows = await httpRequest(`${url}/flows`, { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5000 });
    assert.equal(flows.status, 200);
    assert.ok(JSON.parse(flows.body).some((n: { type: string; hostname?: string }) => n.type === 'p2p-store' && n.hostname === 'S1'));
    await waitFor(() => fs.existsSync(path.join(ud, 'p2p-ha', 'group')) && fs.readFileSync(path.join(ud, 'p2p-ha', 'group'), 'utf8').includes(`S1, ${ip}, RS1`), {
      what: 'S1 in its own group file',
      timeoutMs: 20_000,
    });
    assert.doesNotMatch(log, /Error decrypting credentials|credentials could not be decrypted/i);
    const status = await httpRequest(`${url}/p2p-ha/maintenance`, { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5000 });
    assert.deepEqual(JSON.parse(status.body), { vms: [], realServers: [] });
  });
});
