import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export interface EncryptionKey {
  readonly id: string;
  readonly key: Buffer;
}

export interface Secrets {
  readonly jwtSigningKey: string;
  /** The first key encrypts; every key decrypts. */
  readonly encryptionKeys: readonly EncryptionKey[];
  /** Where the secrets came from, for the start-up log line (never the values). */
  readonly source: { readonly jwt: 'env' | 'file'; readonly encryption: 'env' | 'file' };
  /** True when this call created secrets.json (a first start, or a lost file). */
  readonly generated: boolean;
  readonly file: string;
}

/** One clear, actionable error for anything wrong with the secrets file. */
export class SecretsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretsError';
  }
}

const fileSchema = z.object({
  version: z.literal(1),
  createdAt: z.string(),
  jwtSigningKey: z.string().min(32),
  encryptionKeys: z.array(z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/), key: z.string() })).min(1),
});

function decodeKey(id: string, b64: string, where: string): EncryptionKey {
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 32) {
    throw new SecretsError(`${where}: encryption key "${id}" must be 32 bytes of base64, got ${key.length} bytes`);
  }
  return { id, key };
}

export function parseEncryptionKeys(value: string, where: string): EncryptionKey[] {
  const keys = value.split(',').map((pair) => {
    const idx = pair.indexOf(':');
    return decodeKey(pair.slice(0, idx), pair.slice(idx + 1), where);
  });
  const ids = new Set(keys.map((k) => k.id));
  if (ids.size !== keys.length) throw new SecretsError(`${where}: encryption key ids must be unique`);
  return keys;
}

function newKeyId(): string {
  return `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}${randomBytes(3).toString('hex')}`;
}

function generateFile(): z.infer<typeof fileSchema> {
  return {
    version: 1,
    createdAt: new Date().toISOString(),
    jwtSigningKey: randomBytes(48).toString('base64url'),
    encryptionKeys: [{ id: newKeyId(), key: randomBytes(32).toString('base64') }],
  };
}

/**
 * Writes the file atomically and exclusively: several processes starting together from
 * the same data directory end up with one set of secrets (the first link wins).
 */
function createExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

function readFile(file: string): z.infer<typeof fileSchema> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SecretsError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SecretsError(
      `${file} is corrupt (not valid JSON). Restore it from your backup; it holds the keys that decrypt stored router credentials. It was not overwritten.`,
    );
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    throw new SecretsError(
      `${file} is corrupt (${parsed.error.issues[0]?.path.join('.') ?? 'format'}: ${parsed.error.issues[0]?.message ?? 'invalid'}). Restore it from your backup. It was not overwritten.`,
    );
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) chmodSync(file, 0o600);
  return parsed.data;
}

export interface SecretsInput {
  readonly dataDir: string;
  readonly jwtSigningKey?: string | undefined;
  readonly encryptionKeys?: string | undefined;
}

/**
 * Environment variables override; otherwise `<dataDir>/secrets.json` (mode 0600) is read,
 * or generated on the first start and reused afterwards. Values are never logged.
 */
export function loadSecrets(input: SecretsInput): Secrets {
  const file = join(input.dataDir, 'secrets.json');
  const fromEnvKeys = input.encryptionKeys ? parseEncryptionKeys(input.encryptionKeys, 'ENCRYPTION_KEYS') : undefined;
  if (input.jwtSigningKey && fromEnvKeys) {
    return {
      jwtSigningKey: input.jwtSigningKey,
      encryptionKeys: fromEnvKeys,
      source: { jwt: 'env', encryption: 'env' },
      generated: false,
      file,
    };
  }
  mkdirSync(input.dataDir, { recursive: true, mode: 0o700 });
  let generated = false;
  let exists = true;
  try {
    statSync(file);
  } catch {
    exists = false;
  }
  if (!exists) generated = createExclusive(file, `${JSON.stringify(generateFile(), null, 2)}\n`);
  const stored = readFile(file);
  return {
    jwtSigningKey: input.jwtSigningKey ?? stored.jwtSigningKey,
    encryptionKeys: fromEnvKeys ?? stored.encryptionKeys.map((k) => decodeKey(k.id, k.key, file)),
    source: { jwt: input.jwtSigningKey ? 'env' : 'file', encryption: fromEnvKeys ? 'env' : 'file' },
    generated,
    file,
  };
}

/**
 * The deployment's tunnel-verifier key (HMAC key for tunnel secrets): TUNNEL_VERIFIER_KEY, or
 * `<dataDir>/tunnel-verifier.key` (0600, created once, first writer wins). The api and the
 * worker must read the same key.
 */
export function loadTunnelVerifierKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) return Buffer.from(configured, 'utf8');
  const file = join(dataDir, 'tunnel-verifier.key');
  let exists = true;
  try {
    statSync(file);
  } catch {
    exists = false;
  }
  if (!exists) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    createExclusive(file, `${randomBytes(32).toString('base64url')}\n`);
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
}
