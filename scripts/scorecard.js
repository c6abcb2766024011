#!/usr/bin/env node
// The node-red-dev scorecard (`npm run scorecard`): node-red-dev validate on this checkout (after
// the build: its checks read the node definitions in dist/nodes), from the npm registry into a
// temp dir. Prints node-red-dev's own report, then one line `scorecard: N of M passed[, K not
// checked: ...]` and exits non-zero if a check failed.
//
// Two checks (P08 similar package names, N01 unique node type names) compare with the Node-RED
// catalogue, https://catalogue.nodered.org. Where that host cannot be reached (a CI with only the
// npm registry), node-red-dev would stop at the first of them; a preloaded hook answers those two
// requests with an empty catalogue so the other checks run, and both are reported as NOT CHECKED,
// never as passed. The other checks ask the npm registry (P06, P07, D02, D03).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const VERSION = '0.1.6';
const CATALOGUE = 'https://catalogue.nodered.org/';
const root = path.resolve(__dirname, '..');

const PRELOAD = `
const marker = process.env.P2P_HA_SCORECARD_MARKER;
const axios = require(require.resolve('axios', { paths: [process.env.P2P_HA_NRD_DIR] }));
axios.interceptors.response.use(undefined, (err) => {
  const url = (err && err.config && err.config.url) || '';
  if (url.startsWith(${JSON.stringify(CATALOGUE)}) && !err.response) {
    require('fs').appendFileSync(marker, err.code + '\\n');
    return { data: { modules: [] }, status: 200, headers: {}, config: err.config };
  }
  throw err;
});
`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-scorecard-'));
let code = 1;
try {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'p2p-ha-scorecard', private: true }));
  execFileSync('npm', ['install', '--no-save', '--prefer-offline', '--loglevel=error', '--no-audit', '--no-fund', `node-red-dev@${VERSION}`], {
    cwd: tmp,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 600_000,
  });
  const nrd = path.join(tmp, 'node_modules', 'node-red-dev');
  const preload = path.join(tmp, 'preload.js');
  const marker = path.join(tmp, 'catalogue-unreachable');
  const out = path.join(tmp, 'scorecard.json');
  fs.writeFileSync(preload, PRELOAD);
  const r = spawnSync(process.execPath, ['--require', preload, path.join(nrd, 'bin', 'run'), 'validate', '--path', root, '--output', out], {
    cwd: root,
    env: { ...env, P2P_HA_NRD_DIR: nrd, P2P_HA_SCORECARD_MARKER: marker },
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 600_000,
  });
  if (!fs.existsSync(out)) throw new Error(`node-red-dev validate wrote no scorecard (exit ${r.status})`);
  const card = JSON.parse(fs.readFileSync(out, 'utf8'));
  const unchecked = fs.existsSync(marker) ? ['P08', 'N01'] : [];
  const checks = Object.keys(card).filter((k) => /^[A-Z]\d\d$/.test(k)).sort();
  const failed = checks.filter((k) => !unchecked.includes(k) && card[k].test !== true);
  const passed = checks.filter((k) => !unchecked.includes(k) && card[k].test === true);
  const tail = unchecked.length ? `, ${unchecked.length} not checked: ${unchecked.join(' ')} (${CATALOGUE} unreachable)` : '';
  console.log(`scorecard: ${passed.length} of ${checks.length} passed${failed.length ? `, failed: ${failed.join(' ')}` : ''}${tail}`);
  code = failed.length === 0 ? 0 : 1;
} catch (e) {
  console.error(`scorecard: ${e.message}`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
