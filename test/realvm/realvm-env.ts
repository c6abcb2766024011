// Setup shared by the real-guest suite: its programs must be there. Under CI (CI=true) a missing
// one fails the suite naming the apt command; elsewhere the suite is skipped loudly.
import { guestBedMissing } from '../../harness/real/guest-env';

export function requireGuestBed(ctx: { skip(): void }): void {
  const why = guestBedMissing();
  if (!why) return;
  const msg = `\n*** REAL-GUEST SUITE CANNOT RUN: ${why}\n*** (${process.env.CI === 'true' ? 'FAILS under CI' : 'SKIPPED outside CI'})\n`;
  console.error(msg);
  if (process.env.CI === 'true') throw new Error(msg.trim());
  ctx.skip();
}
