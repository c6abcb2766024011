#!/usr/bin/env node
// The p2p-ha command line: status, history, maintenance, evacuate, rehearse, init, host-setup (lib/ops/cli.ts).
'use strict';
require('../dist/lib/ops/cli.js')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
