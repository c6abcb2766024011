// An ed25519 key pair that ssh2 itself can read back. ssh2 1.17's generateKeyPairSync now and then
// (2 in 400 here) returns an OpenSSH private key that its own parser refuses as "Malformed
// OpenSSH private key": generate again until both halves parse.
import { utils } from 'ssh2';

export function sshKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const k = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(k.private) instanceof Error) && !(utils.parseKey(k.public) instanceof Error)) return k;
  }
  throw new Error('could not generate a readable ed25519 key pair in 20 tries');
}
