import { describe, expect, it } from 'vitest';
import { authenticate, md5Response, openSession, closeSession } from './auth';
import { populate } from './defaults';
import { RouterState } from './state';

function state(): RouterState {
  const s = new RouterState({ version: '7.16', seed: 1 });
  populate(s, {
    identity: 'a',
    users: [
      { name: 'gw', password: 'pw', group: 'full', address: '100.64.0.1/32' },
      { name: 'off', password: 'pw', group: 'full', disabled: true },
    ],
    groups: [{ name: 'web-only', policy: 'read,rest-api' }],
  });
  s.insert('user', { name: 'rest', password: 'pw', group: 'web-only' });
  return s;
}

const api = (remoteAddress: string) => ({ remoteAddress, via: 'api', policy: 'api' as const });

describe('authenticate', () => {
  it('accepts the right password from an allowed address only', () => {
    const s = state();
    expect(authenticate(s, { name: 'gw', password: 'pw' }, api('100.64.0.1'))?.group).toBe('full');
    expect(authenticate(s, { name: 'gw', password: 'pw' }, api('100.64.0.2'))).toBeUndefined();
    expect(authenticate(s, { name: 'gw', password: 'PW' }, api('100.64.0.1'))).toBeUndefined();
    expect(authenticate(s, { name: 'off', password: 'pw' }, api('127.0.0.1'))).toBeUndefined();
    expect(authenticate(s, { name: 'nobody', password: '' }, api('127.0.0.1'))).toBeUndefined();
  });

  it('needs the policy of the way in', () => {
    const s = state();
    expect(authenticate(s, { name: 'rest', password: 'pw' }, api('127.0.0.1'))).toBeUndefined();
    const rest = { remoteAddress: '127.0.0.1', via: 'rest', policy: 'rest-api' as const };
    expect(authenticate(s, { name: 'rest', password: 'pw' }, rest)?.policies.has('write')).toBe(false);
  });

  it('checks MD5 challenge responses', () => {
    const s = state();
    const challenge = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const value = md5Response('pw', challenge);
    expect(authenticate(s, { name: 'gw', response: { value, challenge } }, api('100.64.0.1'))).toBeDefined();
    expect(
      authenticate(s, { name: 'gw', response: { value: `${value}0`, challenge } }, api('100.64.0.1')),
    ).toBeUndefined();
  });

  it('shows sessions in /user active and the log', () => {
    const s = state();
    const session = authenticate(s, { name: 'admin', password: '' }, api('127.0.0.1'))!;
    const id = openSession(s, session);
    expect(s.items('user/active').map((i) => i.values['name'])).toEqual(['admin']);
    closeSession(s, session, id);
    expect(s.items('user/active')).toEqual([]);
    expect(
      s
        .items('log')
        .map((i) => i.values['message'])
        .slice(-2),
    ).toEqual(['user admin logged in from 127.0.0.1 via api', 'user admin logged out from 127.0.0.1 via api']);
  });
});
