import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Tunnel secrets are random (128 bits or more), so a keyed hash is enough to store them:
 * `verifier = HMAC-SHA256(deployment verifier key, secret)`, fast enough for a reconnect
 * storm of thousands of routers, useless without the key. Not for human passwords.
 */
export const TUNNEL_SECRET_BYTES = 24;

/** A new tunnel secret: 24 random bytes as base64url (32 characters, 192 bits). */
export function newTunnelSecret(): string {
  return randomBytes(TUNNEL_SECRET_BYTES).toString('base64url');
}

/** Hex HMAC-SHA256 of the secret under the verifier key. */
export function tunnelVerifier(key: Buffer, secret: string): string {
  return createHmac('sha256', key).update(secret, 'utf8').digest('hex');
}

/** Constant-time check of a presented secret against a stored verifier. */
export function checkTunnelSecret(key: Buffer, presented: string, verifier: string): boolean {
  const expected = Buffer.from(verifier, 'hex');
  const actual = createHmac('sha256', key).update(presented, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
