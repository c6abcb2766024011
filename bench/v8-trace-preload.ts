// Preload for benches (node --require in NODE_OPTIONS, which refuses --trace-opt/--trace-deopt
// themselves): traces V8's optimisations and deoptimisations over the measured window only.
// SIGWINCH marks the window (as ./cpu-profile.ts): the first one turns the trace on, the second
// turns it off. V8 prints the trace on stdout (the launcher's stdout.log of each VM); a line
// `v8-trace: on` / `v8-trace: off` brackets it. ./v8-trace.ts counts it.
import * as fs from 'fs';
import * as v8 from 'v8';

if (process.env.V8_TRACE) {
  // --trace-deopt-verbose adds where in the source each deoptimisation happened.
  // (it implies --trace-deopt, which must be turned off by its own name).
  const flags = ['trace-opt', 'trace-deopt-verbose', 'trace-deopt'];
  let marks = 0;
  process.on('SIGWINCH', () => {
    marks += 1;
    if (marks > 2) return;
    const on = marks === 1;
    if (!on) for (const f of flags) v8.setFlagsFromString(`--no-${f}`);
    fs.writeSync(1, `v8-trace: ${on ? 'on' : 'off'}\n`);
    if (on) for (const f of flags) v8.setFlagsFromString(`--${f}`);
  });
}
