import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { TokenError, TokenService } from './tokens';

describe('TokenService', () => {
  it('a verified access token is remembered only until it expires', async () => {
    const tokens = new TokenService(randomBytes(48).toString('base64url'), 60);
    const claims = {
      userId: '6f1c1d0e-8a4b-4c3d-9e2f-1a2b3c4d5e6f',
      sessionId: 'b5f0c7a2-3d4e-4f60-8a1b-2c3d4e5f6a7b',
    };
    const token = await tokens.signAccess(claims);
    expect(await tokens.verifyAccess(token)).toEqual(claims);
    expect(await tokens.verifyAccess(token)).toEqual(claims); // remembered
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 66_000); // past exp and the 5 s clock tolerance
      await expect(tokens.verifyAccess(token)).rejects.toEqual(new TokenError('expired'));
    } finally {
      vi.useRealTimers();
    }
    // Another signing key never accepts it, remembered elsewhere or not.
    await expect(
      new TokenService(randomBytes(48).toString('base64url'), 60).verifyAccess(token),
    ).rejects.toBeInstanceOf(TokenError);
  });
});
