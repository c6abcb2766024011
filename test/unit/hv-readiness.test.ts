// Readiness (SSH banner with deadline and typed failure), the guest's SSH endpoint from its XML,
// and the default post-clone XML hook (per-VM paths, MAC, DHCP reservation, forwards).
import * as assert from 'assert';
import * as net from 'net';
import { probeSshBanner, ReadinessError, sshEndpoint, tcpOpener, waitSshReady } from '../../lib/hv/readiness';
import { defaultForwardPort, defaultPostCloneXml } from '../../lib/hv/guest-reidentify';

const TEMPLATE = `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>od7</name>
  <devices>
    <serial type='file'>
      <source path='/var/lib/guests/ods.log'/>
    </serial>
    <console type='file'>
      <source path='/var/lib/guests/ods.log'/>
    </console>
  </devices>
  <qemu:commandline>
    <qemu:arg value='user,id=p2pnet,net=10.0.2.0/24,dhcpstart=10.0.2.15,hostfwd=tcp:127.0.0.1:22990-10.0.2.15:22,hostfwd=tcp:127.0.0.1:22991-10.0.2.15:80'/>
    <qemu:arg value='virtio-net-pci,netdev=p2pnet,mac=52:54:00:00:00:10,bus=pci.0,addr=0x10'/>
  </qemu:commandline>
</domain>`;

function server(onConn: (s: net.Socket) => void): Promise<{ port: number; close(): void }> {
  return new Promise((resolve) => {
    const socks: net.Socket[] = [];
    const srv = net.createServer((s) => {
      socks.push(s);
      onConn(s);
    });
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        port: (srv.address() as net.AddressInfo).port,
        close: () => {
          socks.forEach((s) => s.destroy());
          srv.close();
        },
      }),
    );
  });
}

describe('hv readiness: the SSH banner, not the launch', () => {
  it('reads the banner line of an SSH server', async () => {
    const s = await server((c) => c.write('SSH-2.0-dropbear_2022.83\r\n'));
    try {
      assert.strictEqual(await probeSshBanner(tcpOpener({ host: '127.0.0.1', port: s.port }), 1000), 'SSH-2.0-dropbear_2022.83');
    } finally {
      s.close();
    }
  });

  it('does not count an accepted connection that says nothing (a user-mode forward to a booting guest) as ready', async () => {
    const s = await server(() => undefined);
    try {
      await assert.rejects(probeSshBanner(tcpOpener({ host: '127.0.0.1', port: s.port }), 200), /no SSH banner within 200 ms/);
      const e = await waitSshReady(tcpOpener({ host: '127.0.0.1', port: s.port }), { deadlineMs: 700, probeMs: 150, intervalMs: 50, what: 'od9' }).catch((x) => x);
      assert.ok(e instanceof ReadinessError, String(e));
      assert.strictEqual(e.kind, 'not-ready');
      assert.match(e.message, /^od9 did not answer SSH within 700 ms/);
      assert.match(e.lastCause, /no SSH banner/);
    } finally {
      s.close();
    }
  });

  it('waits through refusals and resets until the banner comes', async () => {
    let n = 0;
    const s = await server((c) => (++n < 3 ? c.destroy() : c.write('SSH-2.0-OpenSSH_9.2\r\n')));
    try {
      const r = await waitSshReady(tcpOpener({ host: '127.0.0.1', port: s.port }), { deadlineMs: 5000, intervalMs: 20 });
      assert.strictEqual(r.banner, 'SSH-2.0-OpenSSH_9.2');
      assert.strictEqual(r.attempts, 3);
    } finally {
      s.close();
    }
  });

  it('finds the SSH endpoint: a loopback forward to guest port 22, else the address', () => {
    assert.deepStrictEqual(sshEndpoint(TEMPLATE, '10.0.2.15'), { host: '127.0.0.1', port: 22990 });
    assert.deepStrictEqual(sshEndpoint('<domain><name>x</name></domain>', '192.0.2.7'), { host: '192.0.2.7', port: 22 });
    assert.throws(() => sshEndpoint('<domain/>', 'a b'), /hostname/);
  });
});

describe('the default post-clone XML hook', () => {
  const ctx = { od: 'od7', ods: 'ods', address: '10.0.2.23', realServer: 'RS1', mac: '52:54:00:ab:cd:ef' };
  it('renames per-VM log files, sets the MAC, the DHCP reservation and each forward', () => {
    const out = defaultPostCloneXml(TEMPLATE, ctx, (gp) => (gp === 22 ? 24022 : 24080));
    assert.strictEqual((out.match(/\/var\/lib\/guests\/od7\.log/g) ?? []).length, 2);
    assert.ok(!out.includes('ods.log'));
    assert.ok(out.includes('dhcpstart=10.0.2.23,'));
    assert.ok(out.includes('hostfwd=tcp:127.0.0.1:24022-10.0.2.23:22,hostfwd=tcp:127.0.0.1:24080-10.0.2.23:80'));
    assert.ok(out.includes('mac=52:54:00:ab:cd:ef,bus=pci.0'));
    assert.deepStrictEqual(sshEndpoint(out, ctx.address), { host: '127.0.0.1', port: 24022 });
  });
  it('derives distinct default ports per address and guest port', () => {
    assert.strictEqual(defaultForwardPort(22, '10.0.2.23'), 20000 + 22 * 256 + 23);
    assert.notStrictEqual(defaultForwardPort(22, '10.0.2.23'), defaultForwardPort(80, '10.0.2.23'));
    assert.throws(() => defaultForwardPort(22, 'host.example'), /cannot derive/);
  });
  it('refuses a bad MAC or OD name instead of writing it into the XML', () => {
    assert.throws(() => defaultPostCloneXml(TEMPLATE, { ...ctx, mac: 'zz' }));
    assert.throws(() => defaultPostCloneXml(TEMPLATE, { ...ctx, od: "x'/><evil" }));
  });
});
