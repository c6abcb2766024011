// libvirt's output, as captured from virsh 9.0.0 (test driver through libvirtd) and virt-clone
// 4.1.0 on Debian 12. The simulated real server prints exactly this, so a parser that works on the
// sim works on the real thing; the shared driver tests run against both to keep it so.
//
// Captured (cat -A):
//    Id   Name   State$
//   -----------------------$
//    1    test   running$
//    -    ods1   shut off$
//   $
// A table: one leading space, each cell padded to its column's width (the widest of header and
// cells) and followed by three spaces, except the last, which is not padded; a dash line as long
// as the padded row plus two; rows; one empty line.

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    ' ' + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]) + '   ')).join('');
  const full = 1 + widths.reduce((a, w) => a + w, 0) + 3 * (widths.length - 1);
  return [line(headers), '-'.repeat(full + 2), ...rows.map(line), ''].join('\n') + '\n';
}

/** The success messages on stdout (each followed by an empty line). */
export const ok = {
  suspend: (n: string) => `Domain '${n}' suspended\n\n`,
  resume: (n: string) => `Domain '${n}' resumed\n\n`,
  start: (n: string) => `Domain '${n}' started\n\n`,
  shutdown: (n: string) => `Domain '${n}' is being shutdown\n\n`,
  destroy: (n: string) => `Domain '${n}' destroyed\n\n`,
  managedsave: (n: string) => `\nDomain '${n}' state saved by libvirt\n\n`,
  define: (n: string, file: string) => `Domain '${n}' defined from ${file}\n\n`,
  undefine: (n: string) => `Domain '${n}' has been undefined\n\n`,
  domstate: (s: string) => `${s}\n\n`,
  autostartOn: (n: string) => `Domain '${n}' marked as autostarted\n\n`,
  autostartOff: (n: string) => `Domain '${n}' unmarked as autostarted\n\n`,
  clone: (n: string) => `\nClone '${n}' created successfully.\n`,
};

/** virsh failures: stdout is one empty line, stderr these lines, exit code 1. */
export const fail = {
  noDomain: (n: string) => `error: failed to get domain '${n}'\n`,
  notRunning: (verb: string, n: string) => `error: Failed to ${verb} domain '${n}'\nerror: internal error: domain '${n}' not running\n`,
  notPaused: (n: string) => `error: Failed to resume domain '${n}'\nerror: internal error: domain '${n}' not paused\n`,
  /** The QEMU driver's answer to a resume of a running domain (the test driver says notPaused). */
  alreadyRunning: (n: string) => `error: Failed to resume domain '${n}'\nerror: Requested operation is not valid: domain is already running\n`,
  destroyInactive: (n: string) =>
    `error: Failed to destroy domain '${n}'\nerror: Requested operation is not valid: domain is not running\n`,
  saveInactive: (n: string) =>
    `error: Failed to save domain '${n}' state\nerror: Requested operation is not valid: domain is not running\n`,
  alreadyActive: () => `error: Domain is already active\n`,
  undefineActive: (n: string) =>
    `error: Failed to undefine domain '${n}'\nerror: Requested operation is not valid: cannot undefine an active domain\n`,
  defineExists: (n: string, uuid: string) =>
    `error: Failed to define domain from /dev/stdin\nerror: operation failed: domain '${n}' already exists with uuid ${uuid}\n`,
  defineBad: (why: string) => `error: Failed to define domain from /dev/stdin\nerror: XML error: ${why}\n`,
  // virt-clone prints to stderr, stdout empty, exit 1.
  cloneNotFound: (n: string) => `ERROR    Domain '${n}' was not found.\n`,
  cloneNotShutoff: () => `ERROR    Domain to clone must be shutoff.\n`,
  cloneNameInUse: (n: string) => `ERROR    Invalid name for new guest: Guest name '${n}' is already in use.\n`,
  cloneMacInUse: (m: string) =>
    `ERROR    The MAC address '${m}' is in use by another virtual machine. (Use --check mac_in_use=off or --check all=off to override)\n`,
};

export interface DominfoFields {
  id: number | null;
  name: string;
  uuid: string;
  state: string;
  vcpus: number;
  memKiB: number;
  persistent: boolean;
  autostart: boolean;
  managedSave: boolean;
}

/**
 * `virsh dominfo`, as captured from virsh 9.0.0 (cat -A; labels padded to 16 columns, a block
 * ends with an empty line):
 *   Id:             2$                 (- when inactive)
 *   Name:           x1$
 *   UUID:           5ff16b85-5dd0-4efa-8c49-7c10356b7ede$
 *   OS Type:        linux$
 *   State:          running$
 *   CPU(s):         1$
 *   CPU time:       1796278881.5s$     (QEMU: only while active)
 *   Max memory:     65536 KiB$
 *   Used memory:    65536 KiB$
 *   Persistent:     yes$
 *   Autostart:      disable$
 *   Managed save:   no$
 *   Security model: testSecurity$
 *   Security DOI:   $
 *   Security label: libvirt-test (enforcing)$   (only while active)
 *   $
 */
export function dominfo(d: DominfoFields): string {
  const active = d.id !== null;
  const rows: [string, string][] = [
    ['Id', active ? String(d.id) : '-'],
    ['Name', d.name],
    ['UUID', d.uuid],
    ['OS Type', 'linux'],
    ['State', d.state],
    ['CPU(s)', String(d.vcpus)],
    ...(active ? [['CPU time', '1.5s'] as [string, string]] : []),
    ['Max memory', `${d.memKiB} KiB`],
    ['Used memory', `${d.memKiB} KiB`],
    ['Persistent', d.persistent ? 'yes' : 'no'],
    ['Autostart', d.autostart ? 'enable' : 'disable'],
    ['Managed save', d.managedSave ? 'yes' : 'no'],
    ['Security model', 'testSecurity'],
    ['Security DOI', ''],
    ...(active ? [['Security label', 'libvirt-test (enforcing)'] as [string, string]] : []),
  ];
  return rows.map(([k, v]) => `${k}:`.padEnd(16) + v + '\n').join('') + '\n';
}
