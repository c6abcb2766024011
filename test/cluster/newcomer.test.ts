// A new VM set up with one command (issue 15): `p2p-ha init` (the package's bin, run as a process)
// writes a user directory, and Node-RED started on exactly those files, nothing added, joins a
// running cluster: its store finds the seeds, every group file lists it, the files converge, and
// the admin API it wrote answers only with the token it printed. The running members' flows are
// the same init's (built in-process), so all three VMs are init-shaped. The real servers named in
// the flows are closed loopback ports: no hypervisor is needed to join.
import { strict as assert } from 'assert';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cluster, FlowNode, nodeRedScript, packageRoot, startCluster } from '../../harness/cluster/launcher';
import { allocLoopbackRange, LoopbackRange, pickFreePort, pickPortFreeOnAll } from '../../harness/net';
import { httpRequest } from '../../harness/http';
import { sshKeyPair } from '../../harness/ssh-keys';
import { waitFor } from '../../harness/wait';
import { buildInit, decryptCredentials } from '../../lib/ops/init-setup';
import { parseFile } from '../../lib/records/files';
import { fromMember } from '../../lib/records/records';

const SECRET = 'newcomer-cluster-secret-0123456789';

describe('a newcomer set up by `p2p-ha init` joins a running cluster', function () {
  this.timeout(240_000);
  let range: LoopbackRange;
  let cluster: Cluster | undefined;
  let dir: string;
  let newcomer: ChildProcess | undefined;
  const killNewcomer = () => newcomer?.exitCode === null && newcomer.kill('SIGKILL');

  before(() => {
    range = allocLoopbackRange();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-newcomer-'));
    process.on('exit', killNewcomer);
  });

  after(async () => {
    if (newcomer && newcomer.exitCode === null) {
      const gone = new Promise((r) => newcomer!.once('exit', r));
      newcomer.kill('SIGTERM');
      const t = setTimeout(killNewcomer, 5000);
      await gone;
      clearTimeout(t);
    }
    process.off('exit', killNewcomer);
    await cluster?.stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
    range?.release();
  });

  it('its Node-RED, started on the files init wrote, is in every group file and holds the same files', async () => {
    const ips = range.ips(3);
    const semPort = await pickPortFreeOnAll(ips);
    const closed = await pickFreePort(range.ip(200)); // nothing listens there: the real server is down
    const key = sshKeyPair();
    const rs = [{ name: 'RS1', host: range.ip(200), port: closed, user: 'p2pha', fingerprint: '' }];
    const common = { realServer: 'RS1', services: '-', realServers: rs, clusterSecret: SECRET, privateKey: key.private, semPort, uiPort: 1880, procedureDir: path.join(dir, 'procedures') };
    // S1 and S2: the flows init builds, credentials inside the nodes as the launcher deploys them.
    const flowsOf = (i: number): FlowNode[] => {
      const r = buildInit({ ...common, hostname: `S${i + 1}`, address: ips[i], seeds: i === 0 ? [] : [ips[0]] });
      const creds = decryptCredentials(r.credentialSecret, r.credentials as { $: string });
      return r.flows.map((n) => {
        const c = creds[(n as { id: string }).id];
        return (c ? { ...n, credentials: c } : n) as FlowNode;
      });
    };
    cluster = await startCluster({ count: 2, ips: ips.slice(0, 2), startTimeoutMs: 120_000, flows: (vm) => flowsOf(ips.indexOf(vm.ip)) });
    const groupIn = (userDir: string) => {
      const p = path.join(userDir, 'p2p-ha', 'group');
      return fs.existsSync(p) ? parseFile('group', fs.readFileSync(p, 'utf8')).map(fromMember).map((m) => m.hostname).sort() : [];
    };
    const c = cluster;
    const tail = (vm: (typeof c.vms)[number]) => `--- ${vm.name}'s Node-RED log:\n${c.logs(vm).nodeRed.split('\n').slice(-25).join('\n')}`;
    await waitFor(() => c.vms.every((vm) => groupIn(vm.userDir).join() === 'S1,S2'), { what: 'S1 and S2 in both group files', timeoutMs: 60_000, intervalMs: 250 }).catch((e) => {
      throw new Error(`${e.message}\n${c.vms.map(tail).join('\n')}`);
    });

    // The newcomer: one command, as the README gives it.
    const ud = path.join(dir, 'S3');
    fs.writeFileSync(path.join(dir, 'secret'), SECRET + '\n', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'key'), key.private, { mode: 0o600 });
    const uiPort = await pickFreePort(ips[2]);
    const args = ['init', '--user-dir', ud, '--hostname', 'S3', '--address', ips[2], '--real-server', 'RS1', '--rs', `RS1=${range.ip(200)}:${closed}`, '--seeds', ips[0]];
    args.push('--secret-file', path.join(dir, 'secret'), '--key-file', path.join(dir, 'key'), '--sem-port', String(semPort), '--ui-port', String(uiPort), '--ui-host', ips[2]);
    args.push('--procedure-dir', common.procedureDir);
    const out = execFileSync(process.execPath, [path.join(packageRoot(), 'bin', 'p2p-ha.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.match(out, /Wrote settings\.js, flows\.json, flows_cred\.json, p2p-ha-admin-token/);
    const token = fs.readFileSync(path.join(ud, 'p2p-ha-admin-token'), 'utf8').trim();
    // The package as npm would put it in the user directory (the launcher does the same for S1, S2).
    fs.mkdirSync(path.join(ud, 'node_modules', '@p2p-ha'), { recursive: true });
    fs.symlinkSync(packageRoot(), path.join(ud, 'node_modules', '@p2p-ha', 'node-red-server-manager'), 'dir');
    const log = fs.openSync(path.join(dir, 'S3.log'), 'w');
    newcomer = spawn(process.execPath, [nodeRedScript(), '--userDir', ud], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const logText = () => fs.readFileSync(path.join(dir, 'S3.log'), 'utf8').split('\n').slice(-30).join('\n');

    try {
      await waitFor(() => [...cluster!.vms.map((vm) => vm.userDir), ud].every((d) => groupIn(d).join() === 'S1,S2,S3'), {
        what: 'S1, S2 and S3 in every group file',
        timeoutMs: 90_000,
        intervalMs: 250,
      });
      // Every file the same on the three (the newcomer caught up, the members took its records).
      const files = (d: string) => ['group', 'load', 'realserver', 'problem', 'available-od', 'reservation'].map((f) => {
        const p = path.join(d, 'p2p-ha', f);
        return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
      });
      await waitFor(() => [cluster!.vms[1].userDir, ud].every((d) => JSON.stringify(files(d)) === JSON.stringify(files(cluster!.vms[0].userDir))), {
        what: 'the same files on S1, S2 and S3',
        timeoutMs: 30_000,
        intervalMs: 250,
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- S3's Node-RED log:\n${logText()}`);
    }
    // Init's flow starts clean: no node complains about its settings or credentials (the real
    // server is down, so only p2p-real-server may warn that it is unreachable).
    const complaints = fs.readFileSync(path.join(dir, 'S3.log'), 'utf8').split('\n').filter((l) => /\[(warn|error)\] \[(?!p2p-real-server)/.test(l));
    assert.deepEqual(complaints, []);
    // S3's record carries its own public key (it signs its diffs with it).
    const rec = parseFile('group', fs.readFileSync(path.join(cluster.vms[0].userDir, 'p2p-ha', 'group'), 'utf8')).map(fromMember).find((m) => m.hostname === 'S3')!;
    assert.equal(rec.address, ips[2]);
    assert.ok(rec.publicKey && rec.publicKey.length > 20, `S3's public key in S1's group file: ${JSON.stringify(rec)}`);
    // The admin API init wrote: closed without the token, open with it.
    const url = `http://${ips[2]}:${uiPort}/flows`;
    assert.equal((await httpRequest(url, { timeoutMs: 5000 })).status, 401);
    const ok = await httpRequest(url, { headers: { authorization: `Bearer ${token}` }, timeoutMs: 5000 });
    assert.equal(ok.status, 200);
  });
});
