// Admin calls signed by a VM key (lib/sem/admin-call.ts): what a receiver accepts and what it
// refuses (forged, unsigned, replayed, stale, from a non-member or a fenced member, addressed to
// another VM, sealed under another secret). The node-level test with a real runtime deploy is
// test/nodes/role-endpoint.test.ts.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AdminCallRefused, openAdminCall, sealAdminCall, type AdminCallReceiver } from '../../lib/sem/admin-call';
import { NonceCache } from '../../lib/sem/replay-guard';
import { loadOrCreateVmKey } from '../../lib/sem/vm-key';
import { toMember } from '../../lib/records/records';
import { SIG_HEADER } from '../../lib/sem/vm-key';
import { MAC_HEADER } from '../../lib/sem/sem-protocol';
import type { RecordFields } from '../../lib/records/files';

const SECRET = 'admin-call-secret-0123456789abcdef';
const PATH = '/p2p-ha/role';

describe('admin calls signed by a VM key', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-admin-call-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const s1 = loadOrCreateVmKey(dir, 'S1');
  const s2 = loadOrCreateVmKey(dir, 'S2');
  const stranger = loadOrCreateVmKey(dir, 'S9');
  const group = new Map<string, RecordFields>([
    ['S1', toMember({ hostname: 'S1', address: '10.0.0.1', realServer: 'RS1', services: '-', publicKey: s1.publicKey })],
    ['S2', toMember({ hostname: 'S2', address: '10.0.0.2', realServer: 'RS2', services: '-', state: 'fenced', publicKey: s2.publicKey })],
    ['S3', toMember({ hostname: 'S3', address: '10.0.0.3', realServer: 'RS3', services: '-' })],
  ]);
  const receiver = (): AdminCallReceiver => ({ secrets: [SECRET], hostname: 'OD1', addresses: ['10.0.0.21'], group: (h) => group.get(h), nonces: new NonceCache(240_000) });
  const to = { address: '10.0.0.21', hostname: 'OD1' };
  const payload = { identity: { hostname: 'S2b' } };
  const refused = (f: () => unknown, status: number, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof AdminCallRefused && e.status === status && re.test(e.message));

  it('accepts a call sealed, MACed and signed by a member, once', () => {
    const r = receiver();
    const call = sealAdminCall(SECRET, s1, PATH, to, payload);
    assert.ok(!call.body.includes('S2b'), 'the payload travels sealed');
    const env = openAdminCall(PATH, call.headers, call.body, r);
    assert.equal(env.from, 'S1');
    assert.deepEqual(env.payload, payload);
    refused(() => openAdminCall(PATH, call.headers, call.body, r), 409, /replayed/);
  });

  it('refuses unsigned, forged and mis-signed calls', () => {
    const call = sealAdminCall(SECRET, s1, PATH, to, payload);
    const noSig = { ...call.headers };
    delete noSig[SIG_HEADER];
    refused(() => openAdminCall(PATH, noSig, call.body, receiver()), 401, /without a VM signature/);
    // Signed by a key the group file does not publish for S1 (an insider's own key, claiming S1).
    const forged = sealAdminCall(SECRET, { ...stranger, hostname: 'S1' }, PATH, to, payload);
    refused(() => openAdminCall(PATH, forged.headers, forged.body, receiver()), 401, /not signed by the key S1 publishes/);
    // S1's signature header on another call's body.
    const other = sealAdminCall(SECRET, s1, PATH, to, { identity: { hostname: 'EVIL' } });
    refused(() => openAdminCall(PATH, { ...other.headers, [SIG_HEADER]: call.headers[SIG_HEADER] }, other.body, receiver()), 401, /not signed by the key/);
    // Without the cluster secret.
    const wrongSecret = sealAdminCall('another-secret-0123456789abcdef', s1, PATH, to, payload);
    refused(() => openAdminCall(PATH, wrongSecret.headers, wrongSecret.body, receiver()), 401, /HMAC/);
    refused(() => openAdminCall(PATH, { ...call.headers, [MAC_HEADER]: '0'.repeat(64) }, call.body, receiver()), 401, /HMAC/);
  });

  it('refuses non-members, fenced members and members without a published key', () => {
    const s9 = sealAdminCall(SECRET, stranger, PATH, to, payload);
    refused(() => openAdminCall(PATH, s9.headers, s9.body, receiver()), 403, /S9 is not in this VM's group file/);
    const fenced = sealAdminCall(SECRET, s2, PATH, to, payload);
    refused(() => openAdminCall(PATH, fenced.headers, fenced.body, receiver()), 403, /S2 is fenced/);
    const s3 = sealAdminCall(SECRET, loadOrCreateVmKey(dir, 'S3'), PATH, to, payload);
    refused(() => openAdminCall(PATH, s3.headers, s3.body, receiver()), 403, /publishes no key/);
  });

  it('refuses a call addressed to another VM, for another route, or out of its time window', () => {
    const elsewhere = sealAdminCall(SECRET, s1, PATH, { address: '10.0.0.22' }, payload);
    refused(() => openAdminCall(PATH, elsewhere.headers, elsewhere.body, receiver()), 421, /not to this VM/);
    const otherName = sealAdminCall(SECRET, s1, PATH, { address: '10.0.0.21', hostname: 'OD2' }, payload);
    refused(() => openAdminCall(PATH, otherName.headers, otherName.body, receiver()), 421, /this VM is OD1/);
    const call = sealAdminCall(SECRET, s1, '/p2p-ha/other', to, payload);
    refused(() => openAdminCall(PATH, call.headers, call.body, receiver()), 401, /HMAC/);
    const old = sealAdminCall(SECRET, s1, PATH, to, payload, Date.now() - 5 * 60_000);
    refused(() => openAdminCall(PATH, old.headers, old.body, receiver()), 409, /stale/);
  });
});
