// Metrics (lib/ops/metrics.ts, nodes/common/metrics-hook.ts): the exposition parses with a strict
// Prometheus text parser, escapes label values, keeps histograms cumulative; a failover seen in
// the problem file moves the failover counter and the step histograms; refusal reasons become a
// small set of labels.
import * as assert from 'assert';
import { Metrics, reasonClass } from '../../lib/ops/metrics';
import { ClusterMetrics } from '../../nodes/common/metrics-hook';
import type { ChangeEvent } from '../../lib/records/cluster-api';
import { MemoryFiles } from '../support/memory-files';
import { parsePrometheusText, sampleValue } from '../support/prom-text';
import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from '../../harness/cluster/launcher';

const T = Date.parse('2026-01-01T03:12:00.000Z');

describe('ops: metrics', () => {
  it('writes counters, gauges and histograms that a strict parser accepts, with escaped labels', () => {
    const m = new Metrics();
    m.inc('x_total', 'a counter', { peer: 'S"2\\\n' });
    m.inc('x_total', 'a counter', { peer: 'S"2\\\n' }, 2);
    m.set('y', 'a gauge', {}, -1.5);
    m.observe('z_seconds', 'a histogram', { step: 'fence' }, 0.02);
    m.observe('z_seconds', 'a histogram', { step: 'fence' }, 7);
    m.declare('empty_total', 'nothing yet', 'counter');
    const f = parsePrometheusText(m.text());
    assert.strictEqual(sampleValue(f, 'x_total', { peer: 'S"2\\\n' }), 3);
    assert.strictEqual(sampleValue(f, 'y'), -1.5);
    assert.strictEqual(sampleValue(f, 'z_seconds_bucket', { step: 'fence', le: '0.025' }), 1);
    assert.strictEqual(sampleValue(f, 'z_seconds_bucket', { step: 'fence', le: '+Inf' }), 2);
    assert.strictEqual(sampleValue(f, 'z_seconds_count', { step: 'fence' }), 2);
    assert.strictEqual(f.get('empty_total')!.type, 'counter');
    assert.throws(() => m.inc('x_total', 'a counter', {}, -1), /only goes up/);
    assert.throws(() => m.set('x_total', 'now a gauge', {}, 1), /is a counter/);
    // The parser is strict: it refuses what Prometheus refuses.
    assert.throws(() => parsePrometheusText('a{b="c} 1\n'), /unterminated|bad label/);
    assert.throws(() => parsePrometheusText('a 1\n# TYPE a counter\n'), /TYPE after samples/);
    assert.throws(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'), /cumulative/);
  });

  it('a failover in the problem file moves the failover counter and the step histograms', () => {
    const files = new MemoryFiles({ hostname: 'S3', address: '127.0.1.3', realServer: 'RS3', services: '-' }, {
      group: [['S3', '127.0.1.3', 'RS3', '-'], ['S4', '127.0.1.4', 'RS1', '-', 'maintenance']],
      realserver: [['RS1', '0.50', '2', 'up', '2048', '2', '2026-01-01T03:11:00.000Z']],
      'available-od': [['OD1', '127.0.1.121', 'RS1']],
    });
    const cm = new ClusterMetrics();
    const since = new Date(T - 2000).toISOString();
    let before: string[] | undefined;
    let t = T;
    for (const status of ['detected', 'reexamining', 'confirmed', 'fencing', 'recovering', 'recovered']) {
      const record = ['S2', 'S1', 'network', status, status === 'recovered' ? 'S2b' : '-', since];
      const c: ChangeEvent = { file: 'problem', op: before ? 'Mod' : 'Add', record, before, line: '', origin: 'S1', seq: 1, lamport: 1, local: false, via: 'diff' };
      cm.onChange(c, t);
      t += status === 'reexamining' ? 2000 : 100;
      before = record;
    }
    const f = parsePrometheusText(cm.scrape(files, []));
    assert.strictEqual(sampleValue(f, 'p2p_ha_failovers_total', { outcome: 'recovered' }), 1);
    assert.strictEqual(sampleValue(f, 'p2p_ha_recovery_step_seconds_count', { step: 'reexamining' }), 1);
    assert.strictEqual(sampleValue(f, 'p2p_ha_recovery_step_seconds_sum', { step: 'reexamining' }), 2);
    assert.strictEqual(sampleValue(f, 'p2p_ha_recovery_seconds_count'), 1);
    assert.strictEqual(sampleValue(f, 'p2p_ha_sem_changes_total', { file: 'problem', via: 'diff' }), 6);
    assert.strictEqual(sampleValue(f, 'p2p_ha_ods', { real_server: 'RS1' }), 1);
    assert.strictEqual(sampleValue(f, 'p2p_ha_real_server_free_memory_mib', { real_server: 'RS1' }), 2048);
    assert.strictEqual(sampleValue(f, 'p2p_ha_members', { state: 'maintenance' }), 1);
    // Every metric the example Grafana dashboard queries is one the endpoint writes.
    const dash = fs.readFileSync(path.join(packageRoot(), 'docs', 'grafana-dashboard.json'), 'utf8');
    JSON.parse(dash);
    const used = new Set([...dash.matchAll(/p2p_ha_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    cm.metrics.declare('p2p_ha_heartbeat_targets', 'declared for the check', 'gauge');
    const written = new Set(parsePrometheusText(cm.scrape(files, [])).keys());
    for (const name of used) assert.ok(written.has(name), `the dashboard queries ${name}, which the endpoint does not write`);
  });

  it('refusal reasons become short kinds, not records', () => {
    assert.strictEqual(reasonClass('forged or unauthenticated message: HMAC does not match the cluster secret'), 'forged or unauthenticated message');
    assert.strictEqual(reasonClass('message too large (9000 bytes > 8192)'), 'message too large');
    assert.strictEqual(reasonClass('refused problem, Mod, S2, S1, network, detected, -, -: before does not match problem (it is: x)'), 'before does not match');
    assert.strictEqual(reasonClass('12345'), 'other');
  });

  it('a series counted often through counterOf / histogramOf writes the same text as inc / observe', () => {
    const a = new Metrics();
    const b = new Metrics();
    for (const m of [a, b]) m.declare('h_seconds', 'a histogram', 'histogram');
    const labels = { file: 'realserver', via: 'diff "x"\n' };
    const count = b.counterOf('c_total', 'a counter', labels);
    const ack = b.histogramOf('h_seconds', 'a histogram', { peer: 'S2' });
    for (const v of [0.0004, 0.003, 0.2, 7, NaN, 500]) {
      a.inc('c_total', 'a counter', labels);
      a.observe('h_seconds', 'a histogram', { peer: 'S2' }, v);
      count();
      ack(v);
    }
    a.inc('c_total', 'a counter', labels, 3);
    count(3);
    assert.equal(b.text(), a.text());
    assert.equal(sampleValue(parsePrometheusText(b.text()), 'c_total', labels), 9);
    assert.throws(() => count(-1), /only goes up/);
  });
});
