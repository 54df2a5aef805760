import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, createCrl, describeCertificate, issueServerCertificate, PkiError, verifyIssuedBy } from './pki';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bp-pki-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}
function openssl(...args: string[]) {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('deployment PKI', () => {
  it('issues an RSA 2048 CA and a server certificate that openssl verifies, and a CRL that revokes it', async () => {
    const ca = await createCa({ commonName: 'Backplane Deployment CA', organization: 'Backplane' });
    expect(ca.certificatePem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(ca.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(describeCertificate(ca.certificatePem)).toMatchObject({
      subject: 'CN=Backplane Deployment CA, O=Backplane',
      keyAlgorithm: 'RSASSA-PKCS1-v1_5',
    });

    const server = await issueServerCertificate(ca, {
      commonName: 'gw-eu-1',
      dnsNames: ['gw-eu-1.example.net'],
      ipAddresses: ['192.0.2.10'],
    });
    const other = await issueServerCertificate(ca, { commonName: 'gw-eu-2' });
    expect(await verifyIssuedBy(server.certificatePem, ca.certificatePem)).toBe(true);
    expect(server.serialNumber).not.toBe(other.serialNumber);

    const crl = await createCrl(ca, { revoked: [{ serialNumber: other.serialNumber }] });
    expect(crl).toMatch(/^-----BEGIN X509 CRL-----\n/);
    if (!hasOpenssl) return;

    const caPath = write('ca.pem', ca.certificatePem);
    const certPath = write('server.pem', server.certificatePem);
    const otherPath = write('other.pem', other.certificatePem);
    const crlPath = write('crl.pem', crl);
    const keyPath = write('server.key', server.privateKeyPem);
    expect(openssl('verify', '-CAfile', caPath, '-purpose', 'sslserver', certPath).status).toBe(0);
    const text = openssl('x509', '-in', certPath, '-noout', '-text').out;
    expect(text).toMatch(/Public-Key: \(2048 bit\)/);
    expect(text).toMatch(/TLS Web Server Authentication/);
    expect(text).toMatch(/DNS:gw-eu-1\.example\.net, IP Address:192\.0\.2\.10/);
    expect(openssl('x509', '-in', caPath, '-noout', '-text').out).toMatch(/CA:TRUE/);
    // the key belongs to the certificate
    const pub1 = openssl('pkey', '-in', keyPath, '-pubout').out;
    const pub2 = openssl('x509', '-in', certPath, '-noout', '-pubkey').out;
    expect(pub1).toBe(pub2);
    // CRL: the revoked one fails, the other passes
    expect(openssl('verify', '-crl_check', '-CRLfile', crlPath, '-CAfile', caPath, certPath).status).toBe(0);
    const revoked = openssl('verify', '-crl_check', '-CRLfile', crlPath, '-CAfile', caPath, otherPath);
    expect(revoked.status).not.toBe(0);
    expect(revoked.out).toMatch(/certificate revoked/);
  });

  it('does ECDSA P-256 too', async () => {
    const ca = await createCa({ commonName: 'EC CA', algorithm: 'ecdsa-p256' });
    const server = await issueServerCertificate(ca, { commonName: 'gw', algorithm: 'ecdsa-p256' });
    expect(await verifyIssuedBy(server.certificatePem, ca.certificatePem)).toBe(true);
    expect(describeCertificate(server.certificatePem).keyAlgorithm).toBe('ECDSA');
    if (!hasOpenssl) return;
    const caPath = write('ec-ca.pem', ca.certificatePem);
    const certPath = write('ec-server.pem', server.certificatePem);
    expect(openssl('verify', '-CAfile', caPath, certPath).status).toBe(0);
  });

  it('rejects a certificate signed by another CA, and names that could inject', async () => {
    const a = await createCa({ commonName: 'A', algorithm: 'ecdsa-p256' });
    const b = await createCa({ commonName: 'B', algorithm: 'ecdsa-p256' });
    const s = await issueServerCertificate(a, { commonName: 'gw', algorithm: 'ecdsa-p256' });
    expect(await verifyIssuedBy(s.certificatePem, b.certificatePem)).toBe(false);
    await expect(createCa({ commonName: 'x, CN=evil' })).rejects.toBeInstanceOf(PkiError);
    await expect(issueServerCertificate(a, { commonName: 'gw', dnsNames: ['a b'] })).rejects.toBeInstanceOf(PkiError);
    await expect(createCrl(a, { revoked: [{ serialNumber: 'zz' }] })).rejects.toBeInstanceOf(PkiError);
  });
});
