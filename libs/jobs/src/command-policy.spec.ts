import { describe, expect, it } from 'vitest';
import { commandPolicy, redactSecrets, redactSecretText } from './command-policy';

const SITE = '0b7c1a52-6f0e-4a51-9a39-3c1f2f0d9e11';

describe('command policy', () => {
  it('operators read, never write, never get a raw value', () => {
    expect(commandPolicy('operator', SITE, '/ip/address/print').allowed).toBe(true);
    expect(commandPolicy('operator', SITE, '/ping', { address: '192.0.2.1', count: '3' }).allowed).toBe(true);
    expect(commandPolicy('operator', SITE, '/interface/ovpn-client/get', { 'value-name': 'password' })).toMatchObject({
      allowed: false,
      rule: 'write_needs_admin',
    });
    expect(commandPolicy('operator', SITE, '/export', { file: 'x' })).toMatchObject({ rule: 'export_needs_admin' });
    expect(commandPolicy('viewer', SITE, '/ip/address/print')).toMatchObject({ rule: 'viewer_read_only' });
  });

  it('admins write, but not to management objects; an empty site id (bulk) does not match empty values', () => {
    expect(commandPolicy('admin', '', '/ip/address/add', { address: '192.0.2.1/24', comment: '' }).allowed).toBe(true);
    expect(
      commandPolicy('owner', SITE, '/ppp/profile/set', { numbers: SITE, 'local-address': '1.2.3.4' }),
    ).toMatchObject({ rule: 'management_object' });
    expect(commandPolicy('owner', SITE, '/system/scheduler/remove', { numbers: 'bp-poll' })).toMatchObject({
      rule: 'management_object',
    });
    expect(commandPolicy('owner', SITE, '/system/reset-configuration')).toMatchObject({ rule: 'refused_command' });
  });

  it('redacts secret attributes in objects and in export or JSON text', () => {
    expect(redactSecrets([{ name: 'x', password: 'p1', 'wpa2-pre-shared-key': 'k' }])).toEqual([
      { name: 'x', password: '***', 'wpa2-pre-shared-key': '***' },
    ]);
    const v6export =
      '/interface ovpn-client\nadd connect-to=1.2.3.4 name=vpn password="a b" user=u\n/ppp secret add name=s secret=zz';
    const out = redactSecretText(v6export);
    expect(out).not.toContain('a b');
    expect(out).not.toContain('zz');
    expect(out).toContain('password=***');
    expect(redactSecretText('{"rows":[{"password":"p2","public-key":"pk"}]}')).toBe(
      '{"rows":[{"password":"***","public-key":"pk"}]}',
    );
  });
});
