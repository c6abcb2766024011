// The role file (lib/recovery/role-file.ts): what a store starts as from its flow's identity and
// the role a role call made durable before its flow deploy; which `from` a new role file keeps.
import { strict as assert } from 'assert';
import { nextRoleFile, parseRoleFile, roleFileText, RoleFileError, startIdentity, type RoleFile } from '../../lib/recovery/role-file';

const od = { hostname: 'OD3', address: '127.0.2.3', realServer: 'RS3', services: '-' };
const s2b = { hostname: 'S2b', address: '127.0.2.3', realServer: 'RS3', services: 'tcp:80' };
const file: RoleFile = { from: od, to: { ...s2b, seeds: '127.0.2.1' }, at: '2026-12-03T15:00:00.000Z' };

describe('recovery role file', () => {
  it('a flow that still says the identity before the role: start as the role, with its seeds', () => {
    const c = startIdentity(od, file);
    assert.equal(c.use, 'file');
    assert.deepEqual(c.identity, s2b);
    assert.equal(c.use === 'file' && c.seeds, '127.0.2.1');
    assert.match(c.why ?? '', /took the role S2b at 2026-12-03T15:00:00.000Z .* its flow still says OD3: the deploy that persists it did not happen/);
  });

  it('a flow that holds the role: the file has done its work', () => {
    assert.deepEqual(startIdentity(s2b, file), { use: 'flow', identity: s2b, removeFile: true });
  });

  it('a flow deployed as something else since: the flow wins, and says why', () => {
    const other = { ...od, hostname: 'OD9' };
    const c = startIdentity(other, file);
    assert.equal(c.use, 'flow');
    assert.deepEqual(c.identity, other);
    assert.equal(c.use === 'flow' && c.removeFile, true);
    assert.match(c.why ?? '', /no longer applies: the flow was deployed as OD9 since/);
    // Services count: the same name with other services is another identity.
    assert.equal(startIdentity({ ...od, services: 'tcp:22' }, file).use, 'flow');
  });

  it('no file: the flow', () => {
    assert.deepEqual(startIdentity(od, undefined), { use: 'flow', identity: od, removeFile: false });
  });

  it('reads what it writes; refuses what is not a role file', () => {
    assert.deepEqual(parseRoleFile(roleFileText(file)), file);
    assert.throws(() => parseRoleFile('{'), RoleFileError);
    assert.throws(() => parseRoleFile(JSON.stringify({ from: od })), /to is not an identity/);
    assert.throws(() => parseRoleFile(JSON.stringify({ ...file, to: { ...s2b, hostname: 'S2b; reboot' } })), /to is not a valid identity/);
    assert.throws(() => parseRoleFile(JSON.stringify({ ...file, to: { ...s2b, address: '127.0.2.9' } })), /keeps the address/);
  });

  it("a second role before the first one's deploy keeps the flow's identity as `from`", () => {
    const s2c = { ...s2b, hostname: 'S2c' };
    // No file: the store is what its flow says.
    assert.deepEqual(nextRoleFile(od, undefined, s2b, 'now').from, od);
    // The store runs as the file's role (deploy not made): the flow still says the file's `from`.
    assert.deepEqual(nextRoleFile(s2b, file, s2c, 'now').from, od);
    // A file that does not describe the running store says nothing about the flow.
    assert.deepEqual(nextRoleFile({ ...od, hostname: 'OD4' }, file, s2c, 'now').from.hostname, 'OD4');
  });
});
