// An in-memory VmBackend for tests: records every effect the simulated real server asks for and
// keeps each VM's "power" state, so a test can check that a virsh command reached the backend.
import type { VmBackend } from './vm-backend';

export type MemoryVmState = 'running' | 'stopped' | 'paused';

export class MemoryBackend implements VmBackend {
  readonly calls: string[] = [];
  readonly vms = new Map<string, { state: MemoryVmState; mac?: string; source?: string }>();
  /** Make the next call of this operation fail (a backend fault), once. */
  failNext?: { op: keyof VmBackend; error: string };

  private record(op: keyof VmBackend, ...args: string[]): void {
    this.calls.push([op, ...args].join(' '));
    if (this.failNext && this.failNext.op === op) {
      const e = this.failNext.error;
      this.failNext = undefined;
      throw new Error(e);
    }
  }
  private set(name: string, state: MemoryVmState): void {
    this.vms.set(name, { ...(this.vms.get(name) ?? {}), state });
  }

  async start(name: string): Promise<void> {
    this.record('start', name);
    this.set(name, 'running');
  }
  async shutdown(name: string): Promise<void> {
    this.record('shutdown', name);
    this.set(name, 'stopped');
  }
  async destroy(name: string): Promise<void> {
    this.record('destroy', name);
    this.set(name, 'stopped');
  }
  async suspend(name: string): Promise<void> {
    this.record('suspend', name);
    this.set(name, 'paused');
  }
  async resume(name: string): Promise<void> {
    this.record('resume', name);
    this.set(name, 'running');
  }
  async clone(source: string, target: string, mac: string): Promise<void> {
    this.record('clone', source, target, mac);
    this.vms.set(target, { state: 'stopped', mac, source });
  }
  async remove(name: string): Promise<void> {
    this.record('remove', name);
    this.vms.delete(name);
  }
}
