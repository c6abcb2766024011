// One isolation scenario of issue 12, run as a program inside a network namespace the test created
// (test/cluster/isolation.test.ts starts it with `ip netns exec`): the recovery cluster of the
// loopback tests (real Node-RED processes, simulated real servers), then one real server's VMs
// and its SSH endpoint cut off from the rest with iptables for 20 s, then healed. Every 100 ms
// every VM's service is asked who it serves; the result (samples, who stopped when, who recovered
// what, the state after the heal) is written as JSON for the test to judge.
//
//   node isolation-scenario.js <a|b> <result.json>
//   a: six VMs, RS2 (S2, S5, OD2) cut off: the minority side holds no monitor of both kinds
//   b: five VMs, RS1 (S1, S4, OD1) cut off: S5's P1 (S4) and P2 (S1) are both on the minority side
import * as fs from 'fs';
import * as http from 'http';
import { RecoveryCluster, rsOf } from '../recovery/recovery-cluster';
import { parseDiffLine } from '../../lib/records/diff-line';
import { fromMember } from '../../lib/records/records';
import { sleep, waitFor } from '../wait';
import { Cut } from './netns';

export interface Round {
  /** ms since the cut (negative before it). */
  t: number;
  /** vm -> the service it answered (200 only). */
  answers: Record<string, string>;
}

export interface ScenarioResult {
  scenario: string;
  minority: string[];
  majority: string[];
  cutMs: number;
  rounds: Round[];
  /** Rounds in which two VMs answered the same service: [t, service, vms]. */
  doubles: [number, string, string[]][];
  /** For each isolated member: its last answer after the cut (ms), or null. */
  lastAnswerAfterCut: Record<string, number | null>;
  /** For each isolated member: the backup that serves it after the heal, and its first answer (ms since the cut). */
  backups: Record<string, { vm: string | null; firstAnswer: number | null }>;
  /** Claims (problem records confirmed .. failed) written by minority VMs during the cut. */
  minorityClaims: string[];
  /** Failure msgs sent by minority heartbeats (their logs). */
  minorityFailures: string[];
  /** Self-fence lines of minority heartbeats. */
  selfFences: Record<string, boolean>;
  /** After the heal: does each isolated member still answer its service? */
  answersAfterHeal: Record<string, boolean>;
  /** After the heal: each isolated member's group record as the majority sees it ('absent', 'fenced', 'member'). */
  groupStateAfterHeal: Record<string, string>;
  /** The problem file of a majority member after the heal (why a recovery did not happen). */
  problemsAfterHeal: string;
  error?: string;
}

const HANDLING = new Set(['confirmed', 'fencing', 'recovering', 'recovered', 'failed']);

function ask(ip: string, port: number, from: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.request({ host: ip, port, path: '/svc', method: 'GET', agent: false, localAddress: from, headers: { Connection: 'close' } });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(null);
    }, timeoutMs);
    req.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve(res.statusCode === 200 ? body : null);
      });
      res.on('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
    req.end();
  });
}

