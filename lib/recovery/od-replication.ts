// Making one original server (OD) from the ODS of a real server, the note's steps i-vi:
//   clone (virt-clone from the shut-off ODS, with a MAC derived from the identity) -> start ->
//   re-identify (address, hostname and the settings that depend on them: an injected step, e.g.
//   the OD setup procedure on the real server, or the OD's admin API in the loopback cluster) ->
//   suspend -> files: available-od Add, reservation Del.
// A clone whose name is already in use means another replicator holds this identity (the host is
// the lock, replicator-lock.ts): the run stands down without touching the files.
import { createHash } from 'crypto';
import type { Edit } from '../records/cluster-api';
import type { PlanFiles } from './backup-plan';
import type { Identity } from './od-pool';
import { errorText, hvKind } from '../records/hv-outcome';

export interface CloneDriver {
  clone(original: string, name: string, macAddress?: string): Promise<void>;
  start(name: string): Promise<void>;
  suspend(name: string): Promise<void>;
}

export type ReplicationStep = 'clone' | 'start' | 'reidentify' | 'suspend' | 'edits' | 'done' | 'stood-down' | 'failed';

export interface ReplicationEvent {
  step: ReplicationStep;
  od: string;
  realServer: string;
  ms: number;
  text: string;
}

export interface ReplicationDeps {
  files: PlanFiles;
  driver: CloneDriver;
  /** The ODS (template domain) of this real server. */
  ods: string;
  reidentify?(id: Identity & { mac: string }): Promise<void>;
  now?(): number;
  onStep?(e: ReplicationEvent): void;
  signal?: AbortSignal;
}

export interface ReplicationResult {
  od: string;
  realServer: string;
  outcome: 'made' | 'stood-down';
  mac: string;
  timings: Record<'clone' | 'start' | 'reidentify' | 'suspend' | 'edits' | 'total', number>;
}

/** A stable, locally administered unicast MAC for an OD name (52:54:00 like virt-clone's). */
export function macFor(od: string): string {
  const h = createHash('sha256').update(od).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

export async function replicateOne(id: Identity, deps: ReplicationDeps): Promise<ReplicationResult> {
  const now = deps.now ?? (() => performance.now());
  const t0 = now();
  const mac = macFor(id.od);
  const timings: ReplicationResult['timings'] = { clone: 0, start: 0, reidentify: 0, suspend: 0, edits: 0, total: 0 };
  const emit = (step: ReplicationStep, ms: number, text: string) => {
    try {
      deps.onStep?.({ step, od: id.od, realServer: id.realServer, ms, text });
    } catch {
      /* observers cannot change the run */
    }
  };
  const timed = async (step: 'clone' | 'start' | 'reidentify' | 'suspend', text: string, f: () => Promise<void>) => {
    if (deps.signal?.aborted) throw new Error('replication stopped (node closed)');
    const t = now();
    await f();
    timings[step] = now() - t;
    emit(step, timings[step], text);
  };
  try {
    try {
      await timed('clone', `${id.od} cloned from ${deps.ods}`, () => deps.driver.clone(deps.ods, id.od, mac));
    } catch (e) {
      if (hvKind(e) === 'name-in-use') {
        emit('stood-down', 0, `${id.od} already exists on ${id.realServer}: another replicator has it`);
        return { od: id.od, realServer: id.realServer, outcome: 'stood-down', mac, timings };
      }
      throw e;
    }
    await timed('start', `${id.od} started`, () => deps.driver.start(id.od));
    await timed('reidentify', `${id.od} is ${id.address}`, async () => {
      if (deps.reidentify) await deps.reidentify({ ...id, mac });
    });
    await timed('suspend', `${id.od} suspended`, () => deps.driver.suspend(id.od));
    const t = now();
    const edits: Edit[] = [];
    if (!deps.files.get('available-od', id.od)) edits.push({ file: 'available-od', op: 'Add', record: [id.od, id.address, id.realServer] });
    const res = deps.files.get('reservation', id.od);
    if (res) edits.push({ file: 'reservation', op: 'Del', record: res });
    await Promise.all(edits.map((e) => deps.files.edit(e)));
    timings.edits = now() - t;
    timings.total = now() - t0;
    emit('edits', timings.edits, `available-od Add ${id.od}, reservation Del`);
    emit('done', timings.total, `${id.od} ready on ${id.realServer} in ${Math.round(timings.total)} ms`);
    return { od: id.od, realServer: id.realServer, outcome: 'made', mac, timings };
  } catch (e) {
    emit('failed', 0, `${id.od}: ${errorText(e)}`);
    throw e;
  }
}
