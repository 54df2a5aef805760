import { dictionary } from '@zxcvbn-ts/language-common';
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

let common: Set<string> | undefined;

/**
 * The common-password list of `@zxcvbn-ts/language-common` (49,233 passwords from leaked
 * sets, lower case; loaded once, about 1 MB). A password is refused when it, or it without
 * trailing digits and symbols (`Password2024!`), is on the list.
 */
function commonPasswords(): Set<string> {
  if (!common) {
    common = new Set((dictionary['passwords-common'] ?? []).map((p) => p.toLowerCase()));
  }
  return common;
}

/**
 * Why a new password is refused (issue 14 finding 8), or undefined: 12-256 characters, not a
 * common password, not the account's email and not containing it.
 */
export function passwordProblem(password: string, email?: string): string | undefined {
  if (password.length < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (password.length > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  const lower = password.toLowerCase();
  const list = commonPasswords();
  const stem = lower.replace(/[\d\W_]+$/u, '');
  if (list.has(lower) || (stem.length >= 6 && list.has(stem))) return 'is a commonly used password';
  if (email && lower.includes(email.toLowerCase())) return 'must not contain your email address';
  return undefined;
}
