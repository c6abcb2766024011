// Runtime messages (status lines, warnings, errors) through Node-RED's i18n, as the core nodes do:
// t of a key such as p2p-xyz.status.foo with { target } is RED._ of the node's own catalogue
// (nodes/locales/<lang>/p2p-xyz.json, interpolation `__name__`). Messages every node shares (no
// store, store failed, ...) live once in p2p-store's catalogue and are reached through its
// namespace (`common('...')`). Where RED._ knows no catalogue (node-red-node-test-helper's RED._
// returns the key), the package's own en-US catalogue is read instead, so a status is never a bare
// key.
import * as fs from 'fs';
import * as path from 'path';

/** The npm name of this package: Node-RED's namespace of a node set is `<module>/<set>`. */
export const PACKAGE = '@p2p-ha/node-red-server-manager';
/** The namespace holding the shared messages (`p2p-store.common.*`). */
export const COMMON_NS = `${PACKAGE}/p2p-store`;

export type Subs = Record<string, string | number | undefined>;
export type Translate = (key: string, subs?: Subs) => string;

interface HasI18n {
  _(key: string, subs?: Record<string, unknown>): string;
}

const NODE_LOCALES = path.join(__dirname, '..', 'locales', 'en-US');
const cache = new Map<string, Record<string, unknown> | null>();

function catalogue(dir: string, set: string): Record<string, unknown> | null {
  const file = path.join(dir, `${set}.json`);
  if (!cache.has(file)) {
    try {
      cache.set(file, JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>);
    } catch {
      cache.set(file, null);
    }
  }
  return cache.get(file)!;
}

/** `__x__` replaced by subs.x, as Node-RED's runtime i18n does. */
export function interpolate(text: string, subs: Subs = {}): string {
  return text.replace(/__([A-Za-z0-9_]+)__/g, (m, k: string) => (subs[k] === undefined ? m : String(subs[k])));
}

/** The en-US text of a key `p2p-xyz.a.b` (the first segment names the catalogue file). */
export function englishText(key: string, dir = NODE_LOCALES): string | undefined {
  const bare = key.includes(':') ? key.slice(key.indexOf(':') + 1) : key;
  const parts = bare.split('.');
  let v: unknown = catalogue(dir, parts[0]);
  for (const p of parts) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return typeof v === 'string' ? v : undefined;
}

/** A translator over `RED._` with the en-US fallback; `dir` is where the en-US catalogues lie. */
export function translator(RED: HasI18n, dir = NODE_LOCALES): Translate {
  return (key, subs) => {
    const bare = key.includes(':') ? key.slice(key.indexOf(':') + 1) : key;
    let out: unknown;
    try {
      out = RED._(key, subs as Record<string, unknown>);
    } catch {
      out = undefined;
    }
    if (typeof out === 'string' && out !== key && out !== bare) return out;
    const en = englishText(key, dir);
    return en === undefined ? bare : interpolate(en, subs);
  };
}

/** A shared message (`p2p-store.common.<key>`), in any node's translator. */
export function common(t: Translate, key: string, subs?: Subs): string {
  return t(`${COMMON_NS}:p2p-store.common.${key}`, subs);
}
