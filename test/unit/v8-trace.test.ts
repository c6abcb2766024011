// bench/v8-trace.ts: what V8 printed between the preload's `on` and `off` lines, counted by
// function, reason and source position; what lies outside the window is not counted.
import { strict as assert } from 'assert';
import { countV8Trace } from '../../bench/v8-trace';

const done = (name: string, ms: [number, number, number], osr = false) =>
  `[completed compiling 0x3aabf9d029d9 <JSFunction ${name ? `${name} ` : ''}(sfi = 0x2e4c132a2fc1)> (target TURBOFAN)${osr ? ' OSR' : ''} - took ${ms.join(', ')} ms]`;
const bailout = (name: string, reason: string) =>
  `[bailout (kind: deopt-eager, reason: ${reason}): begin. deoptimizing 0x3aabf9d029d9 <JSFunction ${name} (sfi = 0x2e4c132a2fc1)>, 0x1cd1bf85a8a1 <Code TURBOFAN>, opt id 0, bytecode offset 0, deopt exit 1]`;

describe('v8-trace: V8 optimisations and deoptimisations of a measured window', () => {
  it('counts compilations with their time, and deoptimisations by function, reason and place, inside the window only', () => {
    const text = [
      done('before', [1, 50, 1]),
      bailout('before', 'wrong map'),
      'v8-trace: on',
      '[marking 0x1 <JSFunction commit (sfi = 0x2)> for optimization to TURBOFAN, ConcurrencyMode::kConcurrent, reason: hot and stable]',
      done('commit', [0.01, 30, 0.09]),
      done('', [0.1, 2, 0.1], true),
      bailout('commit', 'wrong map'),
      '            ;;; deoptimize at </w/dist/lib/sem/replicated-store.js:604:25>',
      '  reading input frame commit => bytecode_offset=193, args=2, height=30, retval=0(#0); inputs:',
      done('commit', [0.01, 29.9, 0.0]),
      bailout('emit', 'Insufficient type feedback for call'),
      '            ;;; deoptimize at <node:events:536:35> inlined at </w/node_modules/express/lib/router/index.js:1:2>',
      '[marking dependent code 0x0ab <Code TURBOFAN> (0x0cd <SharedFunctionInfo initAsyncResource>) (opt id 85) for deoptimization, reason: code dependencies]',
      'v8-trace: off',
      done('after', [1, 50, 1]),
      bailout('after', 'wrong map'),
    ].join('\n');
    const t = countV8Trace(text);
    assert.equal(t.compilations, 3);
    assert.equal(t.compileMs, 62.2);
    assert.deepEqual(t.compiledBy, [['commit x2', 60], ['(anonymous)', 2.2]]);
    assert.equal(t.deopts, 3);
    assert.deepEqual(t.deoptsBy, [
      ['commit: wrong map (deopt-eager) @ lib/sem/replicated-store.js:604:25', 1],
      ['emit: Insufficient type feedback for call (deopt-eager) @ node:events:536:35', 1],
      ['initAsyncResource: code dependencies (dependency) @ -', 1],
    ]);
  });

  it('no window (the preload was not loaded, or never marked): nothing counted', () => {
    const t = countV8Trace(`${done('commit', [1, 2, 3])}\n${bailout('commit', 'wrong map')}\n`);
    assert.deepEqual([t.compilations, t.deopts, t.deoptsBy.length], [0, 0, 0]);
  });
});
