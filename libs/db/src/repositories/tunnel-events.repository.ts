import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { decodeIdCursor, toIdPage, type Page, type PageRequest } from './pagination';

export interface TunnelEventRow {
  id: string;
  type: string;
  accepted: boolean | null;
  reason: string | null;
  sourceIp: string | null;
  gatewayId: string | null;
  bytesIn: number | null;
  bytesOut: number | null;
  durationSeconds: number | null;
  at: Date;
}

export interface TunnelEventInput {
  readonly siteId: string;
  readonly type: string;
  readonly accepted?: boolean | null | undefined;
  readonly reason?: string | null | undefined;
  readonly sourceIp: string | null;
  readonly bytesIn?: number | null | undefined;
  readonly bytesOut?: number | null | undefined;
  readonly durationSeconds?: number | null | undefined;
  readonly at: string;
}

/** What storing an event changed: the site's tenant and online state before and after. */
export interface TunnelEventStatus {
  stored: boolean;
  tenant_id: string | null;
  was_online: boolean | null;
  online: boolean | null;
  /** The site belongs to another region than the gateway's (or the gateway is revoked): nothing stored. */
  refused: boolean;
}

/** Tunnel connects, disconnects and refusals reported by the gateways. */
export class TunnelEventsRepository {
  /** Stores a gateway's event and moves the site's online state (one SQL function). */
  async record(tx: PlatformTx, gatewayId: string, e: TunnelEventInput): Promise<TunnelEventStatus | null> {
    const [row] = await query<TunnelEventStatus>(
      tx,
      `SELECT * FROM bp_tunnel_event_status($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        e.siteId,
        gatewayId,
        e.type,
        e.accepted ?? null,
        e.reason ?? null,
        e.sourceIp,
        e.bytesIn ?? null,
        e.bytesOut ?? null,
        e.durationSeconds ?? null,
        e.at,
      ],
    );
    return row ?? null;
  }

  /** A site's events, newest first (by id, numerically), paged with an opaque cursor. */
  async list(tx: TenantTx, siteId: string, page: PageRequest): Promise<Page<TunnelEventRow>> {
    const params: unknown[] = [siteId];
    let after = '';
    if (page.cursor) {
      params.push(decodeIdCursor(page.cursor));
      after = `AND e.id < $${params.length}::bigint`;
    }
    params.push(page.limit + 1);
    const rows = await query<TunnelEventRow>(
      tx,
      `SELECT e.id::text AS id, e.type, e.accepted, e.reason, e.source_ip AS "sourceIp", e.gateway_id AS "gatewayId",
              e.bytes_in::float8 AS "bytesIn", e.bytes_out::float8 AS "bytesOut", e.duration_seconds AS "durationSeconds", e.at
         FROM tunnel_events e WHERE e.site_id = $1 ${after} ORDER BY e.id DESC LIMIT $${params.length}`,
      params,
    );
    return toIdPage(rows, page.limit);
  }
}
