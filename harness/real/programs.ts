// Which real programs the system tests and the hv benchmark need, and how to say loudly that they
// are missing. Under CI (CI=true) a missing program is a failure, never a silent skip.
import * as fs from 'fs';

export const REQUIRED: { path: string; pkg: string }[] = [
  { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { path: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  { path: '/usr/sbin/libvirtd', pkg: 'libvirt-daemon' },
  { path: '/usr/bin/virsh', pkg: 'libvirt-clients' },
  { path: '/usr/bin/virt-clone', pkg: 'virtinst' },
];

export function missingPrograms(): { path: string; pkg: string }[] {
  return REQUIRED.filter((r) => !fs.existsSync(r.path));
}

export function missingMessage(missing: { path: string; pkg: string }[]): string {
  const pkgs = [...new Set(missing.map((m) => m.pkg))].join(' ');
  return (
    `\n*** REAL PROGRAMS MISSING: ${missing.map((m) => m.path).join(', ')}\n` +
    `*** install them with: apt-get install -y --no-install-recommends ${pkgs}\n` +
    `*** (the hv system tests ${process.env.CI === 'true' ? 'FAIL under CI' : 'are SKIPPED outside CI'})\n`
  );
}
