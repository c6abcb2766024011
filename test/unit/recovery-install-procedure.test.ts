import { strict as assert } from 'assert';
import {
  backupName,
  checkDir,
  functionName,
  procedurePaths,
  procedureVariables,
  ProcedureError,
  validateProcedureText,
} from '../../lib/recovery/install-procedure';

const ok = { target: 'S2', targetAddress: '127.0.1.2', backup: 'S2b', backupAddress: '127.0.2.3', od: 'OD3', realServer: 'RS1', services: 'tcp:80 http:8080/health' };

describe('recovery installation procedure', () => {
  it('gives the documented variables', () => {
    assert.deepEqual(procedureVariables(ok), {
      TARGET: 'S2',
      TARGET_ADDRESS: '127.0.1.2',
      BACKUP: 'S2b',
      BACKUP_ADDRESS: '127.0.2.3',
      OD: 'OD3',
      REAL_SERVER: 'RS1',
      SERVICES: 'tcp:80 http:8080/health',
    });
    assert.equal(procedureVariables({ ...ok, services: '' }).SERVICES, '-');
  });

  it('refuses a value that could reach a shell', () => {
    for (const bad of [{ target: 'S2; rm -rf /' }, { backupAddress: '127.0.0.1 && id' }, { od: '-rf' }, { services: 'tcp:80;id' }, { realServer: '$(id)' }]) {
      assert.throws(() => procedureVariables({ ...ok, ...bad }), ProcedureError);
    }
  });

  it('lives in <dir>/<target>.sh, a backup falls back to the procedure of the server it stands for', () => {
    assert.deepEqual(procedurePaths('/var/lib/p2p-ha/install/', 'S2'), ['/var/lib/p2p-ha/install/S2.sh']);
    assert.deepEqual(procedurePaths('/opt/p', 'S2b'), ['/opt/p/S2b.sh', '/opt/p/S2.sh']);
    assert.deepEqual(procedurePaths('/opt/p', 'Web'), ['/opt/p/Web.sh', '/opt/p/We.sh']);
    assert.throws(() => checkDir('relative/dir'), ProcedureError);
    assert.throws(() => checkDir('/a/../etc'), ProcedureError);
    assert.throws(() => procedurePaths('/opt', '../x'), ProcedureError);
  });

  it('names backups S2b, then S2b2, and a backup of a backup after the original', () => {
    assert.equal(backupName('S2', ['S1', 'S3']), 'S2b');
    assert.equal(backupName('S2', ['S2b']), 'S2b2');
    assert.equal(backupName('S2b', ['S2b']), 'S2b2');
    assert.equal(functionName('S2b3'), 'S2');
    assert.equal(functionName('S2'), 'S2');
  });

  it('validates the script text', () => {
    assert.equal(validateProcedureText('#!/bin/sh\necho $TARGET\n'), '#!/bin/sh\necho $TARGET\n');
    assert.ok(validateProcedureText('echo hi'));
    assert.throws(() => validateProcedureText('#!/usr/bin/python3\n'), /\/bin\/sh/);
    assert.throws(() => validateProcedureText('  '), /empty/);
    assert.throws(() => validateProcedureText('a\x00b'), /NUL/);
    assert.throws(() => validateProcedureText('x'.repeat(70000)), /bytes/);
  });

});
