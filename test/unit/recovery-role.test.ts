// The role step: the OD's flow with its p2p-store given the backup's identity, deployed through a
// Node-RED-style admin API (a real HTTP server on loopback standing for the OD's admin API here;
// the cluster test uses a real Node-RED).
import { strict as assert } from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { assignRoleViaAdminApi, flowsWithRole, RoleError } from '../../lib/recovery/role';

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

  it('reads and deploys through the admin API with the bearer token', async () => {
    const seen: { method?: string; auth?: string; type?: string; body?: unknown }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method, auth: req.headers.authorization, type: req.headers['node-red-deployment-type'] as string, body: chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined });
        if (req.headers.authorization !== 'Bearer tok') return void res.writeHead(401).end('unauthorized');
        if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rev: 'r1', flows: odFlows }));
        res.writeHead(200).end('{"rev":"r2"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await assignRoleViaAdminApi(role, { url, token: 'tok', timeoutMs: 2000 });
      assert.deepEqual(seen.map((s) => s.method), ['GET', 'POST']);
      const posted = seen[1].body as { rev: string; flows: { type: string; hostname?: string }[] };
      assert.equal(posted.rev, 'r1');
      assert.equal(seen[1].type, 'nodes');
      assert.equal(posted.flows.find((n) => n.type === 'p2p-store')!.hostname, 'S2b');
      await assert.rejects(assignRoleViaAdminApi(role, { url, token: 'wrong' }), /answered 401/);
      await assert.rejects(assignRoleViaAdminApi(role, { url: 'file:///etc/passwd' }), /is not http/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
