// `${NAME}` in a setting, the way Node-RED users give one flow to many instances: every
// `${NAME}` is replaced by the environment variable NAME. Node-RED itself already replaces a
// property whose whole value is `${NAME}` when NAME is set; what reaches us still holding `${...}`
// names a variable that is not set, which is an error naming the field and the variable (never a
// silent empty value). The substituted value is then validated by the caller like a typed one.
export type Env = Record<string, string | undefined>;

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export class EnvValueError extends Error {
  constructor(
    readonly field: string,
    readonly variable: string,
  ) {
    super(`${field}: environment variable ${variable} is not set`);
    this.name = 'EnvValueError';
  }
}

/** Does the value refer to an environment variable? */
export function hasEnvRef(value: string): boolean {
  return /\$\{[A-Za-z_][A-Za-z0-9_]*\}/.test(value);
}

/** The value with every `${NAME}` replaced from env; throws EnvValueError for an unset one. */
export function resolveEnv(value: string, field: string, env: Env): string {
  return value.replace(REF, (_m, name: string) => {
    const v = env[name];
    if (v === undefined) throw new EnvValueError(field, name);
    return v;
  });
}

/** A field's value: its own (with `${NAME}` resolved), or when empty the fallback variable's. */
export function fieldOrEnv(value: string | undefined, field: string, env: Env, fallbackVar?: string): string {
  const own = (value ?? '').trim();
  if (own !== '') return resolveEnv(own, field, env).trim();
  return fallbackVar ? (env[fallbackVar] ?? '').trim() : '';
}
