import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkTunnelSecret, newTunnelSecret, tunnelVerifier } from './tunnel-verifier';
import { siteIdToTunnelUser, TUNNEL_USER_LENGTH, tunnelUserToSiteId } from './tunnel-user';

describe('site tunnel user', () => {
  it('fits RouterOS (at most 27 characters) and round-trips every UUID', () => {
    fc.assert(
      fc.property(fc.uuid(), (id) => {
        const user = siteIdToTunnelUser(id);
        expect(user).toHaveLength(TUNNEL_USER_LENGTH);
        expect(user.length).toBeLessThanOrEqual(27);
        expect(user).toMatch(/^[a-z2-7]+$/);
        expect(tunnelUserToSiteId(user)).toBe(id.toLowerCase());
      }),
      { numRuns: 2000 },
    );
  });

  it('matches RFC 4648 base32 (lowercase, no padding) of the 16 bytes', () => {
    expect(siteIdToTunnelUser('00000000-0000-4000-8000-000000000000')).toBe('aaaaaaaaabaabaaaaaaaaaaaaa'); // python: base64.b32encode(...).lower();
    const id = randomUUID();
    const rfc = Buffer.from(id.replace(/-/g, ''), 'hex');
    // cross-check with a naive bit-string implementation
    const bits = [...rfc].map((b) => b.toString(2).padStart(8, '0')).join('') + '00';
    const naive = bits
      .match(/.{5}/g)!
      .map((g) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(g, 2)])
      .join('');
    expect(siteIdToTunnelUser(id)).toBe(naive);
  });

  it('different sites never share a user (injective on distinct UUIDs)', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.uuid(), (a, b) => {
        fc.pre(a.toLowerCase() !== b.toLowerCase());
        expect(siteIdToTunnelUser(a)).not.toBe(siteIdToTunnelUser(b));
      }),
    );
  });

  it('refuses anything that is not a canonical encoding, without throwing', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const id = tunnelUserToSiteId(s);
        if (id !== undefined) expect(siteIdToTunnelUser(id)).toBe(s);
      }),
      { numRuns: 2000 },
    );
    const user = siteIdToTunnelUser(randomUUID());
    expect(tunnelUserToSiteId(user.toUpperCase())).toBeUndefined();
    expect(tunnelUserToSiteId(`${user}a`)).toBeUndefined();
    expect(tunnelUserToSiteId(user.slice(0, 25))).toBeUndefined();
    expect(tunnelUserToSiteId(`${user.slice(0, 25)}b`)).toBeUndefined(); // non-zero padding bits
    expect(() => siteIdToTunnelUser('not-a-uuid')).toThrow(/UUID/);
  });
});

describe('tunnel verifier', () => {
  const key = Buffer.alloc(32, 7);
  it('accepts the secret and nothing else', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        const v = tunnelVerifier(key, a);
        expect(checkTunnelSecret(key, a, v)).toBe(true);
        if (a !== b) expect(checkTunnelSecret(key, b, v)).toBe(false);
      }),
    );
  });
  it('depends on the deployment key and rejects malformed verifiers', () => {
    const s = newTunnelSecret();
    expect(Buffer.from(s, 'base64url').length * 8).toBeGreaterThanOrEqual(128);
    expect(checkTunnelSecret(Buffer.alloc(32, 8), s, tunnelVerifier(key, s))).toBe(false);
    expect(checkTunnelSecret(key, s, 'zz')).toBe(false);
  });
});
