// The package as a user gets it, shared by the package-install and example tests: a clean clone
// of this checkout's HEAD (committed files only), `npm pack` there (its prepack builds dist/),
// and the tarball installed with npm into a fresh Node-RED user directory. Packed and installed
// once per test process (memoized); each caller copies the installed user directory for its own
// Node-RED. The temp directory goes when the process exits.
//
// node_modules of the clone is a symlink to this checkout's (the build only needs its tools, and
// the tarball holds no node_modules), unless P2P_HA_PACK_NPM_CI=1 asks for `npm ci` in the clone.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { packageRoot } from '../../harness/cluster/launcher';

const run = promisify(execFile);

export interface PackedInstall {
  /** The tarball `npm pack` made from the clean clone. */
  tgz: string;
  /** Paths inside the tarball (without the leading `package/`). */
  files: string[];
  /** A Node-RED user directory with the tarball installed (copy it, do not start Node-RED in it). */
  userDir: string;
  /** The installed package inside userDir. */
  installed: string;
  name: string;
}

/** npm with no update check and none of the calling npm's lifecycle settings (when run by `npm test`). */
export function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  return env;
}

let pending: Promise<PackedInstall> | undefined;

/** Clone, pack and install once per process; later calls get the same result. */
export function packedInstall(): Promise<PackedInstall> {
  pending ??= make();
  return pending;
}

async function make(): Promise<PackedInstall> {
  const root = packageRoot();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2p-ha-packed-'));
  process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const clone = path.join(tmp, 'clone');
  await run('git', ['clone', '--quiet', '--no-hardlinks', root, clone], { timeout: 60_000 });
  if (process.env.P2P_HA_PACK_NPM_CI === '1') {
    await run('npm', ['ci', '--loglevel=error'], { cwd: clone, env: npmEnv(), timeout: 600_000 });
  } else {
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(clone, 'node_modules'), 'dir');
  }
  // prepack compiles dist/ in the clone: a clean clone has none.
  const packed = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: clone, env: npmEnv(), timeout: 300_000, maxBuffer: 16 << 20 });
  // npm prints the prepack script's output before the JSON.
  const json = packed.stdout.startsWith('[') ? packed.stdout : packed.stdout.slice(packed.stdout.indexOf('\n[') + 1);
  const info = (JSON.parse(json) as Array<{ filename: string; name: string; files: Array<{ path: string }> }>)[0];
  const tgz = path.join(tmp, info.filename);

  const userDir = path.join(tmp, 'user');
  fs.mkdirSync(userDir);
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
  await run('npm', ['install', tgz, '--prefer-offline', '--loglevel=error'], { cwd: userDir, env: npmEnv(), timeout: 300_000 });
  const installed = path.join(userDir, 'node_modules', ...info.name.split('/'));
  if (fs.lstatSync(installed).isSymbolicLink()) throw new Error('npm linked the package instead of installing the tarball');
  return { tgz, files: info.files.map((f) => f.path), userDir, installed, name: info.name };
}

/** A copy of the installed user directory at dir (for one Node-RED of one test). */
export function copyUserDir(p: PackedInstall, dir: string): void {
  fs.cpSync(p.userDir, dir, { recursive: true, verbatimSymlinks: true });
}

// ---- what the editor counts as a used config node, computed from GET /nodes (HTML) ------------

export interface NodeDefs {
  /** type -> for each property in its defaults that names a node type: property -> that type. */
  refs: Map<string, Map<string, string>>;
  /** Types registered with category 'config'. */
  configTypes: Set<string>;
}

/** Reads each registerType(...) of the editor HTML: config types and typed default properties. */
export function nodeDefs(editorHtml: string): NodeDefs {
  const refs = new Map<string, Map<string, string>>();
  const configTypes = new Set<string>();
  const calls = [...editorHtml.matchAll(/registerType\(\s*['"]([^'"]+)['"]\s*,/g)];
  calls.forEach((m, i) => {
    const body = editorHtml.slice(m.index! + m[0].length, i + 1 < calls.length ? calls[i + 1].index : undefined);
    if (/\bcategory\s*:\s*['"]config['"]/.test(body)) configTypes.add(m[1]);
    const props = new Map<string, string>();
    const defaults = /\bdefaults\s*:\s*\{/.exec(body);
    if (defaults) {
      // The defaults object: from its brace to the matching one.
      let depth = 0;
      let end = defaults.index + defaults[0].length - 1;
      for (; end < body.length; end++) {
        if (body[end] === '{') depth++;
        else if (body[end] === '}' && --depth === 0) break;
      }
      const text = body.slice(defaults.index, end);
      for (const p of text.matchAll(/([\w$]+)\s*:\s*\{[^{}]*?\btype\s*:\s*['"]([^'"]+)['"]/g)) props.set(p[1], p[2]);
    }
    refs.set(m[1], props);
  });
  return { refs, configTypes };
}

export interface ConfigUse {
  /** Config nodes no node uses although some node type could (the editor warns "unused"). */
  unused: string[];
  /** Config nodes of a type that no registered node type references at all. */
  unreferenceable: string[];
}

/** Which config nodes of a flow have no user, the way the editor counts users. */
export function configUse(flow: Array<Record<string, unknown>>, defs: NodeDefs): ConfigUse {
  const referenceable = new Set<string>();
  for (const props of defs.refs.values()) for (const t of props.values()) referenceable.add(t);
  const out: ConfigUse = { unused: [], unreferenceable: [] };
  for (const c of flow.filter((n) => defs.configTypes.has(String(n.type)))) {
    const used = flow.some((n) => [...(defs.refs.get(String(n.type)) ?? [])].some(([p, t]) => t === c.type && n[p] === c.id));
    if (used) continue;
    const label = `${String(c.type)} ${String(c.id)}`;
    if (referenceable.has(String(c.type))) out.unused.push(label);
    else out.unreferenceable.push(label);
  }
  return out;
}
