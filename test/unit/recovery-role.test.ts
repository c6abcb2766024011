// The role step: the OD's flow with its p2p-store given the backup's identity; the caller's side
// of the signed role call (a real HTTP server on loopback standing for the OD here; the receiver
// is tested in test/nodes/role-endpoint.test.ts and the cluster test uses a real Node-RED).
import { strict as assert } from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { assignRole, flowsWithRole, identityFromCall, ROLE_PATH, roleIdentity, RoleError } from '../../lib/recovery/role';

const role = { target: 'S2', backup: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', od: 'OD3' };
const odFlows = [
  { id: 't', type: 'tab' },
  { id: 'store', type: 'p2p-store', hostname: 'OD3', address: '127.0.2.3', realServer: 'RS3', services: '-', autoJoin: false, port: 18801 },
  { id: 'hb', type: 'p2p-heartbeat', z: 't', store: 'store' },
];

describe('recovery role', () => {
  it('changes only the p2p-store: hostname, services, real server (autoJoin stays off)', () => {
    const out = flowsWithRole(odFlows, role);
    assert.deepEqual(out[1], { id: 'store', type: 'p2p-store', hostname: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80', autoJoin: false, port: 18801 });
    assert.deepEqual(out[0], odFlows[0]);
    assert.deepEqual(out[2], odFlows[2]);
    assert.equal(odFlows[1].hostname, 'OD3', 'the input is not changed');
  });

  it('refuses a flow without exactly one store, and a bad role', () => {
    assert.throws(() => flowsWithRole([{ id: 'x', type: 'tab' }], role), /exactly one p2p-store, it holds 0/);
    assert.throws(() => flowsWithRole([...odFlows, { id: 's2', type: 'p2p-store' }], role), /holds 2/);
    assert.throws(() => flowsWithRole(odFlows, { ...role, backup: 'S2b; reboot' }), RoleError);
  });

  it('sends one signed call, no bearer token, and refuses a URL away from the identity', async () => {
    const seen: { url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        seen.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(seen.length === 1 ? 200 : 403, { 'content-type': 'application/json' }).end(seen.length === 1 ? '{"ok":true}' : '{"error":"refused: S1 is fenced"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const calls: unknown[] = [];
    const signer = {
      sealAdminCall: (path: string, to: unknown, payload: unknown) => {
        calls.push({ path, to, payload });
        return { body: 'sealed', headers: { 'x-p2p-sig': 'S1 sig' } };
      },
    };
    const here = { ...role, address: '127.0.0.1' };
    try {
      await assignRole(here, { url, signer, timeoutMs: 10_000 });
      assert.equal(seen.length, 1);
      assert.equal(seen[0].url, ROLE_PATH);
      assert.equal(seen[0].headers.authorization, undefined, 'no bearer token');
      assert.equal(seen[0].body, 'sealed');
      assert.deepEqual(calls[0], { path: ROLE_PATH, to: { address: '127.0.0.1', hostname: 'OD3' }, payload: { identity: roleIdentity(here) } });
      await assert.rejects(assignRole(here, { url, signer }), (e: unknown) => e instanceof RoleError && /answered 403: refused: S1 is fenced/.test(e.message));
      await assert.rejects(assignRole(role, { url, signer }), /not at the identity's address/);
      await assert.rejects(assignRole(role, { url: 'file:///etc/passwd', signer }), /is not http/);
      await assert.rejects(assignRole(here, { url, signer: {} }), /cannot sign/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('returns on the OD\'s answer that its store listens as the backup; else asks the store; after a refusal, a role already taken counts', async () => {
    // One loopback server stands for the OD: its admin API (the role call) and its SEM port (ping).
    let roleAnswer: { status: number; body: unknown } = { status: 200, body: {} };
    let pingNames: string[] = [];
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        const a = req.method === 'POST' ? roleAnswer : { status: 200, body: { hostname: pingNames.length > 1 ? pingNames.shift() : pingNames[0] } };
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const o = { url: `http://127.0.0.1:${port}`, semPort: port, signer: { sealAdminCall: () => ({ body: 'sealed', headers: {} }) }, timeoutMs: 10_000, readyTimeoutMs: 10_000 };
    const here = { ...role, address: '127.0.0.1' };
    const run = async (answer: typeof roleAnswer, names: string[]) => {
      roleAnswer = answer;
      pingNames = names;
      seen.length = 0;
      await assignRole(here, o);
      return [...seen];
    };
    try {
      // The OD answered once its store listened as S2b: one request, no polling.
      assert.deepEqual(await run({ status: 200, body: { ok: true, hostname: 'S2b', listening: true } }, ['OD3']), [`POST ${ROLE_PATH}`]);
      // It did not say so (it waited in vain, or an older version): the store is asked until it answers as S2b.
      assert.deepEqual(await run({ status: 200, body: { ok: true, hostname: 'S2b', listening: false } }, ['OD3', 'OD3', 'S2b']), [`POST ${ROLE_PATH}`, 'GET /p2p/ping', 'GET /p2p/ping', 'GET /p2p/ping']);
      // A recovery taken over after its role step: the call to the OD's old name is refused, the OD already is S2b.
      assert.deepEqual(await run({ status: 421, body: { error: 'refused: this call is for OD3' } }, ['S2b']), [`POST ${ROLE_PATH}`, 'GET /p2p/ping']);
      // Refused, and the OD is not the backup: the refusal stands.
      await assert.rejects(run({ status: 421, body: { error: 'refused: this call is for OD3' } }, ['OD3']), (e: unknown) => e instanceof RoleError && /answered 421/.test(e.message));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('takes from a call only a valid identity at the address called', () => {
    const id = roleIdentity(role, '127.0.2.9');
    assert.deepEqual(identityFromCall({ identity: id }, role.address), id);
    assert.throws(() => identityFromCall({ identity: id }, '127.0.2.4'), /a VM keeps its address/);
    assert.throws(() => identityFromCall({ identity: { ...id, hostname: 'S2b; reboot' } }, role.address), RoleError);
    assert.throws(() => identityFromCall({ identity: { ...id, services: 'a,b' } }, role.address), /services/);
    assert.throws(() => identityFromCall({}, role.address), /no identity/);
  });
});
