// Compares two V8 heap snapshots (bench:memory HEAP_SNAPSHOTS=1 writes one after the warm-up and
// one after the last edit, both after full GCs): objects grouped by type and constructor/name,
// the groups whose count or self size grew the most printed first. Retained state that grows with
// the number of edits (maps of seen sequence numbers, replay windows, buffered logs, debug
// history) shows as a group whose count grows with the edits.
//   node dist/bench/sem-memory-heapdiff.js early.heapsnapshot late.heapsnapshot [top=25]
import * as fs from 'fs';

interface Group {
  count: number;
  bytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Count and self size per "type:name" (strings and code grouped by type only). */
export function groups(file: string): Map<string, Group> {
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, Group>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]];
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden' || type === 'array';
    const key = named ? `${type}:${s.strings[s.nodes[i + iName]].slice(0, 60)}` : type;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + iSize];
    out.set(key, g);
  }
  return out;
}

export function diff(a: Map<string, Group>, b: Map<string, Group>): { key: string; count: number; bytes: number; countLate: number; bytesLate: number }[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys]
    .map((key) => {
      const x = a.get(key) ?? { count: 0, bytes: 0 };
      const y = b.get(key) ?? { count: 0, bytes: 0 };
      return { key, count: y.count - x.count, bytes: y.bytes - x.bytes, countLate: y.count, bytesLate: y.bytes };
    })
    .sort((p, q) => Math.abs(q.bytes) - Math.abs(p.bytes));
}

if (require.main === module) {
  const [early, late, top] = process.argv.slice(2);
  if (!early || !late) {
    console.error('usage: node dist/bench/sem-memory-heapdiff.js early.heapsnapshot late.heapsnapshot [top]');
    process.exit(2);
  }
  const a = groups(early);
  const b = groups(late);
  const total = (m: Map<string, Group>) => [...m.values()].reduce((n, g) => n + g.bytes, 0);
  console.log(`self size total: ${(total(a) / 1048576).toFixed(1)} MB -> ${(total(b) / 1048576).toFixed(1)} MB`);
  console.log('delta bytes   delta count   late count   group');
  for (const d of diff(a, b).slice(0, Number(top ?? 25))) {
    console.log(`${String(d.bytes).padStart(11)}   ${String(d.count).padStart(11)}   ${String(d.countLate).padStart(10)}   ${d.key}`);
  }
}
