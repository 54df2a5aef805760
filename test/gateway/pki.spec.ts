/**
 * The deployment PKI held by the control plane: a gateway enrolls, makes its key locally
 * and gets its server certificate from the control plane's CA (CSR); a real openvpn serves
 * with it and an openvpn client that trusts only the CA from `GET /o/ca.crt` verifies it;
 * deleting the gateway puts its serial on the CRL, and a client checking the CRL refuses it.
 * The CA key is stored only encrypted, and concurrent first requests make one CA.
 */
import 'reflect-metadata';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as x509 from '@peculiar/x509';
import { loadGatewayConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import {
  certificateMatchesKey,
  createCa,
  createCertificateRequest,
  describeCertificate,
  verifyIssuedBy,
} from '@backplane/openvpn';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { GatewayLinkClient } from '@backplane/gateway-link';
import { GatewayPki } from '../../apps/gateway/src/openvpn-runtime';
import { hasIp, hasOpenvpn, hasTun, isRoot, until } from '../openvpn/helpers';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from './control-plane';

const missing = [
  !isRoot && 'root',
  !hasTun && '/dev/net/tun',
  !hasOpenvpn && 'openvpn',
  !hasIp && 'iproute2 (ip)',
].filter(Boolean);
if (missing.length)
  console.warn(`\n*** SKIPPING the real-openvpn part of test/gateway/pki.spec.ts: needs ${missing.join(', ')} ***\n`);

async function text(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

function crlSerials(pem: string): string[] {
  return new x509.X509Crl(pem).entries.map((e) => e.serialNumber.toLowerCase());
}

describe('deployment CA in the control plane', () => {
  let cp: ControlPlane;
  const dataKey = randomBytes(32);
  const keyring = new Keyring([{ id: 'test', key: dataKey }]);

  beforeAll(async () => {
    cp = await startControlPlane('127.0.0.1', { ENCRYPTION_KEYS: `test:${dataKey.toString('base64')}` });
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
  });

  it('concurrent first requests on every endpoint create exactly one CA; its key is stored only encrypted', async () => {
    // two api modules hold the CA (onboarding: /o/ca.crt, /o/crl.pem; gateway link: certificates); none exists yet
    const enrolled = await cp.h.call('POST', '/api/v1/gateway/enroll', {
      body: { token: await cp.enrollmentToken(), name: 'gw-first' },
    });
    const csr = await createCertificateRequest({ commonName: 'first' });
    const urls = ['/o/ca.crt', '/o/ca.crt', '/o/crl.pem', '/o/ca.crt', '/o/crl.pem', '/o/ca.crt'];
    const [issued, ...answers] = await Promise.all([
      cp.h.call('POST', '/api/v1/gateway/certificate', { token: enrolled.body.credential, body: { csr: csr.csrPem } }),
      ...urls.map((u) => text(`${cp.url}${u}`)),
    ]);
    expect([issued.status, ...answers.map((a) => a.status)]).toEqual([201, ...urls.map(() => 200)]);
    const cas = new Set([
      issued.body.caPem as string,
      ...answers.filter((_, i) => urls[i] === '/o/ca.crt').map((a) => a.body),
    ]);
    expect(cas.size).toBe(1);
    const caPem = [...cas][0]!;
    expect(describeCertificate(caPem).subject).toBe('CN=Backplane Deployment CA, O=Backplane');

    const rows = await cp.h.ds.query<{ id: string; certificate_pem: string; private_key_enc: string }[]>(
      `SELECT id, certificate_pem, private_key_enc FROM pki_authorities`,
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.certificate_pem).toBe(caPem);
    expect(row.private_key_enc).not.toMatch(/PRIVATE KEY|MII/);
    // the envelope opens with the deployment keyring (and only under its context) to the CA's key
    const keyPem = keyring.decryptText(row.private_key_enc, `pki:ca:${row.id}`);
    expect(await certificateMatchesKey(caPem, keyPem)).toBe(true);
    expect(() => keyring.decryptText(row.private_key_enc, 'pki:ca:other')).toThrow();
    // and the database refuses a key in clear
    await expect(
      cp.h.ds.query(
        `INSERT INTO pki_authorities (certificate_pem, private_key_enc, serial_number, not_after, retired_at)
         VALUES ('x', $1, '01', now(), now())`,
        [keyPem],
      ),
    ).rejects.toThrow(/pki_authorities_key_not_clear/);
  });

  it('issues a certificate for a CSR sent with a gateway credential; refuses bad requests', async () => {
    const enrolled = await cp.h.call('POST', '/api/v1/gateway/enroll', {
      body: { token: await cp.enrollmentToken(), name: 'gw-csr' },
    });
    expect(enrolled.status).toBe(201);
    const credential = enrolled.body.credential as string;
    const csr = await createCertificateRequest({ commonName: 'whatever-the-gateway-says' });
    const res = await cp.h.call('POST', '/api/v1/gateway/certificate', {
      token: credential,
      body: { csr: csr.csrPem },
    });
    expect(res.status).toBe(201);
    const caPem = (await text(`${cp.url}/o/ca.crt`)).body;
    expect(res.body.caPem).toBe(caPem);
    expect(await verifyIssuedBy(res.body.certificatePem, caPem)).toBe(true);
    expect(await certificateMatchesKey(res.body.certificatePem, csr.privateKeyPem)).toBe(true);
    const facts = describeCertificate(res.body.certificatePem);
    // the CA names the certificate, not the request
    expect(facts.subject).toBe(`CN=gw-${enrolled.body.gateway.id}`);
    const cert = new x509.X509Certificate(res.body.certificatePem);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([
      { type: 'dns', value: 'gw.test' },
    ]);
    expect(JSON.stringify(cert.getExtension(x509.CRLDistributionPointsExtension)?.distributionPoints)).toContain(
      '/o/crl.pem',
    );
    const [stored] = await cp.h.ds.query<{ gateway_id: string; not_after: Date; revoked_at: Date | null }[]>(
      `SELECT gateway_id, not_after, revoked_at FROM gateway_certificates WHERE serial_number = $1`,
      [res.body.serialNumber],
    );
    expect(stored).toMatchObject({ gateway_id: enrolled.body.gateway.id, revoked_at: null });
    expect(stored!.not_after.toISOString()).toBe(res.body.notAfter);

    // no credential, a forged request, a request signed by another key
    expect((await cp.h.call('POST', '/api/v1/gateway/certificate', { body: { csr: csr.csrPem } })).status).toBe(401);
    const other = await createCertificateRequest({ commonName: 'x' });
    // the last bytes of the DER are the request's signature: flip one
    const der = Buffer.from(x509.PemConverter.decodeFirst(csr.csrPem));
    der[der.length - 5]! ^= 0x01;
    const forged = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    expect(forged).not.toBe(csr.csrPem.trim());
    const bad = await cp.h.call('POST', '/api/v1/gateway/certificate', { token: credential, body: { csr: forged } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('validation_failed');
    expect(
      (await cp.h.call('POST', '/api/v1/gateway/certificate', { token: credential, body: { csr: 'x' } })).status,
    ).toBe(400);
    expect(other.csrPem).not.toBe(csr.csrPem);

    // deleting the gateway revokes its certificate: the CRL lists the serial, signed by the CA
    expect(crlSerials((await text(`${cp.url}/o/crl.pem`)).body)).not.toContain(res.body.serialNumber);
    const del = await cp.h.call('DELETE', `/api/v1/gateways/${enrolled.body.gateway.id}`, { token: cp.token });
    expect(del.status).toBe(204);
    const crlPem = (await text(`${cp.url}/o/crl.pem`)).body;
    expect(crlSerials(crlPem)).toContain(res.body.serialNumber);
    const caCert = new x509.X509Certificate(caPem);
    expect(await new x509.X509Crl(crlPem).verify({ publicKey: caCert.publicKey })).toBe(true);
    // the deleted gateway cannot get another one
    const again = await cp.h.call('POST', '/api/v1/gateway/certificate', {
      token: credential,
      body: { csr: other.csrPem },
    });
    expect(again.status).toBe(401);
  });
});

describe.skipIf(missing.length > 0)('gateway certificate from the control plane with a real openvpn', () => {
  const id = randomBytes(3).toString('hex');
  const NS = `bppki${id}`;
  let cp: ControlPlane;
  let gw: Gateway | undefined;
  let redis: Redis;
  let dir: string;
  let site: TestSite;
  const children: ChildProcess[] = [];
  const logs: string[] = [];

  /** An openvpn client with RouterOS-style settings in the gateway's namespace; resolves with its log once it settles. */
  async function client(name: string, caPem: string, crlPem?: string): Promise<string[]> {
    writeFileSync(join(dir, `${name}.ca`), caPem);
    writeFileSync(join(dir, `${name}.creds`), `${site.user}\n${site.password}\n`, { mode: 0o600 });
    if (crlPem) writeFileSync(join(dir, `${name}.crl`), crlPem);
    const conf = [
      'client',
      'dev tun',
      'proto tcp-client',
      'remote 127.0.0.1 8443',
      'nobind',
      'cipher AES-256-CBC',
      'data-ciphers AES-256-CBC',
      'auth SHA1',
      `auth-user-pass ${join(dir, `${name}.creds`)}`,
      `ca ${join(dir, `${name}.ca`)}`,
      ...(crlPem ? [`crl-verify ${join(dir, `${name}.crl`)}`] : []),
      // records the serial of the certificate the server presented (depth 0)
      'script-security 2',
      `setenv BP_CLIENT ${name}`,
      `tls-verify ${join(dir, 'record-serial.sh')}`,
      'remote-cert-tls server',
      // both ends share the namespace: keep the client's tun unconfigured
      'ifconfig-noexec',
      'route-noexec',
      'connect-retry 1 1',
      'verb 3',
    ];
    writeFileSync(join(dir, `${name}.conf`), conf.join('\n') + '\n');
    const child = spawn('ip', ['netns', 'exec', NS, 'openvpn', '--config', join(dir, `${name}.conf`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const log: string[] = [];
    const onData = (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean));
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    return until(
      () => log.some((l) => /Initialization Sequence Completed|VERIFY ERROR|TLS Error/.test(l)) && log,
      30_000,
      `${name} to connect or fail`,
    ).finally(() => child.kill('SIGTERM'));
  }

  /** The serial (hex, no leading zeros) of the server certificate a client saw. */
  function servedSerial(name: string): string {
    const raw = readFileSync(join(dir, `serial-${name}`), 'utf8').trim();
    return raw.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bp-pki-'));
    writeFileSync(
      join(dir, 'record-serial.sh'),
      `#!/bin/sh\n[ "$1" = 0 ] && printf '%s' "$tls_serial_hex_0" > "${dir}/serial-$BP_CLIENT"\nexit 0\n`,
      { mode: 0o755 },
    );
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    cp = await startControlPlane();
    site = await cp.addSite('pki-site');
    redis = new Redis(testSettings().redisUrl);
    const config = loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: join(dir, 'data'),
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'real',
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-pki',
    });
    const logger = createLogger({
      app: 'gateway-pki-test',
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    });
    gw = await startGateway({
      config,
      logger,
      redis,
      registry: createMetricsRegistry('gateway'),
      openvpnPrefix: ['ip', 'netns', 'exec', NS],
    });
  }, 90_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await gw?.close();
    // a stopping gateway leaves openvpn running (ADR 0062): this test owns the machine
    await gw?.runtime.stop();
    redis?.disconnect();
    await cp?.close();
    spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('enrollment yields a certificate from the control-plane CA that openvpn serves and a client with that CA verifies', async () => {
    const caPem = (await text(`${cp.url}/o/ca.crt`)).body;
    const serverPem = readFileSync(gw!.pki.certPath, 'utf8');
    expect(await verifyIssuedBy(serverPem, caPem)).toBe(true);
    expect(readFileSync(gw!.pki.caPath, 'utf8')).toBe(caPem);
    // the key was made on the gateway: the control plane holds the certificate, never the key
    const [row] = await cp.h.ds.query<{ certificate_pem: string }[]>(
      `SELECT certificate_pem FROM gateway_certificates WHERE gateway_id = $1`,
      [gw!.identity.gatewayId],
    );
    expect(row!.certificate_pem).toBe(serverPem);
    expect(JSON.stringify(await cp.h.ds.query(`SELECT * FROM gateway_certificates`))).not.toContain('PRIVATE KEY');

    const ok = await client('trusting', caPem);
    expect(ok.join('\n')).toContain(`VERIFY OK: depth=0, CN=gw-${gw!.identity.gatewayId}`);
    expect(ok.join('\n')).toContain('Initialization Sequence Completed');
    // a client that trusts another CA refuses this gateway
    const stranger = await client('stranger', (await createCa({ commonName: 'Some Other CA' })).certificatePem);
    expect(stranger.join('\n')).toMatch(/VERIFY ERROR/);
    expect(stranger.join('\n')).not.toContain('Initialization Sequence Completed');
  }, 90_000);

  it('a certificate near expiry is renewed from a new CSR; openvpn serves the new one after a SIGHUP restart', async () => {
    const caPem = (await text(`${cp.url}/o/ca.crt`)).body;
    const before = describeCertificate(readFileSync(gw!.pki.certPath, 'utf8'));
    const keyBefore = readFileSync(gw!.pki.keyPath, 'utf8');
    // the same files, seen by a renewal policy that finds the certificate "near expiry"
    const renewing = new GatewayPki({
      dataDir: join(dir, 'data'),
      commonName: 'renewal',
      source: new GatewayLinkClient(cp.url, gw!.identity.credential),
      logger: createLogger({
        app: 'pki-renew',
        level: 'warn',
        destination: new Writable({ write: (_c, _e, cb) => cb() }),
      }),
      renewBeforeMs: 10 * 365 * 86_400_000,
    });
    expect(await renewing.refresh()).toBe(true);
    const after = describeCertificate(readFileSync(gw!.pki.certPath, 'utf8'));
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(readFileSync(gw!.pki.keyPath, 'utf8')).not.toBe(keyBefore);
    expect(
      await certificateMatchesKey(readFileSync(gw!.pki.certPath, 'utf8'), readFileSync(gw!.pki.keyPath, 'utf8')),
    ).toBe(true);
    const rows = await cp.h.ds.query<{ serial_number: string }[]>(
      `SELECT serial_number FROM gateway_certificates WHERE gateway_id = $1 ORDER BY issued_at`,
      [gw!.identity.gatewayId],
    );
    expect(rows.map((r) => r.serial_number)).toEqual([before.serialNumber, after.serialNumber]);

    await gw!.runtime.management.command('signal SIGHUP');
    await until(() => gw!.runtime.management.state !== 'ready' || undefined, 10_000, 'management to drop').catch(
      () => undefined,
    );
    await until(() => gw!.runtime.management.state === 'ready', 30_000, 'management back');
    const log = await client('after-renewal', caPem);
    expect(log.join('\n')).toContain('Initialization Sequence Completed');
    // the serial openvpn presents now is the renewed one
    expect(log.join('\n')).toContain(`VERIFY OK: depth=0, CN=gw-${gw!.identity.gatewayId}`);
    const hex = (serial: string) => serial.replace(/^0+/, '');
    expect(servedSerial('after-renewal')).toBe(hex(after.serialNumber));
    expect(servedSerial('trusting')).toBe(hex(before.serialNumber));
  }, 90_000);

  it("a deleted gateway's serial is on the CRL, and a client checking the CRL refuses its certificate", async () => {
    const caPem = (await text(`${cp.url}/o/ca.crt`)).body;
    const serial = describeCertificate(readFileSync(gw!.pki.certPath, 'utf8')).serialNumber;
    const before = (await text(`${cp.url}/o/crl.pem`)).body;
    expect(crlSerials(before)).not.toContain(serial);
    const withCrl = await client('crl-before', caPem, before);
    expect(withCrl.join('\n')).toContain('Initialization Sequence Completed');

    const del = await cp.h.call('DELETE', `/api/v1/gateways/${gw!.identity.gatewayId}`, { token: cp.token });
    expect(del.status).toBe(204);
    const after = (await text(`${cp.url}/o/crl.pem`)).body;
    expect(crlSerials(after)).toContain(serial);
    const refused = await client('crl-after', caPem, after);
    expect(refused.join('\n')).toMatch(/VERIFY ERROR: depth=0, error=certificate revoked/);
    expect(refused.join('\n')).not.toContain('Initialization Sequence Completed');
  }, 90_000);
});
