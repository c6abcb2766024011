import * as net from 'net';

function tryListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** A port free on every given address (other programs may listen on this machine). */
export async function freePort(hosts: string[], from = 20000 + Math.floor(Math.random() * 20000)): Promise<number> {
  for (let p = from; p < from + 2000; p++) {
    let ok = true;
    for (const h of hosts) if (!(await tryListen(h, p))) ok = false;
    if (ok) return p;
  }
  throw new Error(`no port free on ${hosts.join(', ')} near ${from}`);
}
