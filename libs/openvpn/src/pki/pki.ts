/**
 * The deployment PKI: one CA per deployment (its key stays with the control plane),
 * gateway server certificates signed by it, and a CRL. Everything comes out as PEM
 * (certificates, PKCS#8 private keys, CRL), which OpenVPN and RouterOS import as is.
 *
 * Built on @peculiar/x509 over Node's WebCrypto: keys are generated natively (an RSA 2048
 * key takes ~0.1-0.3 s), nothing is written to disk and no `openssl` binary is needed.
 * RSA 2048 is the default: RouterOS 6 clients handle RSA reliably; ECDSA P-256 is offered
 * for deployments whose routers all run RouterOS 7.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
/** What @peculiar/x509 takes as `signingAlgorithm` (its DOM `Algorithm` type is not in this project's lib). */
interface SigningAlgorithm {
  readonly name: string;
  readonly hash: string;
}
/** A public key's algorithm as WebCrypto describes it. */
interface KeyAlgorithmInfo {
  readonly name: string;
  readonly namedCurve?: string;
}
function algorithmOf(key: x509.PublicKey): KeyAlgorithmInfo {
  const algorithm: unknown = Reflect.get(key, 'algorithm');
  return algorithm as KeyAlgorithmInfo;
}

// Node's WebCrypto implements the DOM `Crypto` type, which this project's `lib` does not declare.
x509.cryptoProvider.set(webcrypto as never);

export type KeyAlgorithm = 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ecdsa-p256';

export interface PemCertificate {
  readonly certificatePem: string;
  /** PKCS#8 (`-----BEGIN PRIVATE KEY-----`). */
  readonly privateKeyPem: string;
  /** Lower-case hex, as in a CRL entry. */
  readonly serialNumber: string;
  readonly notAfter: Date;
}

export interface CreateCaOptions {
  readonly commonName: string;
  readonly organization?: string;
  readonly validityDays?: number;
  readonly algorithm?: KeyAlgorithm;
}

export interface IssueServerOptions {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validityDays?: number;
  readonly algorithm?: KeyAlgorithm;
  /** CRL distribution points (http URLs) written into the certificate, so clients can fetch the CRL. */
  readonly crlUrls?: readonly string[];
}

export interface RevokedCertificate {
  readonly serialNumber: string;
  readonly revokedAt?: Date;
}

export interface CreateCrlOptions {
  readonly revoked?: readonly RevokedCertificate[];
  /** Days until `nextUpdate` (OpenVPN refuses a CRL after nextUpdate only with `crl-verify ... dir`; keep it fresh anyway). */
  readonly validityDays?: number;
  readonly now?: Date;
}

export class PkiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PkiError';
  }
}

const DAY = 86_400_000;

function keyParams(algorithm: KeyAlgorithm): webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams {
  if (algorithm === 'ecdsa-p256') return { name: 'ECDSA', namedCurve: 'P-256' };
  const bits = Number(algorithm.slice(4));
  return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: bits };
}

function signingAlgorithm(key: CryptoKey): SigningAlgorithm {
  return key.algorithm.name === 'ECDSA'
    ? { name: 'ECDSA', hash: 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

async function generateKeys(algorithm: KeyAlgorithm): Promise<CryptoKeyPair> {
  const params = keyParams(algorithm);
  return webcrypto.subtle.generateKey(params, true, ['sign', 'verify']);
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string, cert: x509.X509Certificate): Promise<CryptoKey> {
  let der: ArrayBuffer;
  try {
    der = x509.PemConverter.decodeFirst(pem);
  } catch {
    throw new PkiError('CA private key is not PEM');
  }
  const algorithm = algorithmOf(cert.publicKey);
  const params =
    algorithm.name === 'ECDSA'
      ? { name: 'ECDSA', namedCurve: algorithm.namedCurve ?? 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return webcrypto.subtle.importKey('pkcs8', der, params, false, ['sign']);
}

/** A positive 128-bit serial, hex. */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  if (b[0] === 0) b[0] = 0x01;
  return b.toString('hex');
}

function dnPart(value: string, what: string): string {
  if (!value || value.length > 64) throw new PkiError(`${what} must be 1-64 characters`);
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\0-\x1f,+="\\<>;#]/.test(value)) throw new PkiError(`${what} contains a character not allowed in a name`);
  return value;
}

function parseCert(pem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    throw new PkiError('not a PEM certificate');
  }
}

async function finish(cert: x509.X509Certificate, privateKey: CryptoKey): Promise<PemCertificate> {
  return {
    certificatePem: cert.toString('pem') + '\n',
    privateKeyPem: (await exportPrivateKey(privateKey)) + '\n',
    serialNumber: cert.serialNumber.toLowerCase(),
    notAfter: cert.notAfter,
  };
}

/** A self-signed deployment CA (10 years by default, RSA 2048). */
export async function createCa(options: CreateCaOptions): Promise<PemCertificate> {
  const cn = dnPart(options.commonName, 'CA common name');
  const name = options.organization ? `CN=${cn}, O=${dnPart(options.organization, 'organization')}` : `CN=${cn}`;
  const keys = await generateKeys(options.algorithm ?? 'rsa-2048');
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + (options.validityDays ?? 3650) * DAY),
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return finish(cert, keys.privateKey);
}

