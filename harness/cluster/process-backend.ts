// The VmBackend of the loopback cluster: the simulated real server's domains are Node-RED
// processes of the local cluster launcher. The simulated server keeps the libvirt-like domain
// table and output; this makes each command's effect real on a process:
//   start = spawn (with its user directory)     shutdown = SIGTERM, SIGKILL after the stop deadline
//   destroy = SIGKILL                           suspend = SIGSTOP, resume = SIGCONT
//   clone = copy the shut-off source's user directory into a new, defined-but-not-running VM with
//           its own 127.x.y.z address and port (its settings are rewritten at its first start)
//   remove = delete its user directory
// Like virsh, start does not wait for the "guest" to boot unless waitReady is set: the caller
// probes the VM (the heartbeat does) as it would a real guest.
import { Cluster, Vm, VmSpec } from './launcher';
import { VmBackend } from '../sim/vm-backend';

export interface ProcessBackendOptions {
  /** start() resolves only once the VM's admin API answers (default false, like `virsh start`). */
  waitReady?: boolean;
  /** The address of a new clone (default: the next free host number in the cluster's prefix). */
  ipFor?: (name: string) => string;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export class ProcessBackend implements VmBackend {
  constructor(
    readonly cluster: Cluster,
    private readonly opts: ProcessBackendOptions = {},
  ) {}

  /** A domain that exists (user directory, address, port) but is not running. */
  define(spec: VmSpec): Promise<Vm> {
    return this.cluster.define(spec);
  }

  vm(name: string): Vm {
    return this.cluster.vm(name);
  }

  has(name: string): boolean {
    return this.cluster.vms.some((v) => v.name === name);
  }

  async start(name: string): Promise<void> {
    const vm = this.cluster.vm(name);
    if (vm.pid !== undefined) throw new Error(`domain ${name} is already active (${vm.state})`);
    await this.cluster.start(vm, { wait: this.opts.waitReady ?? false });
  }

  async shutdown(name: string): Promise<void> {
    const vm = this.running(name, 'shutdown');
    await this.cluster.stop(vm);
  }

  async destroy(name: string): Promise<void> {
    const vm = this.cluster.vm(name);
    // A process that already died on its own is as destroyed as it gets.
    if (vm.pid === undefined) return;
    await this.cluster.kill(vm, 'SIGKILL');
  }

  async suspend(name: string): Promise<void> {
    const vm = this.running(name, 'suspend');
    if (vm.state === 'frozen') throw new Error(`domain ${name} is already suspended`);
    await this.cluster.freeze(vm);
  }

  async resume(name: string): Promise<void> {
    const vm = this.running(name, 'resume');
    if (vm.state !== 'frozen') throw new Error(`domain ${name} is not suspended (${vm.state})`);
    await this.cluster.thaw(vm);
  }

  async clone(source: string, target: string, mac: string): Promise<void> {
    const src = this.cluster.vm(source);
    // virt-clone needs a shut-off original: copying a live user directory could catch a half-written file.
    if (src.pid !== undefined && src.state !== 'frozen') {
      throw new Error(`cannot clone ${source}: it is ${src.state}; shut it off first`);
    }
    if (!MAC_RE.test(mac)) throw new Error(`MAC ${JSON.stringify(mac)} is not six hex pairs`);
    const vm = await this.cluster.clone(src, { name: target, ip: this.opts.ipFor?.(target) });
    vm.mac = mac.toLowerCase();
  }

  async remove(name: string): Promise<void> {
    await this.cluster.remove(name);
  }

  private running(name: string, op: string): Vm {
    const vm = this.cluster.vm(name);
    if (vm.pid === undefined) throw new Error(`cannot ${op} ${name}: domain is not running (${vm.state})`);
    return vm;
  }
}
