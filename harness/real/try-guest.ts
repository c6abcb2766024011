// Manual check: build a guest, start the QEMU libvirtd, boot it, wait for its SSH banner, print times.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { buildOdsDisk, guestKernel } from './guest-image';
import { guestDomainXml } from './guest-domain';
import { startQemuLibvirtd } from './libvirtd';

function banner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => { s.destroy(); reject(new Error('timeout')); }, 500);
    s.once('data', (d) => { clearTimeout(t); s.destroy(); resolve(d.toString()); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

async function main() {
  let t = Date.now();
  const k = guestKernel();
  console.log('kernel', Date.now() - t, k);
  const lv = await startQemuLibvirtd();
  console.log('libvirtd', Date.now() - t);
  try {
    t = Date.now();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(lv.guestDir, 'k')]);
    const d = buildOdsDisk(path.join(lv.guestDir, 'ods.img'), { hostname: 'ods', authorizedKey: fs.readFileSync(path.join(lv.guestDir, 'k.pub'), 'utf8') });
    console.log('disk', Date.now() - t, d);
    const xml = guestDomainXml({ name: 'ods', kernel: k, disk: d.image, serialLog: path.join(lv.guestDir, 'ods.log'), mac: '52:54:00:00:00:10', address: '10.0.2.15', sshPort: 22990, servicePort: 22991 });
    fs.writeFileSync(path.join(lv.guestDir, 'ods.xml'), xml); console.log((await lv.virsh(['define', path.join(lv.guestDir, 'ods.xml')])).stdout);
    t = Date.now();
    await lv.virsh(['start', 'ods']);
    console.log('start returned', Date.now() - t);
    for (let i = 0; i < 60; i++) {
      try { const b = await banner(22990); console.log('banner', Date.now() - t, b.trim()); break; } catch { await new Promise((r) => setTimeout(r, 250)); }
    }
    console.log(execFileSync('ssh', ['-i', path.join(lv.guestDir, 'k'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-p', '22990', 'root@127.0.0.1', 'hostname; ip -4 addr show eth0; cat /etc/machine-id; wget -qO- http://127.0.0.1/']).toString());
    console.log('http from host:', execFileSync('curl', ['-s', 'http://127.0.0.1:22991/']).toString());
    await lv.virsh(['destroy', 'ods']);
    t = Date.now();
    const c = await lv.virsh(['dumpxml', 'ods']).then(() => require('util').promisify(require('child_process').execFile)('virt-clone', ['--connect', lv.uri, '--original', 'ods', '--name', 'od1', '--mac', '52:54:00:00:00:11', '--auto-clone']));
    console.log('clone', Date.now() - t, c.stdout, c.stderr);
    console.log((await lv.virsh(['dumpxml', 'od1'])).stdout);
    console.log((await lv.virsh(['domiflist', 'od1'])).stdout);
  } finally {
    console.log(fs.existsSync(path.join(lv.guestDir, 'ods.log')) ? fs.readFileSync(path.join(lv.guestDir, 'ods.log'), 'utf8').slice(-1500) : 'no log');
    await lv.stop();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
