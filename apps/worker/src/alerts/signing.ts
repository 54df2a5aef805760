import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): headers `webhook-id` (the
 * event id, stable across retries), `webhook-timestamp` (Unix seconds) and `webhook-signature`
 * = space-separated `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the key is
 * the base64 part of the `whsec_…` secret. During a rotation both the new and the previous
 * secret sign, so a receiver that still knows only one of them verifies either way.
 */

const PREFIX = 'whsec_';

export function newSigningSecret(): string {
  return PREFIX + randomBytes(32).toString('base64');
}

function keyOf(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64');
}

export function signPayload(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three headers for a body, signed with every given secret (current first). */
export function signHeaders(secrets: readonly string[], id: string, body: string, now = Date.now()): SignedHeaders {
  const ts = Math.floor(now / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': secrets.map((s) => signPayload(s, id, ts, body)).join(' '),
  };
}

/** Receiver side (tests, documentation): true when one signature matches and the timestamp is fresh. */
export function verifySignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  toleranceSeconds = 300,
  now = Date.now(),
): boolean {
  const one = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = one('webhook-id');
  const ts = Number(one('webhook-timestamp'));
  const sigs = one('webhook-signature');
  if (!id || !Number.isInteger(ts) || !sigs) return false;
  if (Math.abs(now / 1000 - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(signPayload(secret, id, ts, body));
  return sigs.split(' ').some((s) => {
    const b = Buffer.from(s);
    return b.length === expected.length && timingSafeEqual(b, expected);
  });
}
