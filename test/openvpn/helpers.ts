import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, createCrl, issueServerCertificate, type PemCertificate } from '@backplane/openvpn';
import { netnsMissing, type NetnsLab } from '@backplane/testing';
import { renderOvpnClientConfig } from '../../apps/routeros-sim/src';

export { until } from '@backplane/testing';

const missing = netnsMissing();
export const isRoot = !missing.includes('root');
export const hasTun = !missing.includes('/dev/net/tun');
export const hasOpenvpn = !missing.includes('openvpn');
export const hasIp = !missing.includes('iproute2 (ip)');

/** What the real-tunnel tests need and this machine lacks (warned once per file; empty: run). */
export function realTunnelsMissing(file: string): string[] {
  if (missing.length) {
    console.warn(
      `\n*** SKIPPING ${file}: needs ${missing.join(', ')} (run as root with openvpn and iproute2 installed) ***\n`,
    );
  }
  return missing;
}

export interface TestPki {
  ca: PemCertificate;
  server: PemCertificate;
  crl: string;
}

export async function makePki(): Promise<TestPki> {
  const ca = await createCa({ commonName: 'Backplane Test CA' });
  const server = await issueServerCertificate(ca, { commonName: 'gw-test' });
  const crl = await createCrl(ca);
  return { ca, server, crl };
}

/** A "gateway" and a "router" namespace joined by one veth pair (gateway 192.0.2.1, router 192.0.2.2). */
export function gatewayAndRouter(lab: NetnsLab): { gw: string; rt: string; gwIp: string; rtIp: string } {
  const gw = lab.namespace('gw');
  const rt = lab.namespace('rt');
  lab.veth({ ns: gw, address: '192.0.2.1/24' }, { ns: rt, address: '192.0.2.2/24' });
  return { gw, rt, gwIp: '192.0.2.1', rtIp: '192.0.2.2' };
}

export interface RouterOsClientOptions {
  readonly remote: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly caFile: string;
  /** RouterOS names (default aes256-cbc / sha1, what RouterOS 6 uses). */
  readonly cipher?: string;
  readonly auth?: string;
}

/**
 * An openvpn client configuration with the settings a RouterOS ovpn-client uses (the
 * simulator's own renderer: tcp-client, tun, no cipher negotiation, user/password, only the
 * CA, no compression), written to `<dir>/<name>.conf`; `extra` lines override (later wins).
 */
export function routerOsClientConfig(
  dir: string,
  name: string,
  o: RouterOsClientOptions,
  extra: readonly string[] = [],
): string {
  const authFile = join(dir, `${name}.creds`);
  writeFileSync(authFile, `${o.user}\n${o.password}\n`, { mode: 0o600 });
  chmodSync(authFile, 0o600);
  const lines = renderOvpnClientConfig(
    {
      'connect-to': o.remote,
      port: String(o.port),
      user: o.user,
      password: o.password,
      cipher: o.cipher ?? 'aes256-cbc',
      auth: o.auth ?? 'sha1',
    },
    { authFile, caFile: o.caFile },
  );
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, `${[...lines, ...extra].join('\n')}\n`);
  return file;
}
