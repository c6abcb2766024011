// p2p-backup-starter: for a confirmed failure (msg from p2p-heartbeat, optionally shown placed by
// p2p-placer), fences the failed server, resumes an OD, runs the installation procedure, gives the
// OD the failed server's role and edits the files (lib/recovery/backup-plan.ts; it places with the
// failures in hand itself). Every step shows on the status and leaves as a msg on output 1 (topic
// `recovery/<step>`); the end is a msg with topic `recovered` and the whole result, or a msg on
// output 2 (topic `failed`: target, step, kind, reason) and done(err), the problem record left
// `failed`. The isolation gate (for a fence that cannot reach the host) is the heartbeat's of the
// same store, from the cluster registry; without one such a fence never goes ahead.
// Several failures recover in parallel; a second msg for a target already being recovered is
// dropped with a warning. While a recovery is under way here, the edits this VM makes go also to the
// resumed ODs of the other recoveries in hand, which are no members yet (lib/recovery/role-catch-up.ts).
// Takeover (lib/recovery/takeover.ts): every few seconds the node looks for recoveries held by
// another manager whose problem record has not changed for the takeover bound (default 60 s);
// when this VM is the next taker and the acting manager is gone (not serving, failed, or not
// answering its ping), it writes the record in its own name and runs the plan again from where
// the records say it is. A takeover it cannot make (no majority here) is warned and sent on
// output 2 (topic `takeover-refused`), once per episode.
// POST /p2p-ha/rehearse `{ target }` (permission p2p-ha.read; the sidebar's rehearse button and
// `p2p-ha rehearse`) answers what this node's plan would do now if the target failed, with nothing
// changed (lib/recovery/rehearsal.ts), with this node's settings, drivers and isolation gate; on a
// runtime without a backup starter, with the plan's defaults and no role step.
import { RecoveryError, runBackupPlan, RecoveryResult, Role, StepEvent } from '../lib/recovery/backup-plan';
import { rehearse, RehearsalError, type Rehearsal } from '../lib/recovery/rehearsal';
import { timelineEntry } from '../lib/ops/failover-steps';
import type { Placement } from '../lib/recovery/placement';
import { checkDir, DEFAULT_PROCEDURE_DIR } from '../lib/recovery/install-procedure';
import { assignRole as giveRole } from '../lib/recovery/role';
import { waitDomainSshReady } from '../lib/hv/readiness';
import { readProcedureFolder, syncProcedures, type ProcedureHost } from '../lib/hv/procedure-sync';
import { guestOpener } from '../lib/hv/guest-reidentify';
import type { VirshDriver } from '../lib/hv/virsh-driver';
import type { NodeMessage, RED } from './common/node-red';
import { realServerDrivers, seconds } from './common/real-servers';
import { short, useStore } from './common/store-user';
import { common, translator } from './common/i18n';
import { registry } from './common/cluster-registry';
import { finishWithin } from './common/close';
import { decideTakeover, takeoverRecord, TAKEOVER_DEFAULTS } from '../lib/recovery/takeover';
import { pingManager, sourceAddress } from '../lib/monitor/probes';
import type { ChangeEvent, ClusterFiles } from '../lib/records/cluster-api';
import { fromProblem } from '../lib/records/records';
import { sendEditsToBackupsInHand, warmBackupStreams } from '../lib/recovery/role-catch-up';
import { ReplicatedStore } from '../lib/sem/replicated-store';

interface StarterConfig {
  name?: string;
  store?: string;
  procedureDir?: string;
  confirmWait?: string | number;
  maxOdAttempts?: string | number;
  roleMode?: 'admin-api' | 'none';
  adminPort?: string | number;
  /** ssh: after the resume, wait for the OD's SSH banner before the install (a flow without it: none). */
  readiness?: 'ssh' | 'none';
  /** A folder on this VM whose procedures are copied to every real server (empty: copied by hand). */
  procedureSource?: string;
  /** Take over a recovery stalled this long whose manager is gone (s); 0: never. */
  takeover?: string | number;
}

/** How often stalled recoveries are looked for. */
const TAKEOVER_CHECK_MS = 2000;

/** How often the procedure folder is brought in step on every real server. */
const PROCEDURE_SYNC_MS = 60_000;

const CLOSE_DEADLINE_MS = 10_000;

/** The rehearsal of each backup starter of this runtime (the endpoint uses the first). */
type Rehearse = (target: unknown) => Promise<Rehearsal>;
const rehearsers = new Map<string, Rehearse>();

interface Res {
  status(code: number): Res;
  json(v: unknown): void;
}

