// The libvirt domain XML of a real guest under software emulation (`<domain type='qemu'>`): direct
// kernel boot of the uncompressed vmlinux (PVH) with the shared initramfs, a raw root disk, a
// serial log file, and a user-mode NIC whose host port forwards are bound to 127.0.0.1 (SSH and
// the service), given through <qemu:commandline> because libvirt 9.0 rejects the passt backend.
// The guest's address is slirp's DHCP reservation (`dhcpstart`), the forwards point at it.
import type { GuestKernel } from './guest-image';

export interface GuestDomainOptions {
  name: string;
  kernel: GuestKernel;
  disk: string;
  serialLog: string;
  mac: string;
  /** The guest's address (slirp net 10.0.2.0/24, handed out by DHCP). */
  address: string;
  sshPort: number;
  servicePort: number;
  memoryMiB?: number;
}

/** The slirp netdev option string: the DHCP reservation and the two loopback forwards. */
export function userNetdev(address: string, sshPort: number, servicePort: number): string {
  return (
    `user,id=p2pnet,net=10.0.2.0/24,dhcpstart=${address},` +
    `hostfwd=tcp:127.0.0.1:${sshPort}-${address}:22,hostfwd=tcp:127.0.0.1:${servicePort}-${address}:80`
  );
}

export function guestDomainXml(o: GuestDomainOptions): string {
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${o.name}</name>
  <memory unit='MiB'>${o.memoryMiB ?? 256}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${o.kernel.vmlinux}</kernel>
    <initrd>${o.kernel.initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <on_reboot>restart</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${o.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='${o.serialLog}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='${userNetdev(o.address, o.sshPort, o.servicePort)}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=p2pnet,mac=${o.mac},bus=pci.0,addr=0x10'/>
  </qemu:commandline>
</domain>
`;
}
