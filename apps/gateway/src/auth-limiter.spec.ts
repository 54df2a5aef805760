import type { TunnelEvent } from '@backplane/gateway-link';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AuthFailureLimiter } from './auth-limiter';
import { EventOutbox } from './outbox';

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

describe('EventOutbox', () => {
  const ev = (i: number): TunnelEvent => ({ type: 'connect', gatewayId: 'g', sourceIp: `ip${i}`, at: '' });

  it('keeps events while the control plane is away and sends them in order once it is back', async () => {
    let up = false;
    const got: string[] = [];
    const box = new EventOutbox(
      (events) => {
        if (!up) return Promise.reject(new Error('down'));
        got.push(...events.map((e) => e.sourceIp));
        return Promise.resolve();
      },
      pino({ level: 'silent' }),
      100,
      2,
    );
    for (let i = 0; i < 5; i++) box.push(ev(i));
    await box.flush();
    expect(box.pending).toBe(5);
    up = true;
    await box.flush();
    expect(got).toEqual(['ip0', 'ip1', 'ip2', 'ip3', 'ip4']);
    expect(box.pending).toBe(0);
  });

  it('drops the oldest beyond its bound and counts them', () => {
    const box = new EventOutbox(() => Promise.reject(new Error('down')), pino({ level: 'silent' }), 3);
    for (let i = 0; i < 5; i++) box.push(ev(i));
    expect(box.pending).toBe(3);
    expect(box.dropped).toBe(2);
  });
});
