import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, newTotpSecret, otpauthUri, totpAt, verifyTotp } from './totp';

// RFC 6238 appendix B, SHA-1 seed "12345678901234567890", 8 digits there; the last 6 here.
const SEED = base32Encode(Buffer.from('12345678901234567890'));

describe('TOTP (RFC 6238)', () => {
  it('matches the RFC test vectors', () => {
    expect(totpAt(SEED, 59_000)).toBe('287082');
    expect(totpAt(SEED, 1_111_111_109_000)).toBe('081804');
    expect(totpAt(SEED, 1_234_567_890_000)).toBe('005924');
    expect(totpAt(SEED, 2_000_000_000_000)).toBe('279037');
  });

  it('accepts one step of clock drift either way and nothing further', () => {
    const now = 1_700_000_000_000;
    const secret = newTotpSecret();
    expect(verifyTotp(secret, totpAt(secret, now - 30_000), now)).not.toBeNull();
    expect(verifyTotp(secret, totpAt(secret, now + 30_000), now)).not.toBeNull();
    const far = totpAt(secret, now - 120_000);
    if (![-1, 0, 1].some((d) => totpAt(secret, now + d * 30_000) === far))
      expect(verifyTotp(secret, far, now)).toBeNull();
    expect(verifyTotp(secret, 'abcdef', now)).toBeNull();
  });

  it('round-trips base32 and builds an otpauth URI', () => {
    const buf = Buffer.from('any bytes \x00\xff');
    expect(base32Decode(base32Encode(buf))).toEqual(buf);
    expect(newTotpSecret()).toMatch(/^[A-Z2-7]{32}$/);
    expect(otpauthUri('ABC', 'a@b.c')).toBe(
      'otpauth://totp/Backplane%3Aa%40b.c?secret=ABC&issuer=Backplane&algorithm=SHA1&digits=6&period=30',
    );
  });
});
