import type { Keyring } from '@backplane/crypto';
import { query } from '../sql';
import type { TenantTx } from '../tenancy';
import { decodeCursor, encodeCursor, type Page, type PageRequest } from './pagination';
import { secretContext } from './site-credentials.repository';

export interface BackupRow {
  id: string;
  site_id: string;
  job_id: string | null;
  content_hash: string;
  size: number;
  routeros_version: string | null;
  created_at: Date;
  last_confirmed_at: Date;
}

export interface NewBackup {
  readonly siteId: string;
  readonly jobId: string;
  readonly contentHash: string;
  /** The export in plain text: stored encrypted with the site's backup context. */
  readonly text: string;
  readonly routerosVersion: string | null;
}

const COLS = `id, site_id, job_id, content_hash, size, routeros_version, created_at, last_confirmed_at`;

/** Stored backups: one row per distinct configuration of a site, the export encrypted. */
export class BackupsRepository {
  constructor(private readonly keyring: Keyring) {}

  /** A site's backups, newest first by `(created_at, id)`, paged with an opaque cursor. */
  async list(tx: TenantTx, siteId: string, page: PageRequest): Promise<Page<BackupRow>> {
    const params: unknown[] = [siteId];
    let after = '';
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      params.push(k.createdAt, k.id);
      after = `AND (created_at, id) < ($2::timestamptz, $3::uuid)`;
    }
    params.push(page.limit + 1);
    const rows = await query<BackupRow>(
      tx,
      `SELECT ${COLS} FROM backups WHERE site_id = $1 ${after} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    const items = rows.slice(0, page.limit);
    const last = items[items.length - 1];
    return {
      items,
      nextCursor:
        rows.length > page.limit && last
          ? encodeCursor({ createdAt: last.created_at.toISOString(), id: last.id })
          : null,
    };
  }

  /** One backup with its export decrypted; null when there is none with this id. */
  async withContent(tx: TenantTx, id: string): Promise<{ row: BackupRow; text: string } | null> {
    const [row] = await query<BackupRow & { content_enc: string }>(tx, `SELECT * FROM backups WHERE id = $1`, [id]);
    if (!row) return null;
    return { row, text: this.keyring.decryptText(row.content_enc, secretContext.backup(row.site_id)) };
  }

  /** The decrypted export of a backup of this site; null when the site has no such backup. */
  async content(tx: TenantTx, id: string, siteId: string): Promise<string | null> {
    const [b] = await query<{ content_enc: string }>(
      tx,
      `SELECT content_enc FROM backups WHERE id = $1 AND site_id = $2`,
      [id, siteId],
    );
    return b ? this.keyring.decryptText(b.content_enc, secretContext.backup(siteId)) : null;
  }

  /**
   * Stores an export unless it equals the site's newest backup, which is then marked as
   * confirmed now. Returns the backup's id and whether it was deduplicated.
   */
  async store(tx: TenantTx, b: NewBackup): Promise<{ backupId: string; deduplicated: boolean }> {
    const [last] = await query<{ id: string; content_hash: string }>(
      tx,
      `SELECT id, content_hash FROM backups WHERE site_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`,
      [b.siteId],
    );
    if (last?.content_hash === b.contentHash) {
      await query(tx, `UPDATE backups SET last_confirmed_at = now() WHERE id = $1`, [last.id]);
      return { backupId: last.id, deduplicated: true };
    }
    const [row] = await query<{ id: string }>(
      tx,
      `INSERT INTO backups (tenant_id, site_id, job_id, content_hash, content_enc, size, routeros_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [
        tx.tenantId,
        b.siteId,
        b.jobId,
        b.contentHash,
        this.keyring.encrypt(b.text, secretContext.backup(b.siteId)),
        Buffer.byteLength(b.text),
        b.routerosVersion,
      ],
    );
    return { backupId: row!.id, deduplicated: false };
  }
}
