// Two clusters that formed around different seeds find each other (issue 16). Seen in bench:scale
// at 100 light VMs under load 60-70: S1 and S2 (the seeds) each started before the other listened,
// and every joiner reached only one of them (the other's answer missed the deadline): two clusters
// of 46 and 54 VMs formed, each listing only its own members, and stayed apart, because rounds
// ask members only and the seeds were asked only while a VM knew no peer. Now a seed whose address
// no member has is asked every few rounds. Here: A = {S1, S3} (S1's seed S2 was down when it
// started), B = {S2, S4} (S2 has no seed); S1 is the only VM with a seed in the other cluster.
// Real stores on their own loopback addresses; bounded waits, no speed asserted.
import type { ReplicatedStore } from '../../lib/sem/replicated-store';
import { LoopbackStores } from '../support/loopback-stores';
import { waitFor } from '../../harness/wait';

const SECRET = 'split-seeds-secret-0123456789abcdefg';

describe('SEM: two clusters formed around different seeds merge', function () {
  this.timeout(60_000);
  let net: LoopbackStores;
  const stores: ReplicatedStore[] = [];

  const start = async (i: number, seeds: number[]) => {
    const s = net.store(i, { seeds: seeds.map((n) => net.range.ip(n)), syncIntervalMs: 200, requestTimeoutMs: 2000 });
    stores.push(s);
    await s.start();
    return s;
  };
  const names = (s: ReplicatedStore) => s.records('group').map((r) => r[0]).sort();

  before(async () => (net = await LoopbackStores.open(4, SECRET, 'split-seeds')));
  after(async () => net?.close());

  it('A = {S1, S3} and B = {S2, S4} formed apart; S1 asks its seed S2 although it has peers, and all four list all four', async () => {
    const s1 = await start(1, [2]); // S2 not listening yet: S1 alone
    const s3 = await start(3, [1]);
    await waitFor(() => names(s1).length === 2 && names(s3).length === 2, { what: 'cluster A = S1, S3', timeoutMs: 20_000 });
    const s2 = await start(2, []);
    const s4 = await start(4, [2]);
    await waitFor(() => names(s2).length >= 2 && names(s4).length >= 2, { what: 'cluster B = S2, S4', timeoutMs: 20_000 });
    await waitFor(() => stores.every((s) => names(s).join() === 'S1,S2,S3,S4'), {
      what: 'every store listing S1..S4 (the clusters merged through the seed S2)',
      timeoutMs: 30_000,
    });
    await waitFor(() => stores.every((s) => s.digest() === s1.digest()), { what: 'identical files', timeoutMs: 30_000 });
  });
});