/** A gateway's TLS server certificate (serverAuth) and its new key, signed by the CA (dev and tests). */
export async function issueServerCertificate(
  ca: Pick<PemCertificate, 'certificatePem' | 'privateKeyPem'>,
  options: IssueServerOptions,
): Promise<PemCertificate> {
  const keys = await generateKeys(options.algorithm ?? 'rsa-2048');
  const cert = await signServer(ca, keys.publicKey, options);
  return finish(cert, keys.privateKey);
}

async function signServer(
  ca: Pick<PemCertificate, 'certificatePem' | 'privateKeyPem'>,
  publicKey: CryptoKey | x509.PublicKey,
  options: IssueServerOptions,
): Promise<x509.X509Certificate> {
  const caCert = parseCert(ca.certificatePem);
  const caKey = await importPrivateKey(ca.privateKeyPem, caCert);
  const names: x509.JsonGeneralName[] = [];
  for (const d of options.dnsNames ?? []) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(d))
      throw new PkiError(`not a DNS name: ${d}`);
    names.push({ type: 'dns', value: d });
  }
  for (const ip of options.ipAddresses ?? []) {
    if (!/^[0-9a-fA-F:.]+$/.test(ip)) throw new PkiError(`not an IP address: ${ip}`);
    names.push({ type: 'ip', value: ip });
  }
  const keyAlgorithm = publicKey instanceof x509.PublicKey ? algorithmOf(publicKey).name : publicKey.algorithm.name;
  const now = Date.now();
  const notAfter = new Date(Math.min(now + (options.validityDays ?? 825) * DAY, caCert.notAfter.getTime()));
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature |
        (keyAlgorithm === 'ECDSA' ? x509.KeyUsageFlags.keyAgreement : x509.KeyUsageFlags.keyEncipherment),
      true,
    ),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  if (options.crlUrls?.length) {
    for (const u of options.crlUrls)
      if (!/^https?:\/\/[^\s"]+$/.test(u)) throw new PkiError(`not an http(s) URL: ${u}`);
    extensions.push(new x509.CRLDistributionPointsExtension([...options.crlUrls]));
  }
  return x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${dnPart(options.commonName, 'server common name')}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 5 * 60_000),
    notAfter,
    signingAlgorithm: signingAlgorithm(caKey),
    publicKey,
    signingKey: caKey,
    extensions,
  });
}

/** A certificate signing request and the private key it was made with (the key never leaves its owner). */
export interface CertificateRequest {
  readonly csrPem: string;
  /** PKCS#8. */
  readonly privateKeyPem: string;
}

