// Preloaded (mocha --require) by the nr5 suite: every `node-red`, `node-red/...` and
// `@node-red/...` a test or the harness resolves (require.resolve('node-red') for
// node-red-node-test-helper's init, the launcher's node-red/red.js, a test's core catch node)
// comes from the Node-RED 5 install in P2P_HA_NODE_RED_DIR instead of this checkout's
// node_modules (Node-RED 4.1). The core nodes must be the very modules the helper loads from the
// runtime it was given, or the helper registers a type twice. Node-RED's own requires inside that
// install are left alone. Without P2P_HA_NODE_RED_DIR it changes nothing.
'use strict';
const Module = require('module');
const path = require('path');

const dir = process.env.P2P_HA_NODE_RED_DIR;
if (dir) {
  const installed = path.resolve(dir, 'node_modules') + path.sep;
  const original = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, isMain, options) {
    const ours = request === 'node-red' || request.startsWith('node-red/') || request.startsWith('@node-red/');
    const fromInstall = parent && parent.filename && parent.filename.startsWith(installed);
    if (ours && !fromInstall) return original.call(this, request, parent, isMain, { ...(options || {}), paths: [dir] });
    return original.call(this, request, parent, isMain, options);
  };
}
