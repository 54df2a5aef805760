import { describe, expect, it } from 'vitest';
import { clientAddress, compileTrustProxy } from './client-address';

describe('client address of a realtime handshake (TRUST_PROXY)', () => {
  it('believes X-Forwarded-For only from trusted hops, like Fastify does for REST', () => {
    const off = compileTrustProxy('');
    expect(clientAddress('::ffff:10.0.0.5', '203.0.113.7', off)).toBe('10.0.0.5');
    const lb = compileTrustProxy('10.0.0.0/8,fd00::1');
    expect(clientAddress('::ffff:10.0.0.5', '198.51.100.9, 203.0.113.7', lb)).toBe('203.0.113.7');
    expect(clientAddress('fd00::1', '203.0.113.7', lb)).toBe('203.0.113.7');
    expect(clientAddress('192.0.2.1', '203.0.113.7', lb)).toBe('192.0.2.1'); // not our balancer
    expect(clientAddress('10.0.0.5', undefined, lb)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '10.0.0.6, 203.0.113.7', lb)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.5', 'not-an-ip', lb)).toBe('10.0.0.5'); // garbage is never an address
    const hops = compileTrustProxy('2');
    expect(clientAddress('10.0.0.5', '198.51.100.9, 203.0.113.7, 10.0.0.6', hops)).toBe('203.0.113.7');
  });
});
