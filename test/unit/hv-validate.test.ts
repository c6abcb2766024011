// Validation, quoting and the parsers of the hv driver, on real virsh output captured on this machine.
import * as assert from 'assert';
import fc from 'fast-check';
import { parseCommandLine, tokenize } from '../../harness/sim/command-line';
import { table } from '../../harness/sim/virsh-format';
import { loadEdits } from '../../lib/hv/load-edits';
import * as v from '../../lib/hv/validate';
import { parseDomainList, parseIfList, parseLoad, parseMeminfo, VirshDriver, xmlDomainName } from '../../lib/hv/virsh-driver';

const never = { exec: () => Promise.reject(new Error('must not run')) };

describe('hv validate', () => {
  it('accepts good names, hostnames, paths, MACs', () => {
    for (const n of ['S1', 'od-12', 'RS_1', 'a.b', 'x'.repeat(63)]) assert.strictEqual(v.domainName(n), n);
    for (const h of ['kvm1', 'kvm1.example.org', '127.0.0.1']) assert.strictEqual(v.hostname(h), h);
    assert.strictEqual(v.absolutePath('/var/lib/p2p/install-S2.sh'), '/var/lib/p2p/install-S2.sh');
    assert.strictEqual(v.mac('52:54:00:AB:cd:01'), '52:54:00:ab:cd:01');
  });
  it('refuses injections and odd values, naming the value', () => {
    const bad = ['S2; rm -rf /', '$(id)', '`id`', 'a b', '--help', '-x', '.hidden', 'x'.repeat(64), 'Sérveur', 'S2\n', "S'", ''];
    for (const b of bad) assert.throws(() => v.domainName(b), (e: Error) => e instanceof v.ValidationError && e.message.includes(JSON.stringify(b).slice(0, 20)));
    for (const b of ['a b', 'h;id', '-h', 'x'.repeat(254), 'é.org', '']) assert.throws(() => v.hostname(b), v.ValidationError);
    for (const b of ['rel/x', '/a/../b', '/a//b', '/a/', '/-rf', '/a b', '/$(id)', '/é']) assert.throws(() => v.absolutePath(b), v.ValidationError);
    for (const b of ['52:54:00:00:00', '53:54:00:00:00:01', 'zz:54:00:00:00:01', '52-54-00-00-00-01']) assert.throws(() => v.mac(b), v.ValidationError);
    assert.throws(() => v.variables({ 'A B': 'x' }), /variable name "A B" refused/);
    assert.throws(() => v.variables({ A: 'x\ny' }), /value of A/);
    assert.throws(() => v.uri("qemu:///system' x"), v.ValidationError);
    assert.strictEqual(v.uri('test+unix:///default?socket=/tmp/x/libvirt-sock'), 'test+unix:///default?socket=/tmp/x/libvirt-sock');
  });
  it('quotes so that a POSIX shell reads back exactly the value (checked by the sim tokenizer)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."ab' \"$`;|&<>\\\n(){}*?~#=-/.".split('')) }), (s) => {
        const toks = tokenize(v.shellQuote(s));
        assert.deepStrictEqual(toks, [{ word: s }]);
      }),
    );
  });
  it('builds the exact command lines, and refuses before running anything', async () => {
    const d = new VirshDriver(never, { uri: 'qemu:///system' });
    assert.strictEqual(d.domainCommand('suspend', 'S2'), "virsh -c 'qemu:///system' suspend 'S2'");
    assert.strictEqual(d.runFileCommand('/x/i.sh', { H: "it's" }), `env 'H=it'\\''s' /bin/sh '/x/i.sh'`);
    assert.deepStrictEqual(parseCommandLine(d.runFileCommand('/x/i.sh', { H: "it's" })), [{ argv: ['env', "H=it's", '/bin/sh', '/x/i.sh'] }]);
    await assert.rejects(d.suspend('S2; rm -rf /'), v.ValidationError);
    await assert.rejects(d.clone('a', 'b', '$(id)'), v.ValidationError);
  });
  it('reads the domain name from XML and checks its MACs', () => {
    assert.strictEqual(xmlDomainName("<domain type='kvm'><name>S2</name><mac address='52:54:00:00:00:01'/></domain>"), 'S2');
    assert.throws(() => xmlDomainName('<domain><name>S2;id</name></domain>'), /domain name "S2;id"/);
    assert.throws(() => xmlDomainName("<domain><name>S2</name><mac address='$(id)'/></domain>"), /MAC/);
    assert.throws(() => xmlDomainName('echo hi'), /domain XML/);
  });
});

