// p2p-store, p2p-sem-send and p2p-sem-receive in a Node-RED runtime (node-red-node-test-helper),
// talking SEM to a second, real ReplicatedStore on another loopback address.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import helper from 'node-red-node-test-helper';
import storeNode = require('../../nodes/p2p-store');
import sendNode = require('../../nodes/p2p-sem-send');
import receiveNode = require('../../nodes/p2p-sem-receive');
import { ReplicatedStore } from '../../lib/sem/replicated-store';
// The core Catch node: proves errors reach done(err) where a flow can handle them.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
import { encodeDiff } from '../../lib/sem/sem-protocol';
import { semPost } from '../support/sem-wire';
import { pickPortFreeOnAll } from '../../harness/net';
import { waitFor } from '../../harness/wait';

helper.init(require.resolve('node-red'));

const SECRET = 'test-secret-123';
const A = '127.0.7.1';
const B = '127.0.7.2';

describe('SEM nodes in Node-RED', function () {
  this.timeout(60_000);
  let dir: string;
  let port: number;
  let peer: ReplicatedStore | undefined;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-nodes-'));
    port = await pickPortFreeOnAll([A, B]);
    await new Promise<void>((resolve) => {
      helper.startServer(() => resolve());
    });
  });

  afterEach(async () => {
    await peer?.stop();
    peer = undefined;
    await helper.unload();
    await new Promise<void>((resolve) => {
      helper.stopServer(() => resolve());
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const flow = () => [
    { id: 'f1', type: 'tab' },
    {
      id: 'store',
      type: 'p2p-store',
      hostname: 'S1',
      address: A,
      realServer: 'RS1',
      services: 'tcp:80',
      folder: path.join(dir, 'S1'),
      port,
      seeds: '',
      syncInterval: 500,
    },
    { id: 'send', z: 'f1', type: 'p2p-sem-send', store: 'store', wires: [['out']] },
    { id: 'recv', z: 'f1', type: 'p2p-sem-receive', store: 'store', wires: [['applied'], ['refused']] },
    { id: 'catcher', z: 'f1', type: 'catch', scope: ['send'], wires: [['caught']] },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'applied', z: 'f1', type: 'helper' },
    { id: 'refused', z: 'f1', type: 'helper' },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];

  async function load() {
    await helper.load([storeNode, sendNode, receiveNode, catchNode], flow(), { store: { secret: SECRET } });
    const store = helper.getNode('store') as unknown as { files: ReplicatedStore };
    await waitFor(() => store.files.get('group', 'S1'), { what: 'S1 in its own group file', timeoutMs: 10_000 });
    peer = new ReplicatedStore({
      identity: { hostname: 'S2', address: B, realServer: 'RS2', services: '-' },
      folder: path.join(dir, 'S2'),
      port,
      secret: SECRET,
      seeds: [A],
      syncIntervalMs: 500,
    });
    await peer.start();
    await waitFor(() => store.files.get('group', 'S2'), { what: 'S2 joined S1', timeoutMs: 10_000 });
    return store.files;
  }

  it('sem send applies an edit, sends it to the peer and reports the ack', async () => {
    const files = await load();
    const out = helper.getNode('out');
    const got = new Promise<any>((resolve) => out.on('input', resolve));
    helper.getNode('send').receive({ payload: 'available-od, Add, OD1, 127.0.2.1, RS1' });
    const msg = await got;
    assert.equal(msg.payload.line, 'available-od, Add, OD1, 127.0.2.1, RS1');
    assert.deepEqual(msg.payload.acked.map((a: any) => a.peer), ['S2']);
    assert.deepEqual(msg.payload.failed, []);
    assert.deepEqual(files.get('available-od', 'OD1'), ['OD1', '127.0.2.1', 'RS1']);
    assert.deepEqual(peer!.get('available-od', 'OD1'), ['OD1', '127.0.2.1', 'RS1']);
    // The text file follows the acknowledged state within an interval (lib/sem/text-files.ts).
    await peer!.textsWritten();
    assert.match(fs.readFileSync(path.join(dir, 'S2', 'available-od'), 'utf8'), /^OD1, 127\.0\.2\.1, RS1$/m);
    // The log is a buffered stream: its line may land a moment after the msg.
    await waitFor(() => /sent available-od, Add, OD1, 127\.0\.2\.1, RS1 \| origin=S1/.test(fs.readFileSync(path.join(dir, 'S1', 'sem.log'), 'utf8')), {
      what: 'the sent line in S1\'s SEM log',
      timeoutMs: 10_000,
    });
  });

  it('sem send shows a burst of edits in a few statuses, the last edit\'s outcome last', async () => {
    await load();
    const send = helper.getNode('send') as unknown as { status: (s: { fill?: string; text?: string }) => void; receive: (m: unknown) => void };
    const shown: { fill?: string; text?: string }[] = [];
    const real = send.status.bind(send);
    send.status = (s) => {
      shown.push(s);
      real(s);
    };
    const out = helper.getNode('out');
    let done = 0;
    out.on('input', () => done++);
    // One burst, in one turn: 20 "sending" statuses at once, then 20 outcomes.
    const edits = 20;
    for (let i = 0; i < edits; i++) send.receive({ payload: `available-od, Add, OD${i + 10}, 127.0.2.${i + 10}, RS1` });
    await waitFor(() => done === edits, { what: 'the burst sent', timeoutMs: 10_000 });
    // Two statuses per edit before (sending, outcome). Now the sendings of one turn show once, and
    // each outcome at most once, however slow the machine.
    await waitFor(() => shown.length > 0 && shown[shown.length - 1].fill === 'green', { what: 'the outcome shown last', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 400)); // nothing is still pending
    assert.ok(shown.length <= edits + 1, `${shown.length} statuses for ${edits} edits`);
    assert.deepEqual(shown[shown.length - 1], { fill: 'green', shape: 'dot', text: shown[shown.length - 1].text });
    assert.match(shown[shown.length - 1].text ?? '', /^1\/1 peers in [\d.]+ ms$/);
  });

  it('a refused edit goes to done(err) (a Catch node sees it) and changes nothing', async () => {
    const files = await load();
    const before = files.digest();
    const caught = helper.getNode('caught');
    for (const payload of [
      'group, Add, S1, 127.0.7.1, RS1, tcp:80', // exists
      'operation, Add, P1, S1, S2', // derived
      'passwd, Add, root', // unknown file
      { file: 'group', op: 'Del', record: ['S9', '127.0.0.9', 'RS1', '-'] }, // absent
      { file: 'realserver', op: 'Mod', before: ['RS1', '1', '1', 'up'], record: ['RS1', '2', '1', 'up'] }, // before mismatch
      42,
    ]) {
      const got = new Promise<any>((resolve) => caught.on('input', resolve));
      helper.getNode('send').receive({ payload });
      const msg = await got;
      assert.ok(msg.error?.message, `no error for ${JSON.stringify(payload)}`);
      caught.removeAllListeners('input');
    }
    assert.equal(files.digest(), before);
  });

  it('sem receive reports diffs from peers and refuses forged and replayed ones', async () => {
    const files = await load();
    const applied = helper.getNode('applied');
    const refused = helper.getNode('refused');
    const got = new Promise<any>((resolve) => applied.on('input', (m: any) => m.payload.via === 'diff' && resolve(m)));
    await peer!.edit('realserver, Add, RS2, 0.25, 1, up');
    const msg = await got;
    assert.equal(msg.topic, 'realserver');
    assert.equal(msg.payload.line, 'realserver, Add, RS2, 0.25, 1, up');
    assert.equal(msg.payload.origin, 'S2');

    const before = files.digest();
    const body = encodeDiff({ file: 'group', op: 'Del', record: ['S1', A, 'RS1', 'tcp:80'], origin: 'S2', seq: 99, lamport: 999 });
    const refusedMsg = new Promise<any>((resolve) => refused.on('input', resolve));
    assert.equal((await semPost(A, port, '/p2p/sem/diff', body, { secret: 'wrong-secret' })).status, 401);
    assert.match((await refusedMsg).payload.reason, /HMAC/);
    // The genuine diff from S2 (seq 2, already applied) sent again, signed with S2's key: a replay.
    const replay = encodeDiff({ file: 'realserver', op: 'Add', record: ['RS2', '0.25', '1', 'up'], origin: 'S2', seq: 2, lamport: 50 });
    assert.equal((await semPost(A, port, '/p2p/sem/diff', replay, { secret: SECRET, signer: { folder: peer!.folder, hostname: 'S2' } })).status, 409);
    // The same diff with the MAC of the cluster secret but not signed by S2: refused as well.
    assert.equal((await semPost(A, port, '/p2p/sem/diff', replay, { secret: SECRET })).status, 401);
    assert.equal(files.digest(), before);
  });
});
