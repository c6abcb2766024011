// This VM's identity for the p2p-store from its fields: `${NAME}` resolved from the environment,
// and an empty field taken from P2P_HOSTNAME, P2P_ADDRESS, P2P_REAL_SERVER, P2P_SERVICES (the
// hostname falls back to os.hostname()), so one exported flow serves every VM and every OD clone.
// The store validates the result (lib/sem/replicated-store.ts validateIdentity) as if typed.
import * as os from 'os';
import { fieldOrEnv, type Env } from '../../lib/records/env-value';

export interface IdentityFields {
  hostname?: string;
  address?: string;
  realServer?: string;
  services?: string;
}

export const IDENTITY_ENV = { hostname: 'P2P_HOSTNAME', address: 'P2P_ADDRESS', realServer: 'P2P_REAL_SERVER', services: 'P2P_SERVICES' } as const;

/** A required identity field left empty, with its variable not set either. */
export class MissingIdentityError extends Error {
  constructor(
    readonly field: string,
    readonly variable: string,
  ) {
    super(`${field} is empty and ${variable} is not set`);
    this.name = 'MissingIdentityError';
  }
}

export function storeIdentity(config: IdentityFields, env: Env, hostname = os.hostname()) {
  const id = {
    hostname: fieldOrEnv(config.hostname, 'hostname', env, IDENTITY_ENV.hostname) || hostname,
    address: fieldOrEnv(config.address, 'address', env, IDENTITY_ENV.address),
    realServer: fieldOrEnv(config.realServer, 'real server', env, IDENTITY_ENV.realServer),
    services: fieldOrEnv(config.services, 'services', env, IDENTITY_ENV.services),
  };
  if (!id.address) throw new MissingIdentityError('address', IDENTITY_ENV.address);
  if (!id.realServer) throw new MissingIdentityError('real server', IDENTITY_ENV.realServer);
  return id;
}
