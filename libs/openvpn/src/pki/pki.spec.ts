import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certificateMatchesKey,
  createCa,
  createCertificateRequest,
  createCrl,
  describeCertificate,
  issueServerCertificate,
  PkiError,
  signCertificateRequest,
  verifyIssuedBy,
} from './pki';

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

  it("signs a CSR for the requester's key only: names from the CA, openssl verifies it, a CRL URL is embedded", async () => {
    const ca = await createCa({ commonName: 'CSR CA' });
    const req = await createCertificateRequest({ commonName: 'asked-for-name' });
    expect(req.csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const cert = await signCertificateRequest(ca, req.csrPem, {
      commonName: 'gw-1',
      dnsNames: ['eu.gw.example.net'],
      crlUrls: ['https://backplane.example.net/o/crl.pem'],
    });
    expect(describeCertificate(cert.certificatePem).subject).toBe('CN=gw-1');
    expect(await certificateMatchesKey(cert.certificatePem, req.privateKeyPem)).toBe(true);
    const other = await createCertificateRequest({ commonName: 'x', algorithm: 'ecdsa-p256' });
    expect(await certificateMatchesKey(cert.certificatePem, other.privateKeyPem)).toBe(false);
    if (hasOpenssl) {
      const caPath = write('csr-ca.pem', ca.certificatePem);
      const certPath = write('csr-server.pem', cert.certificatePem);
      expect(openssl('verify', '-CAfile', caPath, '-purpose', 'sslserver', certPath).status).toBe(0);
      const text = openssl('x509', '-in', certPath, '-noout', '-text').out;
      expect(text).toContain('URI:https://backplane.example.net/o/crl.pem');
      expect(text).not.toContain('asked-for-name');
    }
    // P-256 requests are accepted too
    const ec = await signCertificateRequest(ca, other.csrPem, { commonName: 'gw-ec' });
    expect(await verifyIssuedBy(ec.certificatePem, ca.certificatePem)).toBe(true);
  });

  it('refuses a request whose signature does not verify, that is not a request, or with a bad CRL URL', async () => {
    const ca = await createCa({ commonName: 'CSR CA 2', algorithm: 'ecdsa-p256' });
    const req = await createCertificateRequest({ commonName: 'gw', algorithm: 'ecdsa-p256' });
    const der = Buffer.from(req.csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 3]! ^= 0x01;
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(signCertificateRequest(ca, forged, { commonName: 'gw' })).rejects.toBeInstanceOf(PkiError);
    await expect(signCertificateRequest(ca, ca.certificatePem, { commonName: 'gw' })).rejects.toBeInstanceOf(PkiError);
    await expect(
      signCertificateRequest(ca, req.csrPem, { commonName: 'gw', crlUrls: ['javascript:alert(1)'] }),
    ).rejects.toBeInstanceOf(PkiError);
  });
});
