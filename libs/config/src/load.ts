import { readFileSync } from 'node:fs';
import { VARS, type VarName, type VarValue } from './schema';

export type Env = Readonly<Record<string, string | undefined>>;

/** Raised when the configuration is invalid; lists every bad variable with the reason. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The only place that reads `process.env`. Everything else receives an `Env` (or a
 * parsed config) so tests can pass their own.
 */
export function processEnv(): Env {
  return process.env;
}

function rawValue(name: string, secret: boolean, env: Env, problems: string[]): string | undefined {
  const direct = env[name];
  const fileVar = `${name}_FILE`;
  const file = secret ? env[fileVar] : undefined;
  if (!secret && env[fileVar] !== undefined) {
    problems.push(`${fileVar}: only secrets can be read from a file; set ${name} instead`);
  }
  if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
    problems.push(`${name} and ${fileVar} are both set; set only one`);
    return undefined;
  }
  if (file !== undefined && file !== '') {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const reason = err instanceof Error && 'code' in err ? String(err.code) : 'unreadable';
      problems.push(`${fileVar}: cannot read ${file} (${reason})`);
      return undefined;
    }
  }
  return direct === '' ? undefined : direct;
}

export type ConfigOf<N extends VarName> = { readonly [K in N]: VarValue<K> };

/**
 * Validates the named variables at once and fails fast with every problem named.
 * Secrets may come from `NAME_FILE`. Values are never echoed in errors for secrets.
 */
export function parseVars<const N extends VarName>(names: readonly N[], env: Env): ConfigOf<N> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const spec = VARS[name];
    const raw = rawValue(name, spec.secret, env, problems);
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) {
      out[name] = parsed.data;
    } else {
      const reason = parsed.error.issues
        .map((i) => (raw === undefined && i.code === 'invalid_type' ? 'is required' : i.message))
        .join('; ');
      const shown = spec.secret || raw === undefined ? '' : ` (got ${JSON.stringify(raw)})`;
      problems.push(`${name}${shown}: ${reason}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<N>;
}

/** Names of every secret variable: logs redact these keys wherever they appear. */
export function secretNames(): string[] {
  return Object.values(VARS)
    .filter((v) => v.secret)
    .map((v) => v.name);
}