/** A new key pair and a PKCS#10 request for it, signed with that key (proof of possession). */
export async function createCertificateRequest(options: {
  readonly commonName: string;
  readonly algorithm?: KeyAlgorithm;
}): Promise<CertificateRequest> {
  const keys = await generateKeys(options.algorithm ?? 'rsa-2048');
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${dnPart(options.commonName, 'request common name')}`,
    keys,
    signingAlgorithm: signingAlgorithm(keys.privateKey),
  });
  return {
    csrPem: csr.toString('pem') + '\n',
    privateKeyPem: (await exportPrivateKey(keys.privateKey)) + '\n',
  };
}

/** What the CA hands back for a request: no private key (it stays with the requester). */
export type IssuedCertificate = Omit<PemCertificate, 'privateKeyPem'>;

/**
 * Signs a gateway's server certificate for the public key in `csrPem`. The request's
 * signature must verify (its sender holds the key); its subject and extensions are
 * ignored: the CA decides the names (`options`).
 */
export async function signCertificateRequest(
  ca: Pick<PemCertificate, 'certificatePem' | 'privateKeyPem'>,
  csrPem: string,
  options: IssueServerOptions,
): Promise<IssuedCertificate> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new PkiError('not a PEM certificate request');
  }
  const algorithm = algorithmOf(csr.publicKey);
  const rsaBits = Number(Reflect.get(algorithm, 'modulusLength') ?? 0);
  if (algorithm.name === 'RSASSA-PKCS1-v1_5' || algorithm.name === 'RSA-PSS') {
    if (rsaBits && rsaBits < 2048) throw new PkiError('RSA keys must have at least 2048 bits');
  } else if (!(algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256')) {
    throw new PkiError(`unsupported key algorithm ${algorithm.name}`);
  }
  if (!(await csr.verify())) throw new PkiError('certificate request signature does not verify');
  const cert = await signServer(ca, csr.publicKey, options);
  return {
    certificatePem: cert.toString('pem') + '\n',
    serialNumber: cert.serialNumber.toLowerCase(),
    notAfter: cert.notAfter,
  };
}

/** True when the certificate carries the public key of `privateKeyPem` (a renewal must not mix them up). */
export async function certificateMatchesKey(certificatePem: string, privateKeyPem: string): Promise<boolean> {
  try {
    const cert = parseCert(certificatePem);
    const key = await importPrivateKey(privateKeyPem, cert);
    const data = randomBytes(32);
    const alg = key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: key.algorithm.name };
    const sig = await webcrypto.subtle.sign(alg, key, data);
    const pub = await webcrypto.subtle.importKey(
      'spki',
      cert.publicKey.rawData,
      key.algorithm.name === 'ECDSA'
        ? { name: 'ECDSA', namedCurve: 'P-256' }
        : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    return await webcrypto.subtle.verify(alg, pub, sig, data);
  } catch {
    return false;
  }
}

/** A CRL signed by the CA, listing the revoked serial numbers (PEM `X509 CRL`). */
export async function createCrl(
  ca: Pick<PemCertificate, 'certificatePem' | 'privateKeyPem'>,
  options: CreateCrlOptions = {},
): Promise<string> {
  const caCert = parseCert(ca.certificatePem);
  const caKey = await importPrivateKey(ca.privateKeyPem, caCert);
  const now = options.now ?? new Date();
  const entries = (options.revoked ?? []).map((r) => {
    if (!/^[0-9a-fA-F]{1,40}$/.test(r.serialNumber)) throw new PkiError(`bad serial number ${r.serialNumber}`);
    return { serialNumber: r.serialNumber.toLowerCase(), revocationDate: r.revokedAt ?? now };
  });
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subject,
    thisUpdate: new Date(now.getTime() - 5 * 60_000),
    nextUpdate: new Date(now.getTime() + (options.validityDays ?? 30) * DAY),
    signingAlgorithm: signingAlgorithm(caKey),
    signingKey: caKey,
    entries,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(caCert)],
  });
  // OpenSSL (and so OpenVPN's crl-verify) reads the `X509 CRL` PEM label.
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}

/** True when `certificatePem` was signed by `caPem` and is within its validity period. */
export async function verifyIssuedBy(certificatePem: string, caPem: string, at = new Date()): Promise<boolean> {
  const cert = parseCert(certificatePem);
  const ca = parseCert(caPem);
  return cert.verify({ publicKey: ca.publicKey, date: at });
}

/** Basic facts about a certificate, for listings and expiry checks. */
export function describeCertificate(pem: string): {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  keyAlgorithm: string;
} {
  const c = parseCert(pem);
  return {
    subject: c.subject,
    issuer: c.issuer,
    serialNumber: c.serialNumber.toLowerCase(),
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    keyAlgorithm: algorithmOf(c.publicKey).name,
  };
}
