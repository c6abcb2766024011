// Making one original server (OD) from the ODS of a real server, the note's steps i-vi:
//   clone (virt-clone from the shut-off ODS, with a MAC derived from the identity) -> post-clone
//   XML hook (per-VM paths and forwards, guest-reidentify.ts defaultPostCloneXml) -> seed (the
//   default: the identity given BEFORE the first boot on a seed volume, lib/hv/od-seed.ts; the
//   hook returns the XML with the volume attached and the OD's new host key) -> start ->
//   re-identify (the older modes, after the boot: od-setup.sh over SSH + restart, the OD's admin
//   API, or the operator's procedure) -> ready (a readiness check with the new host key pinned:
//   no OD is suspended mid-boot or enters available-od unchecked) -> suspend -> files:
//   available-od Add (with the OD's new SSH host key when known), reservation Del.
// A clone whose name is already in use means another replicator holds this identity (the host is
// the lock, replicator-lock.ts): the run stands down without touching the files.
import { createHash } from 'crypto';
import type { Edit } from '../records/cluster-api';
import { toOd } from '../records/records';
import type { PlanFiles } from './backup-plan';
import type { Identity } from './od-pool';
import { errorText, hvKind } from '../records/hv-outcome';

export interface CloneDriver {
  clone(original: string, name: string, macAddress?: string): Promise<void>;
  start(name: string): Promise<void>;
  suspend(name: string): Promise<void>;
  /** Needed by the post-clone XML hook. */
  dumpxml?(name: string): Promise<string>;
  define?(xml: string): Promise<string>;
  /** Needed to remove a clone whose run failed half-way (removeHalfMade). */
  domstate?(name: string): Promise<string>;
  destroy?(name: string): Promise<void>;
  undefine?(name: string, opts?: { removeAllStorage?: boolean }): Promise<void>;
}

export type ReplicationStep = 'clone' | 'fix-xml' | 'seed' | 'start' | 'reidentify' | 'ready' | 'suspend' | 'edits' | 'done' | 'stood-down' | 'failed' | 'removed';

/** What a re-identification may report: the OD's new SSH host key and its own step times. */
export interface ReidentifyOutcome {
  hostKey?: string;
  timings?: Record<string, number>;
}

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
  reidentify?(id: Identity & { mac: string }): Promise<void | ReidentifyOutcome>;
  /** Rewrites the clone's XML before its first start (per-VM paths, port forwards, NIC MAC). */
  postCloneXml?(xml: string, id: Identity & { mac: string; ods: string }): string;
  /**
   * Gives the clone its identity before its first boot (the default: od-seed.ts): gets the XML
   * after the post-clone hook, returns the XML to define (the seed volume attached) and the OD's
   * new SSH host key (recorded in available-od, pinned by `ready`).
   */
  seed?(id: Identity & { mac: string; ods: string }, xml: string): Promise<{ xml: string; hostKey?: string }>;
  /** The readiness check before suspending (e.g. the SSH banner, the new host key pinned); a throw keeps the OD out of available-od. */
  ready?(id: Identity & { mac: string; hostKey?: string }): Promise<void | { timings?: Record<string, number> }>;
  now?(): number;
  onStep?(e: ReplicationEvent): void;
  signal?: AbortSignal;
}

