// Setup shared by the hv system tests: the real programs must be there; say so loudly when they
// are not, and under CI fail instead of skipping.
import { missingMessage, missingPrograms } from '../../harness/real/programs';

export function requireRealPrograms(
  ctx: { skip(): void },
  missing = missingPrograms(),
  notRoot = typeof process.getuid === 'function' && process.getuid() !== 0,
): void {
  if (missing.length === 0 && !notRoot) return;
  const msg = missing.length ? missingMessage(missing) : '\n*** the hv system tests need root (sshd, useradd, libvirtd)\n';
  console.error(msg);
  if (process.env.CI === 'true') throw new Error(msg.trim());
  ctx.skip();
}