export = function (RED: RED) {
  function P2pBackupStarterNode(this: any, config: StarterConfig) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = translator(RED);
    const { files, status } = useStore(RED, node, config.store);
    const running = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
    let settingsError: string | undefined;
    let procedureDir = DEFAULT_PROCEDURE_DIR;
    try {
      procedureDir = checkDir((config.procedureDir || DEFAULT_PROCEDURE_DIR).trim());
    } catch (e) {
      settingsError = (e as Error).message;
    }
    const adminPort = Number(config.adminPort || 1880);
    if (!Number.isInteger(adminPort) || adminPort < 1 || adminPort > 65535) settingsError = common(t, 'badAdminPort', { port: String(config.adminPort) });
    const roleMode = config.roleMode === 'none' ? 'none' : 'admin-api';
    const settings = {
      procedureDir,
      confirmWaitMs: seconds(config.confirmWait, 6, 0, 120),
      maxOdAttempts: Math.min(10, Math.max(1, Number(config.maxOdAttempts) || 3)),
    };
    if (settingsError) status({ fill: 'red', shape: 'ring', text: short(settingsError) });

    // Procedures reach the real servers by themselves: validated, copied where the hash differs.
    const procedureSource = (config.procedureSource || '').trim();
    let syncTimer: NodeJS.Timeout | undefined;
    let syncing: Promise<void> | undefined;
    let closing = false;
    const syncAll = async () => {
      const { files: procs, problems } = readProcedureFolder(procedureSource);
      for (const pr of problems) node.warn(`procedure ${pr.name} not copied: ${pr.why}`);
      for (const [rs, d] of realServerDrivers(RED)) {
        const host = d as Partial<ProcedureHost>;
        if (!host.fileHashes || !host.copyFile) continue;
        try {
          const r = await syncProcedures(host as ProcedureHost, procedureDir, procs);
          if (r.copied.length) node.log(`procedures copied to ${rs}:${procedureDir}: ${r.copied.join(' ')}`);
        } catch (e) {
          node.warn(`procedures not in step on ${rs}: ${(e as Error).message}`);
        }
      }
    };
    const scheduleSync = (ms: number) => {
      syncTimer = setTimeout(() => {
        syncing = syncAll()
          .catch((e) => node.warn(`procedure folder ${procedureSource}: ${(e as Error).message}`))
          .finally(() => {
            syncing = undefined;
            if (!closing) scheduleSync(PROCEDURE_SYNC_MS);
          });
      }, ms);
    };
    if (procedureSource && !settingsError) {
      if (!/^\/[A-Za-z0-9._\/-]{0,200}$/.test(procedureSource) || procedureSource.split('/').includes('..')) {
        settingsError = `procedure folder ${JSON.stringify(procedureSource)} is not an absolute path`;
        node.status({ fill: 'red', shape: 'ring', text: settingsError.slice(0, 60) });
      } else scheduleSync(1000);
    }

    const assignRole =
      roleMode === 'none'
        ? undefined
        : (role: Role) =>
            giveRole(role, {
              url: `http://${role.address}:${adminPort}`,
              signer: files!,
              timeoutMs: 5000,
              // The backup catches up from this manager at once, not at the next digest round.
              seeds: files!.identity.address,
              // Wait for the backup's store to answer as the backup: the edits then reach it at once.
              semPort: files!.port,
              readyTimeoutMs: 10_000,
            });

    const statusFor = (e: StepEvent) => {
      const step = t(`p2p-backup-starter.steps.${e.step}`);
      const text = short(t('p2p-backup-starter.status.step', { target: e.target, step, text: e.text }));
      if (e.step === 'recovered') return { fill: 'green', shape: 'dot', text } as const;
      if (e.step === 'failed') return { fill: 'red', shape: 'ring', text } as const;
      if (e.step === 'fence' && e.detail?.fence === 'host-not-reached') return { fill: 'yellow', shape: 'ring', text } as const;
      return { fill: 'blue', shape: 'ring', text } as const;
    };

    type Send = (m: (NodeMessage | null)[]) => void;
    /** Run the plan for the failure in msg.payload (a msg from the heartbeat, or a takeover's). */
    const start = (msg: NodeMessage, send: Send, done: (e?: Error) => void) => {
      if (!files) throw new Error(common(t, 'noWorkingStore'));
      const p = (msg.payload ?? {}) as Record<string, unknown>;
      const target = p.target;
      if (typeof target !== 'string' || target === '') throw new Error(common(t, 'noTarget'));
      if (running.has(target)) {
        node.warn(t('p2p-backup-starter.warn.alreadyRunning', { target }));
        return done();
      }
      {
        const abort = new AbortController();
        const drivers = realServerDrivers(RED);
        const run = runBackupPlan(
          {
            target,
            address: typeof p.address === 'string' ? p.address : undefined,
            realServer: typeof p.realServer === 'string' ? p.realServer : undefined,
            kind: typeof p.kind === 'string' ? p.kind : undefined,
            detectedBy: typeof p.detectedBy === 'string' ? p.detectedBy : files.identity.hostname,
            confirmations: Array.isArray(p.confirmations) ? p.confirmations.filter((c): c is string => typeof c === 'string') : undefined,
          },
          {
            files,
            driver: (rs) => drivers.get(rs),
            assignRole,
            isolation: registry.isolationGate(files),
            odReady:
              config.readiness === 'ssh'
                ? async (pl: Placement) => {
                    const d = drivers.get(pl.realServer) as Partial<VirshDriver> | undefined;
                    if (!d?.runner || !d.dumpxml) throw new Error(`${pl.realServer}: its driver cannot reach guests for the readiness check`);
                    await waitDomainSshReady(d as VirshDriver, guestOpener(d.runner), pl.od, pl.address, { deadlineMs: 60000, signal: abort.signal });
                  }
                : undefined,
            signal: abort.signal,
            onStep: (e) => {
              if (abort.signal.aborted) return;
              status(statusFor(e));
              // One log line per step: the recovery's story with its timings in the runtime's log.
              node.log(`${e.target}: ${e.step} ${Math.round(e.ms)} ms (at ${Math.round(e.atMs)} ms): ${e.text}`);
              // The step with its duration and the reason of its decision: the timeline and the lasting history.
              registry.step(timelineEntry(e, files.identity.hostname, Date.now()));
              if (e.step !== 'recovered' && e.step !== 'failed') send([{ topic: `recovery/${e.step}`, payload: e, failure: msg.payload }, null]);
            },
          },
          settings,
        );
        // Two failures at once: while this recovery is under way, every edit this VM makes (its
        // fence mark, its commit) goes also to the resumed ODs of the other recoveries in hand,
        // which are no members yet (lib/recovery/role-catch-up.ts sendEditsToBackupsInHand).
        const store = files instanceof ReplicatedStore ? files : undefined;
        const stopSideSends = store ? sendEditsToBackupsInHand(store, target) : undefined;
        // While this commit is to come: each recovery that reaches `recovering` here (this one, a
        // local edit, or another manager's, by its diff) has its OD resumed; this VM opens its SEM
        // stream to those ODs now, so the commit and the edits after it reach them as frames on an
        // open stream (lib/recovery/role-catch-up.ts warmBackupStreams).
        const onRecovering = (c: ChangeEvent) => {
          if (c.file !== 'problem') return;
          const status = fromProblem(c.record).status;
          if (c.local && c.record[0] === target && status === 'recovered') store?.off('change', onRecovering);
          else if (status === 'recovering' && !abort.signal.aborted) warmBackupStreams(store!);
        };
        store?.on('change', onRecovering);
        void run
          .catch(() => undefined)
          .finally(() => {
            stopSideSends?.();
            store?.off('change', onRecovering);
          });
        const finished = run.then(
          (r: RecoveryResult) => {
            running.delete(target);
            if (abort.signal.aborted) return done();
            msg.topic = 'recovered';
            msg.failure = msg.payload;
            msg.payload = r;
            send([msg, null]);
            done();
          },
          (e: Error) => {
            running.delete(target);
            if (!abort.signal.aborted) {
              status({ fill: 'red', shape: 'ring', text: short(t('p2p-backup-starter.status.failed', { target, message: e.message })) });
              const re = e instanceof RecoveryError ? e : undefined;
              send([null, { topic: 'failed', payload: { target, step: re?.step, kind: re?.kind, reason: e.message }, failure: msg.payload }]);
            }
            done(e);
          },
        );
        running.set(target, { abort, done: finished });
      }
    };

    // Takeover of stalled recoveries: when this VM last saw each problem record change.
    const takeoverMs = seconds(config.takeover, TAKEOVER_DEFAULTS.stallMs / 1000, 0, 3600);
    const lastChange = new Map<string, number>();
    const refused = new Set<string>();
    /** After an acting manager answered its ping: not asked again before this time. */
    const notBefore = new Map<string, number>();
    let takeoverTimer: NodeJS.Timeout | undefined;
    let checking = false;
    const onChange = (c: ChangeEvent) => {
      if (c.file === 'problem') lastChange.set(c.record[0], Date.now());
    };
    const checkTakeovers = async () => {
      if (!files || settingsError || checking) return;
      checking = true;
      try {
        await checkEach(files);
      } finally {
        checking = false;
      }
    };
    const checkEach = async (files: ClusterFiles) => {
      const now = Date.now();
      const view = registry.isolationView(files);
      const quorum = view ? { ok: view.state === 'majority', why: view.why } : undefined;
      const problems = files.records('problem');
      for (const rec of problems) {
        if (closing) return;
        const target = rec[0];
        if (running.has(target) || now < (notBefore.get(target) ?? 0)) continue;
        if (!lastChange.has(target)) lastChange.set(target, now);
        const x = { me: files.identity.hostname, record: rec, group: files.records('group'), problems, lastChangeMs: lastChange.get(target)!, now, quorum };
        let d = decideTakeover(x, { stallMs: takeoverMs });
        if (d.action === 'probe') {
          const r = await pingManager(d.address, files.port, 2000, d.manager, sourceAddress(files.identity.address));
          if (closing) return;
          const now2 = files.get('problem', target);
          if (!now2 || now2.join('|') !== rec.join('|')) continue; // it moved meanwhile
          d = decideTakeover({ ...x, now: Date.now(), actingAnswered: r.outcome === 'ok' }, { stallMs: takeoverMs });
          if (d.action === 'wait') notBefore.set(target, d.until);
        }
        if (d.action === 'cannot') {
          const key = `${target}:${fromProblem(rec).since}`;
          if (!refused.has(key)) {
            refused.add(key);
            node.warn(d.reason);
            registry.step({ target, step: 'takeover-refused', at: Date.now(), by: files.identity.hostname, detail: d.reason });
            node.send([null, { topic: 'takeover-refused', payload: { target, from: d.from, reason: d.reason } }]);
          }
        }
        if (d.action !== 'take-over') continue;
        node.log(`${target}: taking over the recovery from ${d.from}: ${d.reason}`);
        registry.step({ target, step: 'taken-over', at: Date.now(), by: files.identity.hostname, detail: d.reason });
        try {
          await files.edit({ file: 'problem', op: 'Mod', before: rec, record: takeoverRecord(rec, files.identity.hostname) });
        } catch (e) {
          node.warn(`${target}: takeover not written: ${(e as Error).message}`);
          continue;
        }
        const pr = fromProblem(rec);
        const msg: NodeMessage = { topic: 'takeover', payload: { target, kind: pr.kind, detectedBy: files.identity.hostname, takeoverFrom: d.from, reason: d.reason } };
        try {
          start(msg, (m) => node.send(m), (e?: Error) => (e ? node.error(e, msg) : undefined));
        } catch (e) {
          node.error(e as Error);
        }
      }
    };
    if (files && takeoverMs > 0 && !settingsError) {
      files.on('change', onChange);
      takeoverTimer = setInterval(() => {
        checkTakeovers().catch((e) => node.warn(`takeover check: ${(e as Error).message}`));
      }, TAKEOVER_CHECK_MS);
    }

    node.on('input', (msg: NodeMessage, send: Send, done: (e?: Error) => void) => {
      try {
        if (settingsError) throw new Error(settingsError);
        start(msg, send, done);
      } catch (e) {
        status({ fill: 'red', shape: 'ring', text: short((e as Error).message) });
        done(e as Error);
      }
    });

    if (files && !settingsError) {
      rehearsers.set(node.id, (target) => {
        const drivers = realServerDrivers(RED);
        return rehearse(
          { target: target as string },
          { files, driver: (rs) => drivers.get(rs), isolation: registry.isolationGate(files), roleConfigured: !!assignRole, readinessCheck: config.readiness === 'ssh' },
          settings,
        );
      });
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      rehearsers.delete(node.id);
      closing = true;
      clearTimeout(syncTimer);
      clearInterval(takeoverTimer);
      files?.off('change', onChange);
      // Stop between steps; an SSH command under way ends with its own deadline.
      for (const r of running.values()) r.abort.abort();
      const all = Promise.all([...running.values()].map((r) => r.done.catch(() => undefined)).concat(syncing ? [syncing] : []));
      finishWithin(all, CLOSE_DEADLINE_MS, () => {
        running.clear();
        done();
      });
    });
  }
  RED.nodes.registerType('p2p-backup-starter', P2pBackupStarterNode);

  RED.httpAdmin.post('/p2p-ha/rehearse', RED.auth.needsPermission('p2p-ha.read'), (req: { body?: { target?: unknown } }, res: Res) => {
    let run = rehearsers.values().next().value as Rehearse | undefined;
    let settingsFrom = 'p2p-backup-starter';
    if (!run) {
      const files = registry.primary();
      if (!files) return res.status(503).json({ error: 'no p2p-store running in this runtime' });
      settingsFrom = 'defaults';
      run = (target) => {
        const drivers = realServerDrivers(RED);
        return rehearse({ target: target as string }, { files, driver: (rs) => drivers.get(rs), isolation: registry.isolationGate(files), roleConfigured: false });
      };
    }
    run(req.body?.target).then(
      (r) => res.json({ ...r, settingsFrom }),
      (e: Error) => res.status(e instanceof RehearsalError ? 400 : 500).json({ error: e.message }),
    );
  });
};
