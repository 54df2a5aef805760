/**
 * The self-signed certificate a router serves on www-ssl. EC P-256 (a few ms to make), so
 * a fleet of routers with REST does not spend seconds on RSA key generation.
 */
import { webcrypto, X509Certificate } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface RouterCertificate {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint, lower-case hex with colons (what a client pins). */
  readonly fingerprint256: string;
}

export async function selfSignedCertificate(commonName: string, hosts: readonly string[]): Promise<RouterCertificate> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const names = hosts.map((h) =>
    /^[0-9.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${commonName.replace(/[,=+<>#;\\"]/g, '_')}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + 365 * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`;
  const pem = cert.toString('pem');
  return { cert: pem, key, fingerprint256: new X509Certificate(pem).fingerprint256.toLowerCase() };
}
