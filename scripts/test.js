#!/usr/bin/env node
// The test command: runs every suite in its own mocha process (so one suite's processes and
// handles cannot leak into another), streams their output, and ends with one line
// `N passed, N failed, N skipped` counted over all of them.
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const fs = require('fs');

const root = path.resolve(__dirname, '..');
const mocha = require.resolve('mocha/bin/mocha.js');

// Suites in the order they run: fast ones first. A suite whose folder has no test file is left out.
const SUITES = [
  { name: 'unit', dir: 'dist/test/unit' },
  { name: 'nodes', dir: 'dist/test/nodes' },
  { name: 'system', dir: 'dist/test/system' },
  { name: 'cluster', dir: 'dist/test/cluster' },
  { name: 'browser', dir: 'dist/test/browser' },
  // The node suite, the packed tarball with every example and one cluster scenario on Node-RED 5
  // (on Node 22 from the npm registry; scripts/nr5.js).
  {
    name: 'nr5',
    dir: ['dist/test/nodes', 'dist/test/system/package-install.test.js', 'dist/test/system/examples.test.js', 'dist/test/cluster/sem.test.js'],
    prepare: () => require('./nr5').prepare(),
  },
  { name: 'realvm', dir: 'dist/test/realvm' },
];

const only = process.argv.slice(2);

function listTests(dir) {
  if (Array.isArray(dir)) return dir.flatMap(listTests);
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  if (abs.endsWith('.test.js')) return [abs];
  const out = [];
  for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
    const p = path.join(abs, entry.name);
    if (entry.isDirectory()) out.push(...listTests(path.join(dir, entry.name)));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

function runSuite(suite) {
  return new Promise((resolve) => {
    const files = listTests(suite.dir);
    if (files.length === 0) return resolve({ passed: 0, failed: 0, skipped: 0, code: 0 });
    console.log(`\n=== suite ${suite.name}: ${files.length} file(s) ===`);
    // A suite may run on another Node with other mocha options (nr5): prepare() says how.
    let run = { execPath: process.execPath, args: [], env: {}, cleanup: () => {} };
    if (suite.prepare) {
      try {
        run = suite.prepare();
        console.log(`suite ${suite.name}: ${run.describe}`);
      } catch (e) {
        console.log(`suite ${suite.name} could not be prepared: ${e.message}`);
        return resolve({ passed: 0, failed: 1, skipped: 0, code: 1, failures: `could not be prepared: ${e.message}` });
      }
    }
    const child = spawn(run.execPath, [mocha, '--config', path.join(root, '.mocharc.json'), ...run.args, ...files], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...run.env },
    });
    let text = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      text += d.toString();
    });
    child.on('close', (code, signal) => {
      run.cleanup();
      const count = (word) => {
        const m = text.match(new RegExp(`^\\s*(\\d+) ${word}`, 'm'));
        return m ? Number(m[1]) : 0;
      };
      const r = { passed: count('passing'), failed: count('failing'), skipped: count('pending'), code };
      // Mocha's failure report (from "N failing" on): said again at the end of the run, so the
      // tail of a long CI log names what failed.
      const at = text.search(/^\s*\d+ failing/m);
      r.failures = at >= 0 ? text.slice(at).trimEnd() : '';
      // A suite that died without reporting a failure still failed.
      if ((code !== 0 || signal) && r.failed === 0) {
        r.failed = 1;
        r.failures = `the suite's mocha ended with ${signal ? `signal ${signal}` : `exit code ${code}`} and reported no failure`;
      }
      resolve(r);
    });
  });
}

(async () => {
  const total = { passed: 0, failed: 0, skipped: 0 };
  const failures = [];
  for (const suite of SUITES) {
    if (only.length && !only.includes(suite.name)) continue;
    const r = await runSuite(suite);
    if (r.failed) failures.push(`--- suite ${suite.name}: ${r.failed} failed\n${r.failures || ''}`);
    total.passed += r.passed;
    total.failed += r.failed;
    total.skipped += r.skipped;
  }
  if (failures.length) console.log(`\n=== what failed, again ===\n${failures.join('\n\n')}\n`);
  const skipped = total.skipped ? `, ${total.skipped} skipped` : '';
  console.log(`${total.passed} passed, ${total.failed} failed${skipped}`);
  process.exit(total.failed > 0 || total.passed === 0 ? 1 : 0);
})();
