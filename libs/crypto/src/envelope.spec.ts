import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CryptoError, Keyring } from './envelope';

const key = (id: string) => ({ id, key: randomBytes(32) });

describe('Keyring', () => {
  it('round-trips any bytes and text with a context', () => {
    const ring = new Keyring([key('a')]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.string(), (data, ctx) => {
        const env = ring.encrypt(Buffer.from(data), ctx);
        expect(ring.decrypt(env, ctx).equals(Buffer.from(data))).toBe(true);
      }),
      { numRuns: 200 },
    );
    expect(ring.decryptText(ring.encrypt('pässwörd ✓'), '')).toBe('pässwörd ✓');
  });

  it('uses a fresh IV for every value', () => {
    const ring = new Keyring([key('a')]);
    const seen = new Set(Array.from({ length: 500 }, () => ring.encrypt('same').split(':')[2]!.slice(0, 16)));
    expect(seen.size).toBe(500);
  });

  it('prefixes the key id; a new key encrypts while old keys still decrypt', () => {
    const old = key('old');
    const before = new Keyring([old]).encrypt('secret', 'ctx');
    expect(before.startsWith('bp1:old:')).toBe(true);
    const ring = new Keyring([key('new'), old]);
    expect(ring.encrypt('x').startsWith('bp1:new:')).toBe(true);
    expect(ring.decryptText(before, 'ctx')).toBe('secret');
  });

  it('rotate re-encrypts with the active key and leaves current values alone', () => {
    const old = key('old');
    const before = new Keyring([old]).encrypt('secret', 'ctx');
    const ring = new Keyring([key('new'), old]);
    expect(ring.needsRotation(before)).toBe(true);
    const after = ring.rotate(before, 'ctx');
    expect(ring.keyIdOf(after)).toBe('new');
    expect(ring.rotate(after, 'ctx')).toBe(after);
    expect(ring.decryptText(after, 'ctx')).toBe('secret');
  });

  it('detects tampering with any byte, the key id or the context', () => {
    const ring = new Keyring([key('a'), key('b')]);
    const env = ring.encrypt('router password', 'site:1');
    const body = Buffer.from(env.split(':')[2]!, 'base64url');
    for (let i = 0; i < body.length; i++) {
      const copy = Buffer.from(body);
      copy[i] = copy[i]! ^ 0x01;
      expect(() => ring.decrypt(`bp1:a:${copy.toString('base64url')}`, 'site:1')).toThrow(CryptoError);
    }
    expect(() => ring.decrypt(env.replace('bp1:a:', 'bp1:b:'), 'site:1')).toThrow(/failed authentication/);
    expect(() => ring.decrypt(env, 'site:2')).toThrow(/failed authentication/);
  });

  it('names an unknown key and rejects garbage clearly', () => {
    const env = new Keyring([key('gone')]).encrypt('x');
    const ring = new Keyring([key('a')]);
    expect(() => ring.decrypt(env)).toThrow(/key "gone", which is not configured/);
    for (const bad of ['', 'plain', 'bp1:a', 'bp2:a:AAAA', 'bp1:a:AAAA', 'bp1:a b:AAAA']) {
      expect(() => ring.decrypt(bad)).toThrow(CryptoError);
    }
  });

  it('refuses bad keys', () => {
    expect(() => new Keyring([])).toThrow();
    expect(() => new Keyring([{ id: 'a', key: randomBytes(16) }])).toThrow(/32 bytes/);
    expect(() => new Keyring([key('a'), key('a')])).toThrow(/duplicate/);
  });
});