export interface ReplicationResult {
  od: string;
  realServer: string;
  outcome: 'made' | 'stood-down';
  mac: string;
  /** The OD's SSH host key fingerprint after re-identification, when the re-identification gave one. */
  hostKey?: string;
  timings: Record<'clone' | 'fixXml' | 'seed' | 'start' | 'reidentify' | 'ready' | 'suspend' | 'edits' | 'total', number>;
  /** The re-identification's own steps (boot, setup, restart on a real guest). */
  reidentifySteps?: Record<string, number>;
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
  const timings: ReplicationResult['timings'] = { clone: 0, fixXml: 0, seed: 0, start: 0, reidentify: 0, ready: 0, suspend: 0, edits: 0, total: 0 };
  let outcome: ReidentifyOutcome = {};
  const emit = (step: ReplicationStep, ms: number, text: string) => {
    try {
      deps.onStep?.({ step, od: id.od, realServer: id.realServer, ms, text });
    } catch {
      /* observers cannot change the run */
    }
  };
  const timed = async (step: 'clone' | 'fix-xml' | 'seed' | 'start' | 'reidentify' | 'ready' | 'suspend', text: string, f: () => Promise<void>) => {
    if (deps.signal?.aborted) throw new Error('replication stopped (node closed)');
    const t = now();
    await f();
    const key = step === 'fix-xml' ? 'fixXml' : step;
    timings[key] = now() - t;
    emit(step, timings[key], text);
  };
  let cloned = false;
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
    cloned = true;
    if (deps.postCloneXml || deps.seed) {
      const d = deps.driver;
      if (!d.dumpxml || !d.define) throw new Error('the post-clone XML hook and the seed need a driver with dumpxml and define');
      const t0x = now();
      const before = await d.dumpxml(id.od);
      const dumpMs = now() - t0x;
      let xml = before;
      if (deps.postCloneXml) {
        const hook = deps.postCloneXml;
        await timed('fix-xml', `${id.od}: per-VM paths and forwards set`, async () => {
          xml = hook(before, { ...id, mac, ods: deps.ods });
        });
      }
      if (deps.seed) {
        const seed = deps.seed;
        await timed('seed', `${id.od}: identity written to its seed volume`, async () => {
          const s = await seed({ ...id, mac, ods: deps.ods }, xml);
          xml = s.xml;
          if (s.hostKey) outcome = { ...outcome, hostKey: s.hostKey };
        });
      }
      const t = now();
      if (xml !== before) await d.define(xml);
      timings.fixXml += dumpMs + now() - t;
    }
    await timed('start', `${id.od} started`, () => deps.driver.start(id.od));
    await timed('reidentify', `${id.od} is ${id.address}`, async () => {
      if (deps.reidentify) outcome = { ...outcome, ...((await deps.reidentify({ ...id, mac })) ?? {}) };
    });
    if (deps.ready) {
      await timed('ready', `${id.od} ready under its identity`, async () => {
        const r = await deps.ready!({ ...id, mac, hostKey: outcome.hostKey });
        if (r && r.timings) outcome = { ...outcome, timings: { ...(outcome.timings ?? {}), ...r.timings } };
      });
    }
    await timed('suspend', `${id.od} suspended`, () => deps.driver.suspend(id.od));
    const t = now();
    const edits: Edit[] = [];
    if (!deps.files.get('available-od', id.od)) {
      edits.push({ file: 'available-od', op: 'Add', record: toOd({ od: id.od, address: id.address, realServer: id.realServer, hostKey: outcome.hostKey }) });
    }
    const res = deps.files.get('reservation', id.od);
    if (res) edits.push({ file: 'reservation', op: 'Del', record: res });
    // One batch: the OD enters the pool and leaves the reservations together, or neither does.
    if (edits.length === 1) await deps.files.edit(edits[0]);
    else if (edits.length > 1) await deps.files.editBatch(edits);
    timings.edits = now() - t;
    timings.total = now() - t0;
    emit('edits', timings.edits, `available-od Add ${id.od}, reservation Del`);
    emit('done', timings.total, `${id.od} ready on ${id.realServer} in ${Math.round(timings.total)} ms`);
    return { od: id.od, realServer: id.realServer, outcome: 'made', mac, hostKey: outcome.hostKey, timings, reidentifySteps: outcome.timings };
  } catch (e) {
    emit('failed', 0, `${id.od}: ${errorText(e)}`);
    // A clone left behind would hold its reserved name for ever: the next run's virt-clone finds
    // the name taken and stands down ("another replicator has it"), so the pool never refills.
    // Its maker removes it; the reservation stays, and the next run starts it afresh.
    if (cloned) {
      const r = await removeHalfMade(deps.driver, id.od);
      emit('removed', 0, r === true ? `${id.od} removed from ${id.realServer} after the failure` : `${id.od} could not be removed from ${id.realServer} (${errorText(r)}): remove it by hand (virsh undefine --remove-all-storage) or the identity stays blocked`);
    }
    throw e;
  }
}

/**
 * Remove a half-made clone: stop it if it runs (or is paused), then undefine it with its storage
 * (the seed volume included). True, or the error that stopped the removal (the host may be gone).
 */
export async function removeHalfMade(driver: CloneDriver, name: string): Promise<true | unknown> {
  if (!driver.domstate || !driver.destroy || !driver.undefine) return new Error('the driver cannot remove domains (no domstate/destroy/undefine)');
  try {
    if ((await driver.domstate(name)) !== 'shut off') await driver.destroy(name);
    await driver.undefine(name, { removeAllStorage: true });
    return true;
  } catch (e) {
    return hvKind(e) === 'domain-absent' ? true : e;
  }
}
