// Raw SEM requests as an attacker or an insider sends them: sealed and MAC'd with a secret (or
// not), signed with a VM's key read from that VM's user directory (an insider holding that VM), or
// not.
import * as http from 'http';
import * as path from 'path';
import { mac, MAC_HEADER, responseLabel } from '../../lib/sem/sem-protocol';
import { loadOrCreateVmKey, signMessage, SIG_HEADER, VmKey } from '../../lib/sem/vm-key';
import { bodyKey, ENC_HEADER, open, seal } from '../../lib/sem/wire-crypto';

export interface WireSigner {
  /** The VM's files folder (userDir/p2p-ha). */
  folder: string;
  hostname: string;
}

export const signerOf = (userDir: string, hostname: string): WireSigner => ({ folder: path.join(userDir, 'p2p-ha'), hostname });

export function semPost(
  ip: string,
  port: number,
  route: string,
  body: string,
  o: { secret?: string | null; signer?: WireSigner; key?: VmKey; localAddress?: string; plain?: boolean } = {},
): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const label = `POST ${route}`;
  if (o.key) headers[SIG_HEADER] = signMessage(o.key, label, body);
  else if (o.signer) headers[SIG_HEADER] = signMessage(loadOrCreateVmKey(o.signer.folder, o.signer.hostname), label, body);
  if (o.secret && !o.plain) {
    body = seal(bodyKey(o.secret), label, body);
    headers[ENC_HEADER] = '1';
  }
  if (o.secret) headers[MAC_HEADER] = mac(o.secret, label, body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ip, port, path: route, method: 'POST', agent: false, headers, localAddress: o.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let text = Buffer.concat(chunks).toString('utf8');
        // An authenticated answer is sealed: open it (its reason is what the tests read).
        if (res.headers[ENC_HEADER] === '1' && o.secret) text = open(bodyKey(o.secret), responseLabel(headers[MAC_HEADER], status), text);
        resolve({ status, body: text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Make `hostname` a member of the store at ip:port the way a real VM joins: its own group record,
 * with a key of its own (made in `keyFolder`), in a diff signed by that key (edit authority G1 and
 * docs/security.md rule 5). For tests whose fixture needs other members than the VMs they run: a
 * store refuses to add another VM's record itself (edit authority applied to local edits).
 */
export async function joinAsPeer(ip: string, port: number, secret: string, keyFolder: string, record: string[], lamport = 1): Promise<VmKey> {
  const key = loadOrCreateVmKey(keyFolder, record[0]);
  const full = [...record.slice(0, 4), 'member', key.publicKey];
  const diff = { v: 1, type: 'diff', origin: record[0], seq: 1, lamport, ts: Date.now(), file: 'group', op: 'Add', record: full };
  const r = await semPost(ip, port, '/p2p/sem/diff', JSON.stringify(diff), { secret, key });
  if (r.status !== 200) throw new Error(`${record[0]} could not join: HTTP ${r.status} ${r.body}`);
  return key;
}
