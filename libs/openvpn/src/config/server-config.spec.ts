import { describe, expect, it } from 'vitest';
import {
  renderManagementPasswordFile,
  renderServerConfig,
  ServerConfigError,
  type ServerConfigOptions,
} from './server-config';

const base: ServerConfigOptions = {
  caPath: '/etc/bp/ca.pem',
  certPath: '/etc/bp/server.pem',
  keyPath: '/etc/bp/server.key',
  crlPath: '/etc/bp/crl.pem',
  managementSocketPath: '/run/bp/mgmt.sock',
  managementPasswordFile: '/run/bp/mgmt.pw',
};

function directives(config: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of config.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, ...rest] = line.split(' ');
    m.set(name!, [...(m.get(name!) ?? []), rest.join(' ')]);
  }
  return m;
}

describe('renderServerConfig', () => {
  it('writes the /10 server expansion and the RouterOS-compatible settings', () => {
    const d = directives(renderServerConfig(base));
    expect(d.get('mode')).toEqual(['server']);
    expect(d.has('tls-server')).toBe(true);
    expect(d.get('proto')).toEqual(['tcp-server']);
    expect(d.get('port')).toEqual(['8443']);
    expect(d.get('dev')).toEqual(['tun']);
    expect(d.get('topology')).toEqual(['subnet']);
    expect(d.get('ifconfig')).toEqual(['100.64.0.1 255.192.0.0']);
    expect(d.get('push')).toEqual(['"topology subnet"', '"route-gateway 100.64.0.1"']);
    expect(d.has('server')).toBe(false);
    expect(d.get('data-ciphers')).toEqual(['AES-256-GCM:AES-128-GCM:AES-256-CBC:AES-128-CBC']);
    expect(d.get('data-ciphers-fallback')).toEqual(['AES-256-CBC']);
    expect(d.get('auth')).toEqual(['SHA1']);
    expect(d.get('tls-version-min')).toEqual(['1.2']);
    expect(d.get('allow-compression')).toEqual(['no']);
    expect(d.has('comp-lzo') || d.has('compress')).toBe(false);
    expect(d.get('management')).toEqual(['/run/bp/mgmt.sock unix /run/bp/mgmt.pw']);
    expect(d.has('management-client-auth')).toBe(true);
    expect(d.has('management-hold')).toBe(true);
    expect(d.get('verify-client-cert')).toEqual(['none']);
    expect(d.has('username-as-common-name')).toBe(true);
    expect(d.has('duplicate-cn')).toBe(false);
    expect(d.get('crl-verify')).toEqual(['/etc/bp/crl.pem']);
    expect(d.get('max-clients')).toEqual(['10000']);
    expect(d.get('hand-window')).toEqual(['30']);
    expect(d.get('keepalive')).toEqual(['10 60']);
  });

  it('takes the configurable values', () => {
    const d = directives(
      renderServerConfig({ ...base, port: 1194, auth: 'SHA256', maxClients: 20000, handWindow: 15, dev: 'bp-tun7' }),
    );
    expect(d.get('port')).toEqual(['1194']);
    expect(d.get('auth')).toEqual(['SHA256']);
    expect(d.get('max-clients')).toEqual(['20000']);
    expect(d.get('hand-window')).toEqual(['15']);
    expect(d.get('dev')).toEqual(['bp-tun7']);
    // DHE by default (RFC 7919 ffdhe2048 inline, for RouterOS 6 clients: ADR 0064); `none` or a file on request
    expect(d.has('dh')).toBe(false);
    expect(renderServerConfig(base)).toContain('<dh>\n-----BEGIN DH PARAMETERS-----');
    expect(directives(renderServerConfig({ ...base, dh: 'none' })).get('dh')).toEqual(['none']);
    expect(directives(renderServerConfig({ ...base, dhPath: '/etc/bp/dh.pem' })).get('dh')).toEqual(['/etc/bp/dh.pem']);
  });

  it.each<[string, Partial<ServerConfigOptions>]>([
    ['newline in a path', { caPath: '/etc/ca.pem\nscript-security 3' }],
    ['quote in a path', { certPath: '/etc/"x' }],
    ['space in a path', { keyPath: '/etc/x y' }],
    ['relative path', { crlPath: 'crl.pem' }],
    ['newline in dev', { dev: 'tun\nup /bin/sh' }],
    ['cipher with a newline', { dataCiphers: ['AES-256-GCM\nup /bin/sh'] }],
    ['auth with a space', { auth: 'SHA1 x' }],
    ['port out of range', { port: 70000 }],
    ['fractional max-clients', { maxClients: 1.5 }],
    ['bad gateway address', { gatewayAddress: '100.64.0.256' }],
    ['non-contiguous netmask', { netmask: '255.0.255.0' }],
    ['user without group', { user: 'nobody' }],
  ])('refuses %s', (_name, patch) => {
    expect(() => renderServerConfig({ ...base, ...patch })).toThrow(ServerConfigError);
  });

  it('renders the password file as one line and refuses a multi-line password', () => {
    expect(renderManagementPasswordFile('pw')).toBe('pw\n');
    expect(() => renderManagementPasswordFile('a\nb')).toThrow(ServerConfigError);
  });
});
