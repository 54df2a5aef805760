import * as argon2 from 'argon2';

/**
 * argon2id at the OWASP Password Storage Cheat Sheet minimum (m = 19 MiB, t = 2, p = 1).
 * Hashes carry their parameters, so raising them later re-hashes on the next login.
 */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, ARGON2_OPTIONS);
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

export function needsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, ARGON2_OPTIONS);
}

let dummy: Promise<string> | undefined;

/**
 * For unknown users and users without a password: verifies against a hash made with the
 * same parameters, so the answer takes as long as a wrong password for a real account.
 */
export async function burnPasswordCheck(password: string): Promise<false> {
  dummy ??= hashPassword('backplane-dummy-password-for-timing');
  await verifyPassword(await dummy, password);
  return false;
}
