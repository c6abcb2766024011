// The kinds of outcome a hypervisor operation can have, shared by the layer that produces them
// (lib/hv: the driver owns the command lines, so it alone decides which kind a result is) and the
// layer that acts on them (lib/recovery, which gets the driver injected and never reads an error's
// words). A kind is decided from exit codes, the SSH layer's own classification and explicit tests
// run on the host (`command -v`, `test -f`, `virsh list --all --name`), never from message text.
//
//   kind               meaning                                             decided by (lib/hv)
//   unreachable        the host was not reached (connect refused, lost)    ssh2 connection error
//   timeout            no answer within the deadline                       connect/command timer
//   closed             the connection was closed by us (redeploy)          SshConnection.close
//   host-key-mismatch  the host is not the pinned one                      host key fingerprint
//   auth-refused       the host refused our key                            ssh2 authentication level
//   program-missing    virsh / virt-clone not found on the host            exit 127 + `command -v`
//   permission-denied  found but not runnable/readable                     exit 126, `test -r`
//   domain-absent      virsh itself says no such domain                    failure + name not in `virsh list --all --name`
//   name-in-use        virt-clone's target name is taken                   failure + name in `virsh list --all --name`
//   procedure-absent   the installation procedure file is not there        failure + `test -f` false
//   procedure-failed   the procedure ran and exited non-zero               its exit code, last stderr line
//   failed             any other non-zero exit                             its exit code, last stderr line

export const HV_OUTCOME_KINDS = [
  'unreachable',
  'timeout',
  'closed',
  'host-key-mismatch',
  'auth-refused',
  'program-missing',
  'permission-denied',
  'domain-absent',
  'name-in-use',
  'procedure-absent',
  'procedure-failed',
  'failed',
] as const;

export type HvOutcomeKind = (typeof HV_OUTCOME_KINDS)[number];

/** Kinds that say the host was not reached at all: nothing is known about its domains. */
export const HOST_NOT_REACHED: readonly HvOutcomeKind[] = ['unreachable', 'timeout'];

/** The kind an error carries (an HvError or anything shaped like one), or undefined if it has none. */
export function hvKind(e: unknown): HvOutcomeKind | undefined {
  const k = (e as { kind?: unknown } | null | undefined)?.kind;
  return typeof k === 'string' && (HV_OUTCOME_KINDS as readonly string[]).includes(k) ? (k as HvOutcomeKind) : undefined;
}

/** The exit code an error carries, if any (a failed command or procedure). */
export function hvExitCode(e: unknown): number | undefined {
  const c = (e as { exitCode?: unknown } | null | undefined)?.exitCode;
  return typeof c === 'number' ? c : undefined;
}

/**
 * The words of an error, for people (step texts, the problem record's note): reported, never
 * decided on. Code in lib/recovery calls this instead of reading `.message`, so a grep for
 * `.message` there finds no decision made on words.
 */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return typeof e === 'string' ? e : String(e);
}