describe('hv parsers (output captured from virsh 9.0.0)', () => {
  const LIST = ' Id   Name   State\n-----------------------\n 1    test   running\n -    od1    shut off\n -    ods1   shut off\n\n';
  const IFLIST =
    ' Interface   Type      Source    Model   MAC\n------------------------------------------------------------\n testnet0    network   default   -       52:54:00:00:00:02\n\n';
  it('parses virsh list --all, with a two-word state', () => {
    assert.deepStrictEqual(parseDomainList(LIST), [
      { id: 1, name: 'test', state: 'running' },
      { id: null, name: 'od1', state: 'shut off' },
      { id: null, name: 'ods1', state: 'shut off' },
    ]);
    assert.deepStrictEqual(parseDomainList(' Id   Name   State\n--------------------\n\n'), []);
  });
  it('the sim prints the same bytes as virsh', () => {
    assert.strictEqual(table(['Id', 'Name', 'State'], [['1', 'test', 'running'], ['-', 'od1', 'shut off'], ['-', 'ods1', 'shut off']]), LIST);
    assert.strictEqual(table(['Interface', 'Type', 'Source', 'Model', 'MAC'], [['testnet0', 'network', 'default', '-', '52:54:00:00:00:02']]), IFLIST);
  });
  it('parses domiflist, loadavg + nproc, meminfo', () => {
    assert.deepStrictEqual(parseIfList(IFLIST), [{ interface: 'testnet0', type: 'network', source: 'default', model: '-', mac: '52:54:00:00:00:02' }]);
    assert.deepStrictEqual(parseLoad('0.19 0.25 0.11 1/150 4854\n2\n'), { load1: 0.19, load5: 0.25, load15: 0.11, cpus: 2, perCpu: 0.095 });
    assert.throws(() => parseLoad('garbage'), /cannot read host load/);
    assert.deepStrictEqual(parseMeminfo('MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\n'), { totalKiB: 8000000, availableKiB: 6000000 });
  });
});

describe('hv load edits', () => {
  const cur = [['RS1', '0.50', '3', 'up'], ['RS2', '0.10', '1', 'up']];
  it('adds unknown real servers, leaves small changes alone', () => {
    const e = loadEdits(
      [
        { realServer: 'RS1', ok: true, load: 0.55, vmCount: 3 },
        { realServer: 'RS2', ok: true, load: 0.1, vmCount: 1 },
        { realServer: 'RS3', ok: true, load: 1.234, vmCount: 0 },
      ],
      cur,
      0.1,
    );
    assert.deepStrictEqual(e, [{ file: 'realserver', op: 'Add', record: ['RS3', '1.23', '0', 'up'] }]);
  });
  it('modifies on a load beyond the threshold, a VM count change, or down', () => {
    const e = loadEdits(
      [
        { realServer: 'RS1', ok: true, load: 0.7, vmCount: 3 },
        { realServer: 'RS2', ok: false, error: 'unreachable' },
      ],
      cur,
      0.1,
    );
    assert.deepStrictEqual(e, [
      { file: 'realserver', op: 'Mod', record: ['RS1', '0.70', '3', 'up'], before: cur[0] },
      { file: 'realserver', op: 'Mod', record: ['RS2', '0.10', '1', 'down'], before: cur[1] },
    ]);
    assert.deepStrictEqual(loadEdits([{ realServer: 'RS2', ok: false, error: 'x' }], [['RS2', '0.10', '1', 'down']], 0.1), []);
    assert.strictEqual(loadEdits([{ realServer: 'RS1', ok: true, load: 0.5, vmCount: 4 }], cur, 0.1)[0].record[2], '4');
  });
});