export async function runScenario(scenario: 'a' | 'b', cutMs = 20_000): Promise<ScenarioResult> {
  const vms = scenario === 'a' ? 6 : 5;
  const cutRs = scenario === 'a' ? 'RS2' : 'RS1';
  // Starts are slow when the machine is shared: a longer deadline than the launcher's default.
  const rc = await RecoveryCluster.start({ vms, loads: [0.4, 0.4, 0.4], startTimeoutMs: 90_000 });
  const cut = new Cut();
  const members = rc.memberNames;
  const all = rc.cluster.vms.filter((v) => /^(S|OD)\d+$/.test(v.name)).map((v) => v.name);
  const onCut = (n: string) => (n.startsWith('OD') ? `RS${n.slice(2)}` : rsOf(n, 3)) === cutRs;
  const minority = all.filter(onCut);
  const majority = all.filter((n) => !onCut(n));
  const result: ScenarioResult = {
    scenario,
    minority,
    majority,
    cutMs,
    rounds: [],
    doubles: [],
    lastAnswerAfterCut: {},
    backups: {},
    minorityClaims: [],
    minorityFailures: [],
    selfFences: {},
    answersAfterHeal: {},
    groupStateAfterHeal: {},
    problemsAfterHeal: '',
  };
  const sampler = rc.range.ip(251);
  let t0 = Date.now();
  let sampling = true;
  const pending: Promise<void>[] = [];
  const sample = async () => {
    const at = Date.now() - t0;
    const names = rc.cluster.vms.filter((v) => /^(S|OD)\d+$/.test(v.name));
    const got = await Promise.all(names.map((v) => ask(v.ip, rc.uiPort, sampler, 400)));
    const answers: Record<string, string> = {};
    names.forEach((v, i) => {
      if (got[i] !== null) answers[v.name] = got[i]!;
    });
    result.rounds.push({ t: at, answers });
  };
  const sampleLoop = (async () => {
    while (sampling) {
      pending.push(sample());
      if (pending.length > 50) await Promise.all(pending.splice(0, pending.length - 10));
      await sleep(100);
    }
    await Promise.all(pending);
  })();
  try {
    // Let every heartbeat hear everyone and send its first state.
    await sleep(3000);
    const isolated = members.filter(onCut);
    const ip = (n: string) => rc.vm(n).ip;
    const rsIp = rc.sim(cutRs).address;
    t0 = Date.now();
    cut.apply(minority.map(ip), majority.map(ip), [rsIp]);
    await sleep(cutMs);
    cut.heal();
    const healedAt = Date.now() - t0;
    // The backups: group members on the majority side that serve an isolated member's name.
    const backupOf = (target: string) => {
      const g = rc.recordsOf(majority.find((n) => n.startsWith('S'))!, 'group').map(fromMember);
      return g.find((m) => m.hostname === `${target}b`);
    };
    await waitFor(() => isolated.every((t) => backupOf(t)), { what: `backups of ${isolated.join(' ')} in the group file`, timeoutMs: 30_000, intervalMs: 200 }).catch(() => undefined);
    // Watch 10 s more after the heal: the isolated originals must stay out.
    await sleep(10_000);
    sampling = false;
    await sampleLoop;
    const afterHeal = result.rounds.filter((r) => r.t > healedAt + 3000);
    for (const t of isolated) {
      const answered = result.rounds.filter((r) => r.t > 0 && r.answers[t] === t);
      result.lastAnswerAfterCut[t] = answered.length ? answered[answered.length - 1].t : null;
      const b = backupOf(t);
      const bvm = b ? (rc.cluster.vms.find((v) => v.ip === b.address)?.name ?? null) : null;
      const first = bvm ? result.rounds.find((r) => r.answers[bvm] === t) : undefined;
      result.backups[t] = { vm: bvm, firstAnswer: first ? first.t : null };
      result.answersAfterHeal[t] = afterHeal.some((r) => r.answers[t] === t);
      const rec = rc.recordsOf(majority.find((n) => n.startsWith('S'))!, 'group').find((r) => r[0] === t);
      result.groupStateAfterHeal[t] = rec ? fromMember(rec).state : 'absent';
    }
    result.problemsAfterHeal = rc.fileOf(majority.find((n) => n.startsWith('S'))!, 'problem');
    for (const r of result.rounds) {
      const by = new Map<string, string[]>();
      for (const [vm, svc] of Object.entries(r.answers)) by.set(svc, [...(by.get(svc) ?? []), vm]);
      for (const [svc, list] of by) if (list.length > 1) result.doubles.push([r.t, svc, list]);
    }
    for (const n of minority.filter((x) => x.startsWith('S'))) {
      for (const line of rc.fileOf(n, 'sem.log').split('\n')) {
        const m = /^(\S+) applied (problem, (?:Add|Mod), .*?)(?: \| (.*))?$/.exec(line);
        if (!m || !new RegExp(`origin=${n}\\b`).test(m[3] ?? '')) continue;
        const at = Date.parse(m[1]) - t0;
        if (at < 0 || at > healedAt) continue;
        const { record } = parseDiffLine(m[2]);
        if (HANDLING.has(record[3])) result.minorityClaims.push(`${n} at ${at} ms: ${m[2]}`);
      }
      const log = rc.logs(n);
      result.minorityFailures.push(...log.split('\n').filter((l) => /handled here as/.test(l)).map((l) => `${n}: ${l}`));
      result.selfFences[n] = /self-fence: isolated/.test(log);
    }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e);
  } finally {
    sampling = false;
    await sampleLoop.catch(() => undefined);
    try {
      cut.heal();
    } catch {
      /* the namespace goes anyway */
    }
    await rc.stop();
  }
  return result;
}

if (require.main === module) {
  const [scenario, out] = process.argv.slice(2);
  if ((scenario !== 'a' && scenario !== 'b') || !out) {
    console.error('usage: isolation-scenario <a|b> <result.json>');
    process.exit(2);
  }
  runScenario(scenario)
    .then((r) => {
      fs.writeFileSync(out, JSON.stringify(r));
      process.exit(0);
    })
    .catch((e: Error) => {
      console.error(e.stack ?? e.message);
      process.exit(1);
    });
}
