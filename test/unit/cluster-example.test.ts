// examples/05-whole-vm.json is the production part of the flow the demo deploys (the same nodes,
// settings and wires; a site's own values only in SITE_FIELDS), and nothing under examples/ holds
// the demo's scaffolding or a test endpoint.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import type { FlowNode } from '../../harness/cluster/launcher';
import { clusterExample, demoProductionPart, EXAMPLE_FILE, EXAMPLE_PREFIX, SITE_FIELDS } from '../../harness/recovery/cluster-example';
import { recoveryFlow, SCAFFOLD_TAB } from '../../harness/recovery/recovery-flow';

const examplesDir = path.dirname(EXAMPLE_FILE);
const exampleFiles = fs.readdirSync(examplesDir).filter((f) => f.endsWith('.json'));
const TEST_ENDPOINT = /^\/(p2p-test|svc)/;

/** Every field the demo and the example must share: all but a site's own values, canvas position and wiring. */
function shared(n: FlowNode, rename: (id: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(n)) {
    if (['x', 'y', 'wires', 'credentials', ...(SITE_FIELDS[n.type] ?? [])].includes(k)) continue;
    if (k === 'id' || k === 'z' || k === 'store') out[k] = typeof v === 'string' && v ? rename(v) : v;
    else if (k === 'scope' && Array.isArray(v)) out[k] = v.map((s) => rename(String(s)));
    else out[k] = v;
  }
  return out;
}

describe('the whole-VM example flow', () => {
  const example = JSON.parse(fs.readFileSync(EXAMPLE_FILE, 'utf8')) as FlowNode[];
  const rename = (id: string) => EXAMPLE_PREFIX + id;

  it('is what cluster-example makes (regenerate: node dist/harness/recovery/cluster-example.js)', () => {
    assert.deepEqual(example, clusterExample());
  });

  it('holds every node of the demo\'s production part with the demo\'s settings and at least its wires', () => {
    const demo = demoProductionPart();
    assert.ok(demo.some((n) => n.type === 'p2p-backup-starter') && demo.some((n) => n.type === 'p2p-heartbeat'), 'the demo has no production part');
    for (const n of demo) {
      const e = example.find((x) => x.id === rename(n.id));
      assert.ok(e, `${n.type} ${n.id} of the demo is not in the example`);
      assert.deepEqual(shared(e, (id) => id), shared(n, rename), `${n.id} differs from the demo beyond its site fields`);
      const dw = (n.wires as string[][] | undefined) ?? [];
      const ew = (e.wires as string[][] | undefined) ?? [];
      dw.forEach((port, i) => {
        for (const w of port) assert.ok(ew[i]?.includes(rename(w)), `${n.id} output ${i} lost its wire to ${w}`);
      });
    }
  });

  it('the demo\'s production part does not depend on its scaffolding (no wire or scope into the scaffolding tab)', () => {
    const flow = recoveryFlow({
      hostname: 'S1', address: '127.0.0.1', realServer: 'RS1', member: true, semPort: 1, uiPort: 2, secret: 's', privateKey: 'k',
      seeds: [], realServers: [], procedureDir: '/p', reexamNetworkMs: 1, replicator: { ods: 'O', intervalS: 1 },
    });
    const scaffold = new Set(flow.filter((n) => n.z === SCAFFOLD_TAB).map((n) => n.id));
    assert.ok(scaffold.size > 0, 'the demo flow has no scaffolding tab');
    for (const n of flow.filter((x) => x.z !== SCAFFOLD_TAB && x.id !== SCAFFOLD_TAB)) {
      const refs = [...((n.wires as string[][] | undefined) ?? []).flat(), ...((n.scope as string[] | undefined) ?? [])];
      for (const r of refs) assert.ok(!scaffold.has(r), `${n.id} refers to the scaffolding node ${r}`);
    }
  });

  it('has the comment nodes and a notification branch', () => {
    assert.ok(example.filter((n) => n.type === 'comment').length >= 4);
    const hb = example.find((n) => n.type === 'p2p-heartbeat')!;
    const notify = (hb.wires as string[][])[0].map((id) => example.find((n) => n.id === id)!).find((n) => n.type === 'function');
    assert.ok(notify, 'the heartbeat does not feed a notification');
    assert.ok((notify.wires as string[][])[0].some((id) => example.find((n) => n.id === id)?.type === 'http request'));
  });

  it('the notification function turns failures, recoveries and failed starts into one message, and drops recovery steps', () => {
    const fn = example.find((n) => n.type === 'function' && n.id === EXAMPLE_PREFIX + 'notify-format')!;
    // As Node-RED's function node runs it: the body of a function of msg.
    const run = new Function('msg', String(fn.func)) as (msg: Record<string, unknown>) => { topic: string; payload: { event: string; target: string; text: string } } | null;
    const failure = { topic: 'failure', payload: { target: 'S2', kind: 'network', detectedBy: 'S1', reason: 'host unreachable' } };
    assert.equal(run(failure)!.topic, 'p2p-ha/failure/S2');
    assert.match(run(failure)!.payload.text, /S2 failed \(network\), detected by S1/);
    assert.equal(run({ topic: 'recovered', payload: { target: 'S2', backup: 'S2b', realServer: 'RS1', address: '10.0.0.5' } })!.payload.text, 'S2 runs again as S2b on RS1 (10.0.0.5)');
    assert.equal(run({ topic: 'recovered-by-itself', payload: { target: 'S4', kind: 'service' } })!.payload.event, 'recovered-by-itself');
    assert.equal(run({ ...failure, error: { message: 'no OD left' } })!.topic, 'p2p-ha/recovery-failed/S2');
    assert.equal(run({ topic: 'recovery/fence', payload: { step: 'fence', target: 'S2' } }), null);
  });
});

describe('examples/ are products, not test rigs', () => {
  it('there are examples', () => assert.ok(exampleFiles.length > 0));
  for (const file of exampleFiles) {
    it(`${file}: no test endpoint, no scaffolding, no credential`, () => {
      const text = fs.readFileSync(path.join(examplesDir, file), 'utf8');
      const flow = JSON.parse(text) as FlowNode[];
      for (const n of flow) {
        if (n.type === 'http in') assert.doesNotMatch(String(n.url), TEST_ENDPOINT, `${file}: ${n.id} serves a test endpoint`);
      }
      assert.ok(!text.includes('/p2p-test'), `${file} names /p2p-test`);
      assert.ok(!text.includes('"credentials"'), `${file} holds credentials`);
      assert.ok(!flow.some((n) => n.z === SCAFFOLD_TAB || n.id === SCAFFOLD_TAB), `${file} holds the demo's scaffolding`);
    });
  }
});
