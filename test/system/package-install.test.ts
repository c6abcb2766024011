// The package as a user gets it: a clean clone of HEAD packed with `npm pack` (its prepack builds
// dist/), the tarball installed with npm into a fresh Node-RED user directory (packed-install.ts),
// loaded by a real Node-RED (4.1 in the system suite, 5.x in the nr5 suite). The tarball holds
// exactly what users need; every node set that package.json registers ("node-red".nodes, read
// here, never hard-coded) loads with no error and brings its editor template, help text, messages
// and icons; the editor plugin loads.
import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Cluster, packageRoot, startCluster } from '../../harness/cluster/launcher';
import { httpRequest } from '../../harness/http';
import { freeLoopbackIp } from '../../harness/net';
import { copyUserDir, packedInstall, type PackedInstall } from './packed-install';

interface NodeSet {
  id: string;
  name: string;
  module: string;
  types: string[];
  enabled: boolean;
  err?: unknown;
}

describe('package install: clean clone, npm pack, npm install into a fresh user directory, GET /nodes', function () {
  const root = packageRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    license: string;
    'node-red'?: { nodes?: Record<string, string>; plugins?: Record<string, string> };
  };
  const sets = Object.entries(pkg['node-red']?.nodes ?? {});
  const pluginSets = Object.entries(pkg['node-red']?.plugins ?? {});
  let tmp: string;
  let packed: PackedInstall;
  let installed: string;
  let cluster: Cluster | undefined;
  let url: string;
  let nodeSets: NodeSet[];
  let editorHtml: string;

  before(async function () {
    // Clone, build (prepack) and npm install: minutes on a cold, busy machine.
    this.timeout(600_000);
    packed = await packedInstall();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-pkg-install-'));
    const baseDir = path.join(tmp, 'vms');
    copyUserDir(packed, path.join(baseDir, 'pkg'));
    installed = path.join(baseDir, 'pkg', 'node_modules', ...pkg.name.split('/'));

    // The launcher runs Node-RED on it exactly as in the cluster, but with this real install.
    cluster = await startCluster({ names: ['pkg'], ips: [freeLoopbackIp()], baseDir, installPackage: false, startTimeoutMs: 60_000 });
    url = cluster.vms[0].url;
    nodeSets = JSON.parse((await httpRequest(`${url}/nodes`, { headers: { Accept: 'application/json' } })).body) as NodeSet[];
    editorHtml = (await httpRequest(`${url}/nodes?lng=en-US`, { headers: { Accept: 'text/html' } })).body;
  });

  after(async function () {
    this.timeout(30_000);
    await cluster?.stopAll();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the tarball holds exactly what users need: compiled nodes, plugin, lib, examples, docs, README, LICENSE', function () {
    const files = packed.files;
    for (const f of ['package.json', 'README.md', 'LICENSE', 'docs/recovery.md']) assert.ok(files.includes(f), `${f} not in the tarball`);
    for (const [, file] of [...sets, ...pluginSets]) assert.ok(files.includes(file), `${file} not in the tarball`);
    assert.ok(files.some((f) => f.startsWith('dist/lib/')), 'no dist/lib in the tarball');
    assert.ok(files.some((f) => f.startsWith('examples/') && f.endsWith('.json')), 'no example in the tarball');
    const unwanted = files.filter((f) => /^(dist\/(test|harness|bench|scripts)\/|test\/|harness\/|bench\/|lib\/|nodes\/|plugins\/|scripts\/|docs\/images\/|\.ci\/)|\.map$|\.ts$|tsconfig/.test(f));
    assert.deepStrictEqual(unwanted, [], 'files users do not need are in the tarball');
    assert.ok(fs.readFileSync(path.join(installed, 'LICENSE'), 'utf8').includes('Apache License'), `LICENSE is not the ${pkg.license} text`);
  });

  it('package.json names the repository, bugs, homepage and author, and no unused dependency', function () {
    const p = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['repository', 'bugs', 'homepage', 'author', 'license']) assert.ok(p[k], `package.json has no ${k}`);
    // Every runtime dependency is required by the shipped code.
    const shipped = packed.files.filter((f) => f.endsWith('.js')).map((f) => fs.readFileSync(path.join(installed, f), 'utf8')).join('\n');
    for (const dep of Object.keys((p.dependencies as Record<string, string>) ?? {})) {
      assert.ok(shipped.includes(`require("${dep}")`) || shipped.includes(`require("${dep}/`), `dependency ${dep} is never required by the shipped code`);
    }
  });

  it('runs on the Node-RED major the suite asks for (5 in the nr5 suite, else the checkout\'s)', async function () {
    const settings = JSON.parse((await httpRequest(`${url}/settings`, { headers: { Accept: 'application/json' } })).body) as { version: string };
    const want = process.env.P2P_HA_NODE_RED_DIR ? '5' : String(JSON.parse(fs.readFileSync(require.resolve('node-red/package.json', { paths: [root] }), 'utf8')).version).split('.')[0];
    assert.strictEqual(settings.version.split('.')[0], want, `Node-RED ${settings.version} answered`);
  });

  it('package.json registers at least one node set', function () {
    assert.ok(sets.length > 0, 'package.json has no "node-red".nodes');
  });

  it('the tarball holds every registered node file with its editor file beside it', function () {
    for (const [name, file] of sets) {
      assert.ok(fs.existsSync(path.join(installed, file)), `${name}: ${file} not in the installed package`);
      const html = file.replace(/\.c?js$/, '.html');
      assert.ok(fs.existsSync(path.join(installed, html)), `${name}: ${html} not in the installed package`);
    }
  });

  it('every registered node set is loaded, enabled, with no error, by a real Node-RED', function () {
    const ours = nodeSets.filter((s) => s.module === pkg.name);
    for (const [name] of sets) {
      const set = ours.find((s) => s.name === name);
      assert.ok(set, `GET /nodes does not list ${pkg.name}/${name}`);
      assert.strictEqual(set.err, undefined, `${name} failed to load: ${JSON.stringify(set.err)}\n${cluster ? cluster.logs('pkg').nodeRed : ''}`);
      assert.strictEqual(set.enabled, true, `${name} is disabled`);
      assert.ok(set.types.length > 0, `${name} registered no node type`);
    }
    assert.deepStrictEqual(ours.map((s) => s.name).sort(), sets.map(([n]) => n).sort(), 'Node-RED loaded sets package.json does not list');
  });

  it('the editor gets each type\'s template and help text', function () {
    for (const [name] of sets) {
      const set = nodeSets.find((s) => s.module === pkg.name && s.name === name)!;
      const section = setSection(editorHtml, set.id);
      assert.ok(section, `GET /nodes (HTML) has no section for ${set.id}`);
      for (const type of set.types) {
        assert.ok(section.includes(`data-template-name="${type}"`), `${type}: no editor template`);
        const help = new RegExp(`<script type="text/html" data-help-name="${escapeRe(type)}">([\\s\\S]*?)</script>`).exec(section);
        assert.ok(help, `${type}: no help text (locales/en-US/${name}.html)`);
        assert.ok(help[1].replace(/<[^>]*>/g, '').trim().length >= 20, `${type}: help text is (nearly) empty`);
      }
    }
  });

  it('each node set\'s messages are served (GET /nodes/messages)', async function () {
    const r = await httpRequest(`${url}/nodes/messages?lng=en-US`, { headers: { Accept: 'application/json' } });
    const catalogs = JSON.parse(r.body) as Record<string, Record<string, unknown> | undefined>;
    for (const [name] of sets) {
      const catalog = catalogs[`${pkg.name}/${name}`];
      assert.ok(catalog && Object.keys(catalog).length > 0, `no en-US messages for ${name} (locales/en-US/${name}.json)`);
    }
  });

  it('every icon the nodes name is served from the package', async function () {
    const listed = JSON.parse((await httpRequest(`${url}/icons`, { headers: { Accept: 'application/json' } })).body) as Record<string, string[]>;
    const ourIcons = listed[pkg.name] ?? [];
    let checked = 0;
    for (const [name, file] of sets) {
      const set = nodeSets.find((s) => s.module === pkg.name && s.name === name)!;
      for (const icon of declaredIcons(setSection(editorHtml, set.id) ?? '')) {
        // Core icons ("font-awesome/fa-...", "node-red/...") are not ours to ship.
        if (icon.includes('/')) continue;
        assert.ok(ourIcons.includes(icon), `${name}: icon ${icon} is not among the package's icons (${ourIcons.join(', ') || 'none'})`);
        const r = await httpRequest(`${url}/icons/${pkg.name}/${icon}`);
        assert.strictEqual(r.status, 200);
        // Node-RED answers a missing icon with a default one: compare with the shipped file.
        const shipped = fs.readFileSync(path.join(installed, path.dirname(file), 'icons', icon), 'utf8');
        assert.strictEqual(r.body, shipped, `${name}: GET /icons/${pkg.name}/${icon} is not the shipped file`);
        checked++;
      }
    }
    assert.ok(checked > 0, 'no node of the package names an icon of its own');
  });

  it('every registered editor plugin is loaded with no error and its editor part served', async function () {
    if (pluginSets.length === 0) this.skip();
    const listed = JSON.parse((await httpRequest(`${url}/plugins`, { headers: { Accept: 'application/json' } })).body) as Array<
      NodeSet & { plugins?: unknown[] }
    >;
    const html = (await httpRequest(`${url}/plugins?lng=en-US`, { headers: { Accept: 'text/html' } })).body;
    for (const [name, file] of pluginSets) {
      assert.ok(fs.existsSync(path.join(installed, file)), `plugin ${name}: ${file} not in the installed package`);
      const set = listed.find((p) => p.module === pkg.name && p.name === name);
      assert.ok(set, `GET /plugins does not list ${pkg.name}/${name}`);
      assert.strictEqual(set.err, undefined, `plugin ${name} failed to load: ${JSON.stringify(set.err)}`);
      assert.strictEqual(set.enabled, true, `plugin ${name} is disabled`);
      assert.ok((set.plugins ?? []).length > 0, `plugin set ${name} registered no plugin`);
      if (fs.existsSync(path.join(installed, file.replace(/\.c?js$/, '.html')))) {
        assert.ok((setSection(html, set.id, 'red-plugin') ?? '').trim().length > 0, `plugin ${name}: its editor HTML is not served`);
      }
    }
  });
});

/** The part of GET /nodes (or, with kind 'red-plugin', GET /plugins) HTML that belongs to one set. */
function setSection(html: string, setId: string, kind = 'red-module'): string | undefined {
  const marker = `<!-- --- [${kind}:${setId}] --- -->`;
  const start = html.indexOf(marker);
  if (start < 0) return undefined;
  const end = html.indexOf(`<!-- --- [${kind}:`, start + marker.length);
  return html.slice(start + marker.length, end < 0 ? undefined : end);
}

/** Icon names given as string literals in the editor definitions (`icon: "x.svg"`). */
function declaredIcons(section: string): string[] {
  return [...section.matchAll(/\bicon\s*:\s*["']([^"']+)["']/g)].map((m) => m[1]);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
