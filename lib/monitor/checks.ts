// The check of one target as the heartbeat runs it: the network probe of its manager and every
// service check of its group record, in parallel, each bounded by the timeout.
import { parseServiceCheck, pingManager, probeService, ProbeResult } from './probes';
import type { Member } from './ring-view';
import type { CheckResult } from './target-monitor';

function describe(r: ProbeResult): string {
  return `${r.check}: ${r.outcome}${r.detail ? ` (${r.detail})` : ''}`;
}

/** Turn the probe results into one verdict: the network probe failing makes it a network problem. */
export function verdict(results: ProbeResult[]): CheckResult {
  const failed = results.filter((r) => r.outcome !== 'ok');
  if (failed.length === 0) return { ok: true, results };
  const ping = failed.find((r) => r.check === 'ping');
  return {
    ok: false,
    kind: ping ? 'network' : 'service',
    reason: (ping ? [ping] : failed).map(describe).join('; '),
    results,
  };
}

/** One check of `member`: its manager's ping and each of its services, in parallel, sent from `localAddress`. */
export async function checkMember(member: Member, managerPort: number, timeoutMs: number, localAddress?: string): Promise<CheckResult> {
  const probes: Promise<ProbeResult>[] = [pingManager(member.address, managerPort, timeoutMs, member.hostname, localAddress)];
  for (const text of member.services) {
    let parsed;
    try {
      parsed = parseServiceCheck(text);
    } catch {
      // The group file validates services; a bad one here says nothing about the target's health.
      continue;
    }
    probes.push(probeService(member.address, parsed, timeoutMs, localAddress));
  }
  return verdict(await Promise.all(probes));
}
