import { randomBytes } from 'node:crypto';

/** How many recovery codes enabling two-factor sign-in (or regenerating) hands out. */
export const RECOVERY_CODE_COUNT = 10;

const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no 0/o, 1/l/i
/** `xxxxx-xxxxx` (case and the dash optional when typed); never 6 digits, so never a TOTP code. */
export const RECOVERY_CODE = /^[a-z2-9]{5}-?[a-z2-9]{5}$/i;

/**
 * Ten random codes of 10 characters from a 31-letter alphabet (about 49 bits each). They are
 * stored as HMAC-SHA256 digests under the server key (not argon2): the codes are random, not
 * chosen by people, so a keyed digest cannot be brute-forced from a database dump without the
 * key, and guessing online meets the sign-in throttle (ADR 0046, ADR 0054).
 */
export function newRecoveryCodes(n = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: n }, () => {
    // rejection sampling: 248 = 8 * 31, so bytes below it map uniformly
    let out = '';
    while (out.length < 10) {
      for (const b of randomBytes(16)) if (b < 248 && out.length < 10) out += ALPHABET.charAt(b % ALPHABET.length);
    }
    return `${out.slice(0, 5)}-${out.slice(5)}`;
  });
}

/** The form that is digested: lower case, without the dash. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/-/g, '');
}
