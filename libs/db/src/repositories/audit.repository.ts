import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { decodeIdCursor, toIdPage, type Page, type PageRequest } from './pagination';

export type ActorType = 'user' | 'api_key' | 'gateway' | 'system';

export interface AuditEntryInput {
  actorType: ActorType;
  actorId: string | null;
  actorLabel: string | null;
  sourceIp: string | null;
  requestId: string | null;
  action: string;
  targetType: string;
  targetId: string | null;
  before?: unknown;
  after?: unknown;
}

export interface AuditRow extends AuditEntryInput {
  id: string;
  tenantId: string | null;
  createdAt: Date;
}

export interface AuditFilter {
  readonly action?: string | undefined;
  readonly actorId?: string | undefined;
  readonly targetType?: string | undefined;
  readonly targetId?: string | undefined;
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
}

const COLS = `id::text AS id, tenant_id AS "tenantId", actor_type AS "actorType", actor_id AS "actorId",
  actor_label AS "actorLabel", source_ip AS "sourceIp", request_id AS "requestId", action,
  target_type AS "targetType", target_id AS "targetId", before, after, created_at AS "createdAt"`;

/** Append-only: the app role may only INSERT and SELECT (and a trigger refuses the rest). */
export class AuditRepository {
  async append(tx: TenantTx | PlatformTx, e: AuditEntryInput): Promise<void> {
    await query(
      tx,
      `INSERT INTO audit_log (tenant_id, actor_type, actor_id, actor_label, source_ip, request_id, action,
         target_type, target_id, before, after)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        tx.kind === 'tenant' ? tx.tenantId : null,
        e.actorType,
        e.actorId,
        e.actorLabel,
        e.sourceIp,
        e.requestId,
        e.action,
        e.targetType,
        e.targetId,
        e.before === undefined ? null : JSON.stringify(e.before),
        e.after === undefined ? null : JSON.stringify(e.after),
      ],
    );
  }

  /**
   * Newest first by id in numeric order (ids grow with every insert, so entries written in the
   * same instant keep their order); the opaque cursor is the last id seen. The ORDER BY names
   * the table's column: a bare `id` would be the text-cast output column (7 after 10).
   */
  async list(tx: TenantTx | PlatformTx, page: PageRequest, f: AuditFilter): Promise<Page<AuditRow>> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (tx.kind === 'tenant') {
      params.push(tx.tenantId);
      where.push(`tenant_id = $1`);
    } else where.push('tenant_id IS NULL');
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (page.cursor) add('audit_log.id < ?::bigint', decodeIdCursor(page.cursor));
    if (f.action) add('action = ?', f.action);
    if (f.actorId) add('actor_id = ?::uuid', f.actorId);
    if (f.targetType) add('target_type = ?', f.targetType);
    if (f.targetId) add('target_id = ?', f.targetId);
    if (f.since) add('created_at >= ?', f.since);
    if (f.until) add('created_at < ?', f.until);
    params.push(page.limit + 1);
    const rows = await query<AuditRow>(
      tx,
      `SELECT ${COLS} FROM audit_log WHERE ${where.join(' AND ')} ORDER BY audit_log.id DESC LIMIT $${params.length}`,
      params,
    );
    return toIdPage(rows, page.limit);
  }
}
