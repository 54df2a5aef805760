import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createCa, createCrl, issueServerCertificate, type PemCertificate } from '@backplane/openvpn';

export const hasOpenvpn = spawnSync('openvpn', ['--version']).status !== null;
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const hasTun = existsSync('/dev/net/tun');
export const hasIp = spawnSync('ip', ['-V']).status === 0;

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

export function until<T>(fn: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      let v: T | undefined | false;
      try {
        v = fn();
      } catch (err) {
        return reject(err instanceof Error ? err : new Error(String(err)));
      }
      if (v !== undefined && v !== false) return resolve(v);
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 25);
    };
    tick();
  });
}
