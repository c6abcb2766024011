// bench/perf-phases.ts: a `perf script` sample goes to the first phase whose pattern matches any of
// its frames (inlined callees leave only their caller, so a phase is also recognised by what it calls).
import { strict as assert } from 'assert';
import { OTHER, phasesOf } from '../../bench/perf-phases';

const sample = (...frames: string[]) => `node-red 1 1.0: 1001001 cpu-clock:ppp:\n${frames.map((f) => `\t 0 ${f}`).join('\n')}\n`;

describe('perf-phases: S1 samples by phase of an edit', () => {
  it('the bench request, a frame write under SEM code, the diff signature, the rest', () => {
    const text = [
      sample('Builtins_LoadIC (/usr/bin/node)', 'JS:*trim_prefix /x/node_modules/express/lib/router/index.js:293:23 (/tmp/perf-1.map)'),
      sample('tcp_sendmsg ([kernel.kallsyms])', 'JS:*writeGeneric node:internal/stream_base_commons:148:22', 'JS:*commit /x/dist/lib/sem/replicated-store.js:560:17'),
      sample('fe_mul (/usr/bin/node)', 'JS:*signOneShot node:internal/crypto/sig:143:21', 'JS:*commit /x/dist/lib/sem/replicated-store.js:560:17'),
      sample('JS:*answerOf /x/dist/lib/sem/sem-http.js:528:13'),
      sample('malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)'),
    ].join('\n');
    const { total, counts } = phasesOf(text);
    assert.equal(total, 5);
    assert.equal(counts.get('bench request: express, http in, http response, HTTP server'), 1);
    assert.equal(counts.get('SEM frames: encode and write, one per peer (with the kernel loopback send)'), 1);
    assert.equal(counts.get('SEM commit: Ed25519 signature of the diff'), 1);
    assert.equal(counts.get('SEM answers: MAC, open, pair tag, parse (answerOf)'), 1);
    assert.equal(counts.get(OTHER), 1);
  });
});
