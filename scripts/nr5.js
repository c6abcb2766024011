#!/usr/bin/env node
// Node-RED 5 for the nr5 suite (scripts/test.js): Node-RED 5 needs Node >= 22.9, so unless this
// Node is recent enough, a Node 22 binary comes from the npm registry (the package
// node-<platform>-<arch>@22 ships it); node-red@5 is installed beside it in a fresh temp dir. The
// suite's mocha then runs on that Node with scripts/nr5-resolve.js preloaded, so the test helper
// and the launcher load Node-RED 5 (the launcher spawns Node-RED with the same Node). Nothing is
// downloaded from anywhere but the npm registry. The temp dir is removed by cleanup().
//   NODE_RED_5 (default "5")  the node-red version or range to install
//   node scripts/nr5.js       prepares, prints the Node and Node-RED versions, cleans up
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const NODE_MIN = [22, 9];

function npmEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

function recentEnough(version) {
  const [maj, min] = version.replace(/^v/, '').split('.').map(Number);
  return maj > NODE_MIN[0] || (maj === NODE_MIN[0] && min >= NODE_MIN[1]);
}

/** Installs what the suite needs; resolves with how to run it. */
function prepare() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-nr5-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  process.on('exit', cleanup);
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'p2p-ha-nr5', private: true }));
    const nodePkg = `node-${process.platform}-${process.arch}`;
    const wanted = [`node-red@${process.env.NODE_RED_5 || '5'}`];
    const needNode = !recentEnough(process.version);
    if (needNode) wanted.push(`${nodePkg}@22`);
    execFileSync('npm', ['install', '--prefer-offline', '--loglevel=error', '--no-save', ...wanted], {
      cwd: dir,
      env: npmEnv(),
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 600_000,
    });
    const execPath = needNode ? path.join(dir, 'node_modules', nodePkg, 'bin', 'node') : process.execPath;
    const nodeVersion = execFileSync(execPath, ['--version']).toString().trim();
    if (!recentEnough(nodeVersion)) throw new Error(`${execPath} is ${nodeVersion}, Node-RED 5 needs >= ${NODE_MIN.join('.')}`);
    const redVersion = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', 'node-red', 'package.json'), 'utf8')).version;
    if (!/^5\./.test(redVersion)) throw new Error(`installed node-red ${redVersion}, not 5.x`);
    return {
      execPath,
      args: ['--require', path.join(__dirname, 'nr5-resolve.js')],
      env: { P2P_HA_NODE_RED_DIR: dir },
      describe: `Node ${nodeVersion}, Node-RED ${redVersion}`,
      cleanup,
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

module.exports = { prepare };

if (require.main === module) {
  const r = prepare();
  console.log(r.describe);
  r.cleanup();
}
