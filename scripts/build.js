#!/usr/bin/env node
// Build: compile the TypeScript, then lay each node's editor file, icons and locales beside its
// compiled .js, because Node-RED looks for `<name>.html`, `icons/` and `locales/` in the folder of
// the node's .js file (not at the package root).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

function copyTree(from, to) {
  if (!fs.existsSync(from)) return;
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (!entry.name.endsWith('.ts')) fs.copyFileSync(src, dst);
  }
}

const nodesSrc = path.join(root, 'nodes');
const nodesDst = path.join(dist, 'nodes');
for (const entry of fs.readdirSync(nodesSrc, { withFileTypes: true })) {
  const src = path.join(nodesSrc, entry.name);
  if (entry.isDirectory()) copyTree(src, path.join(nodesDst, entry.name));
  else if (entry.name.endsWith('.html')) fs.copyFileSync(src, path.join(nodesDst, entry.name));
}
// Editor plugins (the cluster sidebar) follow the same rule as nodes.
copyTree(path.join(root, 'plugins'), path.join(dist, 'plugins'));
