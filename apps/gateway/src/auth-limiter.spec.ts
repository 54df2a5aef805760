import { describe, expect, it } from 'vitest';
import { AuthFailureLimiter } from './auth-limiter';

describe('AuthFailureLimiter', () => {
  it('blocks a source after N failures within the window and forgives it afterwards', () => {
    let now = 0;
    const l = new AuthFailureLimiter(3, 1000, 100, () => now);
    for (let i = 0; i < 3; i++) {
      expect(l.blocked('203.0.113.1')).toBe(false);
      l.fail('203.0.113.1');
    }
    expect(l.blocked('203.0.113.1')).toBe(true);
    expect(l.blocked('203.0.113.2')).toBe(false); // other sources unaffected
    now = 1001;
    expect(l.blocked('203.0.113.1')).toBe(false);
  });

  it('forgets the oldest sources first when it tracks too many (bounded memory)', () => {
    const l = new AuthFailureLimiter(1, 60_000, 2);
    l.fail('a');
    l.fail('b');
    l.fail('c');
    expect(l.blocked('a')).toBe(false);
    expect(l.blocked('b')).toBe(true);
    expect(l.blocked('c')).toBe(true);
  });
});
