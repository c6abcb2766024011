// The shared driver cases (test/system/hv-cases.ts) against real libvirt with the QEMU driver,
// reached over a real OpenSSH sshd: the third target beside the test driver and the simulator.
// The template is a real QEMU guest without an OS (it runs SeaBIOS and waits: it ignores ACPI,
// so shutdown is not checked), with a user-mode NIC (no libvirt network needed).
import { driverCases, type DriverTarget } from '../system/hv-cases';
import { startGuestBed, type GuestBed } from '../../harness/real/guest-env';
import { requireGuestBed } from './realvm-env';

function noOsGuest(name: string, mac: string): string {
  return (
    `<domain type='qemu'>\n  <name>${name}</name>\n  <memory unit='KiB'>65536</memory>\n  <vcpu>1</vcpu>\n` +
    `  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n` +
    `    <interface type='user'>\n      <mac address='${mac}'/>\n      <model type='virtio'/>\n    </interface>\n` +
    `    <memballoon model='none'/>\n  </devices>\n</domain>\n`
  );
}

describe('hv: driver over SSH against real libvirt with the QEMU driver', function () {
  this.timeout(120000);
  let bed: GuestBed | undefined;
  let target: DriverTarget;

  before(async function () {
    this.timeout(300000);
    requireGuestBed(this);
    bed = await startGuestBed();
    target = {
      driver: bed.driver,
      conn: bed.conn,
      fileDir: bed.sshd.userDir,
      domainType: 'qemu',
      flavor: 'qemu',
      template: noOsGuest,
      iface: { type: 'user', source: '-', model: 'virtio' },
      acpiShutdown: false,
    };
  });
  after(async function () {
    this.timeout(120000);
    await bed?.stop();
  });

  describe('shared driver cases', () => driverCases(() => target));
});
