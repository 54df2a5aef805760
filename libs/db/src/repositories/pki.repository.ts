import { query } from '../sql';
import type { PlatformTx } from '../tenancy';

export interface AuthorityRow {
  id: string;
  certificatePem: string;
  /** Keyring envelope of the PKCS#8 PEM (context `pki:ca:<id>`). */
  privateKeyEnc: string;
  serialNumber: string;
  notAfter: Date;
  crlPem: string | null;
  crlNextUpdate: Date | null;
  createdAt: Date;
}

export interface GatewayCertificateRow {
  serialNumber: string;
  authorityId: string;
  gatewayId: string | null;
  commonName: string;
  notAfter: Date;
  issuedAt: Date;
  revokedAt: Date | null;
  revocationReason: string | null;
}

const AUTHORITY_COLS = `id, certificate_pem AS "certificatePem", private_key_enc AS "privateKeyEnc",
  serial_number AS "serialNumber", not_after AS "notAfter", crl_pem AS "crlPem", crl_next_update AS "crlNextUpdate",
  created_at AS "createdAt"`;
const CERT_COLS = `serial_number AS "serialNumber", authority_id AS "authorityId", gateway_id AS "gatewayId",
  common_name AS "commonName", not_after AS "notAfter", issued_at AS "issuedAt", revoked_at AS "revokedAt",
  revocation_reason AS "revocationReason"`;

/** Advisory lock key of "the deployment CA" (creation, CRL regeneration). */
const AUTHORITY_LOCK = `hashtext('backplane:pki:authority')`;

/** The deployment CA and the gateway certificates it issued (platform objects, no tenant). */
export class PkiRepository {
  /** Serialises CA creation and CRL updates across api replicas until the transaction ends. */
  async lockAuthority(tx: PlatformTx): Promise<void> {
    await query(tx, `SELECT pg_advisory_xact_lock(${AUTHORITY_LOCK})`);
  }

  async activeAuthority(tx: PlatformTx): Promise<AuthorityRow | null> {
    const rows = await query<AuthorityRow>(
      tx,
      `SELECT ${AUTHORITY_COLS} FROM pki_authorities WHERE retired_at IS NULL`,
    );
    return rows[0] ?? null;
  }

  async insertAuthority(
    tx: PlatformTx,
    a: Pick<AuthorityRow, 'id' | 'certificatePem' | 'privateKeyEnc' | 'serialNumber' | 'notAfter'>,
  ): Promise<AuthorityRow> {
    const rows = await query<AuthorityRow>(
      tx,
      `INSERT INTO pki_authorities (id, certificate_pem, private_key_enc, serial_number, not_after)
       VALUES ($1, $2, $3, $4, $5) RETURNING ${AUTHORITY_COLS}`,
      [a.id, a.certificatePem, a.privateKeyEnc, a.serialNumber, a.notAfter],
    );
    return rows[0]!;
  }

  async setCrl(tx: PlatformTx, authorityId: string, crlPem: string, nextUpdate: Date): Promise<void> {
    await query(tx, `UPDATE pki_authorities SET crl_pem = $2, crl_next_update = $3 WHERE id = $1`, [
      authorityId,
      crlPem,
      nextUpdate,
    ]);
  }

  async insertCertificate(
    tx: PlatformTx,
    c: Pick<GatewayCertificateRow, 'serialNumber' | 'authorityId' | 'gatewayId' | 'commonName' | 'notAfter'> & {
      certificatePem: string;
    },
  ): Promise<GatewayCertificateRow> {
    const rows = await query<GatewayCertificateRow>(
      tx,
      `INSERT INTO gateway_certificates (serial_number, authority_id, gateway_id, common_name, certificate_pem, not_after)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${CERT_COLS}`,
      [c.serialNumber, c.authorityId, c.gatewayId, c.commonName, c.certificatePem, c.notAfter],
    );
    return rows[0]!;
  }

  /** Revokes every unrevoked certificate of a gateway; returns their serials. */
  async revokeForGateway(tx: PlatformTx, gatewayId: string, reason: string): Promise<string[]> {
    const rows = await query<{ serialNumber: string }>(
      tx,
      `UPDATE gateway_certificates SET revoked_at = now(), revocation_reason = $2
        WHERE gateway_id = $1 AND revoked_at IS NULL RETURNING serial_number AS "serialNumber"`,
      [gatewayId, reason],
    );
    return rows.map((r) => r.serialNumber);
  }

  /** What the CRL of an authority lists (expired certificates included: a CRL stays small anyway). */
  async revoked(tx: PlatformTx, authorityId: string): Promise<{ serialNumber: string; revokedAt: Date }[]> {
    return query(
      tx,
      `SELECT serial_number AS "serialNumber", revoked_at AS "revokedAt" FROM gateway_certificates
        WHERE authority_id = $1 AND revoked_at IS NOT NULL ORDER BY revoked_at, serial_number`,
      [authorityId],
    );
  }

  async certificatesOf(tx: PlatformTx, gatewayId: string): Promise<GatewayCertificateRow[]> {
    return query<GatewayCertificateRow>(
      tx,
      `SELECT ${CERT_COLS} FROM gateway_certificates WHERE gateway_id = $1 ORDER BY issued_at, serial_number`,
      [gatewayId],
    );
  }
}
