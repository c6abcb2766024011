// What the simulated real server does to a "VM" when a virsh/virt-clone command arrives.
// The simulated real server (harness/sim/) keeps the libvirt-like domain table and output format;
// a VmBackend makes the effects real: in the loopback cluster a VM is a Node-RED process of the
// local cluster launcher (suspend = SIGSTOP, resume = SIGCONT, destroy = SIGKILL, start = spawn,
// clone = copy its user directory). Names reaching a backend were already validated.
export interface VmBackend {
  start(name: string): Promise<void>;
  shutdown(name: string): Promise<void>;
  destroy(name: string): Promise<void>;
  suspend(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  /** Make `target` a copy of the shut-off `source` (copy its user directory), with a new MAC. */
  clone(source: string, target: string, mac: string): Promise<void>;
  /** Forget a domain's files (undefine --remove-all-storage). */
  remove?(name: string): Promise<void>;
}
