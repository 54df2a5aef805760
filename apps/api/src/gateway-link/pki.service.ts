import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { GatewayLinkRepository, PkiRepository, type AuthorityRow, type PlatformTx } from '@backplane/db';
import { createCa, createCrl, PkiError, signCertificateRequest } from '@backplane/openvpn';
import { ApiError } from '../common/api-error';
import { API_DEPS, type ApiDeps } from '../deps';

/** What a gateway gets back for its certificate request. */
export interface GatewayCertificateBundle {
  readonly certificatePem: string;
  /** The CA chain routers trust (one CA today; two while a CA rotates). */
  readonly caPem: string;
  readonly crlPem: string;
  readonly serialNumber: string;
  readonly notAfter: string;
}

const DAY = 86_400_000;
/** A CRL is valid 30 days and re-signed when fewer than 23 are left (so about weekly, or on every revocation). */
const CRL_VALIDITY_DAYS = 30;
const CRL_REFRESH_LEFT_MS = 23 * DAY;
const GATEWAY_CERT_DAYS = 397;

interface Authority {
  readonly id: string;
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

function splitHost(host: string): { dnsNames: string[]; ipAddresses: string[] } {
  const h = host.replace(/^\[|\]$/g, '');
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(':')) return { dnsNames: [], ipAddresses: [h] };
  return { dnsNames: [h], ipAddresses: [] };
}

/**
 * The deployment CA, held by the control plane (ADR 0021): created once (advisory lock +
 * a unique "one active CA" index, so two api replicas never make two), its private key
 * stored only as a keyring envelope; gateway server certificates issued from CSRs; the
 * CRL re-signed on every revocation.
 */
@Injectable()
export class PkiService {
  private readonly repo = new PkiRepository();
  private readonly link = new GatewayLinkRepository();
  private cached: Authority | undefined;

  constructor(@Inject(API_DEPS) private readonly deps: ApiDeps) {}

  private keyContext(id: string): string {
    return `pki:ca:${id}`;
  }

  private open(row: AuthorityRow): Authority {
    return {
      id: row.id,
      certificatePem: row.certificatePem,
      privateKeyPem: this.deps.keyring.decryptText(row.privateKeyEnc, this.keyContext(row.id)),
    };
  }

  /** The active CA, created on first use. */
  async authority(): Promise<Authority> {
    if (this.cached) return this.cached;
    const found = await this.deps.db.inPlatform((tx) => this.repo.activeAuthority(tx));
    if (found) return (this.cached = this.open(found));
    // Generate outside the lock (RSA key generation takes a moment); a loser of the race discards its CA.
    const ca = await createCa({ commonName: 'Backplane Deployment CA', organization: 'Backplane' });
    const id = randomUUID();
    const row = await this.deps.db.inPlatform(async (tx) => {
      await this.repo.lockAuthority(tx);
      const existing = await this.repo.activeAuthority(tx);
      if (existing) return existing;
      const created = await this.repo.insertAuthority(tx, {
        id,
        certificatePem: ca.certificatePem,
        privateKeyEnc: this.deps.keyring.encrypt(ca.privateKeyPem, this.keyContext(id)),
        serialNumber: ca.serialNumber,
        notAfter: ca.notAfter,
      });
      await this.writeCrl(tx, this.open(created));
      this.deps.logger.warn(
        { caSerial: ca.serialNumber },
        'created the deployment CA (stored encrypted in PostgreSQL)',
      );
      return created;
    });
    return (this.cached = this.open(row));
  }

  async caPem(): Promise<string> {
    return (await this.authority()).certificatePem;
  }

  private async writeCrl(tx: PlatformTx, ca: Authority): Promise<string> {
    const revoked = await this.repo.revoked(tx, ca.id);
    const now = new Date();
    const pem = await createCrl(ca, { revoked, validityDays: CRL_VALIDITY_DAYS, now });
    await this.repo.setCrl(tx, ca.id, pem, new Date(now.getTime() + CRL_VALIDITY_DAYS * DAY));
    return pem;
  }

  /** The current CRL (PEM), re-signed when it gets old. */
  async crlPem(): Promise<string> {
    const ca = await this.authority();
    const row = await this.deps.db.inPlatform((tx) => this.repo.activeAuthority(tx));
    if (row?.crlPem && row.crlNextUpdate && row.crlNextUpdate.getTime() - Date.now() > CRL_REFRESH_LEFT_MS)
      return row.crlPem;
    return this.deps.db.inPlatform(async (tx) => {
      await this.repo.lockAuthority(tx);
      const again = await this.repo.activeAuthority(tx);
      if (again?.crlPem && again.crlNextUpdate && again.crlNextUpdate.getTime() - Date.now() > CRL_REFRESH_LEFT_MS)
        return again.crlPem;
      return this.writeCrl(tx, ca);
    });
  }

  /** Signs a gateway's server certificate for the key in its CSR (the key never leaves the gateway). */
  async issue(gatewayId: string, csrPem: string): Promise<GatewayCertificateBundle> {
    const ca = await this.authority();
    const publicHost = await this.deps.db.inPlatform((tx) => this.link.gatewayPublicHost(tx, gatewayId));
    if (publicHost === null) throw new ApiError('unauthorized', 'gateway credential is not valid');
    const commonName = `gw-${gatewayId}`;
    let cert;
    try {
      cert = await signCertificateRequest(ca, csrPem, {
        commonName,
        ...splitHost(publicHost),
        validityDays: GATEWAY_CERT_DAYS,
        crlUrls: [`${this.controllerUrl}/o/crl.pem`],
      });
    } catch (err) {
      if (err instanceof PkiError)
        throw new ApiError('validation_failed', err.message, [{ path: 'csr', message: err.message }]);
      throw err;
    }
    await this.deps.db.inPlatform((tx) =>
      this.repo.insertCertificate(tx, {
        serialNumber: cert.serialNumber,
        authorityId: ca.id,
        gatewayId,
        commonName,
        certificatePem: cert.certificatePem,
        notAfter: cert.notAfter,
      }),
    );
    return {
      certificatePem: cert.certificatePem,
      caPem: ca.certificatePem,
      crlPem: await this.crlPem(),
      serialNumber: cert.serialNumber,
      notAfter: cert.notAfter.toISOString(),
    };
  }

  /** Inside the caller's transaction (gateway deletion): revokes its certificates and re-signs the CRL. */
  async revokeGateway(tx: PlatformTx, gatewayId: string): Promise<string[]> {
    const serials = await this.repo.revokeForGateway(tx, gatewayId, 'gateway deleted');
    if (!serials.length) return serials;
    await this.repo.lockAuthority(tx);
    const row = await this.repo.activeAuthority(tx);
    if (row) await this.writeCrl(tx, this.open(row));
    return serials;
  }

  private get controllerUrl(): string {
    const c = this.deps.config;
    return (c.CONTROLLER_PUBLIC_URL ?? `http://${c.API_HOST}:${c.API_PORT}`).replace(/\/+$/, '');
  }
}
