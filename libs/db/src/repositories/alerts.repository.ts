import type { Keyring } from '@backplane/crypto';
import { query } from '../sql';
import type { PlatformTx, TenantTx, Tx } from '../tenancy';
import { newestFirst, toPage, type Page, type PageRequest } from './pagination';

/**
 * Alerts, channels and the transactional outbox (issue 20, ADR 0091). Events are written by
 * triggers (site status, jobs, backups, flapping) or {@link OutboxRepository.emit} in the
 * transaction of the change; the worker's alert engine reads them per tenant.
 */

export interface OutboxEventRow {
  id: string;
  seq: string;
  tenantId: string;
  type: string;
  subjectType: string;
  subjectId: string | null;
  data: Record<string, unknown>;
  occurredAt: Date;
  processedAt: Date | null;
}

const EVENT_COLS = `id, seq::text AS seq, tenant_id AS "tenantId", type, subject_type AS "subjectType",
  subject_id AS "subjectId", data, occurred_at AS "occurredAt", processed_at AS "processedAt"`;

export class OutboxRepository {
  /** Appends an event in the caller's transaction (tenant or platform); returns its stable id. */
  async emit(
    tx: Tx,
    e: { tenantId: string; type: string; subjectType: string; subjectId: string | null; data: unknown },
  ): Promise<string> {
    const [row] = await query<{ id: string }>(tx, `SELECT bp_outbox_emit($1, $2, $3, $4, $5::jsonb) AS id`, [
      e.tenantId,
      e.type,
      e.subjectType,
      e.subjectId,
      JSON.stringify(e.data),
    ]);
    return row!.id;
  }

  /** The tenants with due alert work (events, pending alerts, deliveries). */
  async tenantsWithWork(tx: PlatformTx): Promise<string[]> {
    const rows = await query<{ tenant_id: string }>(tx, `SELECT tenant_id FROM bp_alert_work()`);
    return rows.map((r) => r.tenant_id);
  }

  /** The tenants with enabled telemetry rules. */
  async telemetryTenants(tx: PlatformTx): Promise<string[]> {
    const rows = await query<{ tenant_id: string }>(tx, `SELECT tenant_id FROM bp_alert_telemetry_tenants()`);
    return rows.map((r) => r.tenant_id);
  }

  /** Retention: deletes up to `limit` processed events older than `days` with final deliveries. */
  async cleanup(tx: PlatformTx, days: number, limit: number): Promise<number> {
    const [r] = await query<{ n: number }>(tx, `SELECT bp_outbox_cleanup($1, $2) AS n`, [days, limit]);
    return r?.n ?? 0;
  }

  /** Counts for the worker's scrape-time gauges (all tenants). */
  async backlog(
    tx: PlatformTx,
  ): Promise<{ eventsPending: number; deliveriesDue: number; deliveriesFailed: number; gatewaysDown: number }> {
    const [r] = await query<{
      eventsPending: number;
      deliveriesDue: number;
      deliveriesFailed: number;
      gatewaysDown: number;
    }>(
      tx,
      `SELECT events_pending::int AS "eventsPending", deliveries_due::int AS "deliveriesDue",
              deliveries_failed::int AS "deliveriesFailed", gateways_down::int AS "gatewaysDown" FROM bp_alert_backlog()`,
    );
    return r!;
  }

  /** Gateways whose down/up state changed since the last sweep (events written for their tenants). */
  async gatewayDownSweep(tx: PlatformTx, downAfterSeconds: number): Promise<{ gateway_id: string; down: boolean }[]> {
    return query(tx, `SELECT gateway_id, down FROM bp_gateway_down_sweep($1)`, [downAfterSeconds]);
  }

  /**
   * `certificate.expiring` events for gateway certificates and the deployment CA within 30
   * days of expiry (once per certificate and threshold: 30, 7, 1 days); returns what it reported.
   */
  async certificateExpirySweep(
    tx: PlatformTx,
  ): Promise<{ certificate: 'gateway' | 'ca'; serial_number: string; threshold_days: number }[]> {
    return query(tx, `SELECT certificate, serial_number, threshold_days FROM bp_certificate_expiry_sweep()`);
  }

  /** Unprocessed events in order, locked (a second worker skips them). */
  async claimPending(tx: TenantTx, limit: number): Promise<OutboxEventRow[]> {
    return query<OutboxEventRow>(
      tx,
      `SELECT ${EVENT_COLS} FROM outbox_events WHERE tenant_id = $1 AND processed_at IS NULL
        ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
      [tx.tenantId, limit],
    );
  }

  async markProcessed(tx: TenantTx, ids: readonly string[]): Promise<void> {
    if (!ids.length) return;
    await query(tx, `UPDATE outbox_events SET processed_at = now() WHERE tenant_id = $1 AND id = ANY($2::uuid[])`, [
      tx.tenantId,
      ids,
    ]);
  }

  async get(tx: TenantTx, id: string): Promise<OutboxEventRow | null> {
    const [row] = await query<OutboxEventRow>(tx, `SELECT ${EVENT_COLS} FROM outbox_events WHERE id = $1`, [id]);
    return row ?? null;
  }

  async list(tx: TenantTx, type: string | undefined, limit: number): Promise<OutboxEventRow[]> {
    return query<OutboxEventRow>(
      tx,
      `SELECT ${EVENT_COLS} FROM outbox_events WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2)
        ORDER BY seq DESC LIMIT $3`,
      [tx.tenantId, type ?? null, limit],
    );
  }
}

// ---------------------------------------------------------------------------------------------
// rules

export interface AlertRuleRow {
  id: string;
  name: string;
  enabled: boolean;
  kind: 'event' | 'telemetry';
  eventType: string | null;
  metric: 'cpu' | 'memory' | 'latency' | 'temperature' | 'interfaces-down' | null;
  operator: '>' | '<' | null;
  threshold: number | null;
  durationSeconds: number;
  scope: 'all' | 'tags' | 'sites';
  tags: string[];
  siteIds: string[];
  severity: 'info' | 'warning' | 'critical';
  defaultKey: string | null;
  silencedUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type AlertRuleInput = Omit<AlertRuleRow, 'id' | 'defaultKey' | 'createdAt' | 'updatedAt'>;

const RULE_COLS = `id, name, enabled, kind, event_type AS "eventType", metric, operator, threshold,
  duration_seconds AS "durationSeconds", scope, tags, site_ids::text[] AS "siteIds", severity,
  default_key AS "defaultKey", silenced_until AS "silencedUntil", created_at AS "createdAt", updated_at AS "updatedAt"`;

const RULE_FIELDS: Record<keyof AlertRuleInput, string> = {
  name: 'name',
  enabled: 'enabled',
  kind: 'kind',
  eventType: 'event_type',
  metric: 'metric',
  operator: 'operator',
  threshold: 'threshold',
  durationSeconds: 'duration_seconds',
  scope: 'scope',
  tags: 'tags',
  siteIds: 'site_ids',
  severity: 'severity',
  silencedUntil: 'silenced_until',
};

export class AlertRulesRepository {
  async list(tx: TenantTx, page: PageRequest): Promise<Page<AlertRuleRow>> {
    const params: unknown[] = [tx.tenantId];
    const rest = newestFirst(page, params, 'tenant_id = $1');
    return toPage(
      await query<AlertRuleRow>(tx, `SELECT ${RULE_COLS} FROM alert_rules WHERE ${rest}`, params),
      page.limit,
    );
  }

  async get(tx: TenantTx, id: string): Promise<AlertRuleRow | null> {
    const [row] = await query<AlertRuleRow>(
      tx,
      `SELECT ${RULE_COLS} FROM alert_rules WHERE tenant_id = $1 AND id = $2`,
      [tx.tenantId, id],
    );
    return row ?? null;
  }

  async create(tx: TenantTx, r: AlertRuleInput): Promise<AlertRuleRow> {
    const keys = Object.keys(RULE_FIELDS) as (keyof AlertRuleInput)[];
    const params: unknown[] = [tx.tenantId, ...keys.map((k) => r[k])];
    const [row] = await query<AlertRuleRow>(
      tx,
      `INSERT INTO alert_rules (tenant_id, ${keys.map((k) => RULE_FIELDS[k]).join(', ')})
       VALUES ($1, ${keys.map((_, i) => `$${i + 2}`).join(', ')}) RETURNING ${RULE_COLS}`,
      params,
    );
    return row!;
  }

  async update(tx: TenantTx, id: string, patch: Partial<AlertRuleInput>): Promise<AlertRuleRow | null> {
    const keys = (Object.keys(patch) as (keyof AlertRuleInput)[]).filter((k) => patch[k] !== undefined);
    const params: unknown[] = [tx.tenantId, id, ...keys.map((k) => patch[k])];
    const sets = keys.map((k, i) => `${RULE_FIELDS[k]} = $${i + 3}`);
    const [row] = await query<AlertRuleRow>(
      tx,
      `UPDATE alert_rules SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE tenant_id = $1 AND id = $2
       RETURNING ${RULE_COLS}`,
      params,
    );
    return row ?? null;
  }

  async delete(tx: TenantTx, id: string): Promise<boolean> {
    const rows = await query(tx, `DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2 RETURNING id`, [
      tx.tenantId,
      id,
    ]);
    return rows.length > 0;
  }

  /** Enabled event rules watching one of these event types. */
  async forEvents(tx: TenantTx, types: readonly string[]): Promise<AlertRuleRow[]> {
    return query<AlertRuleRow>(
      tx,
      `SELECT ${RULE_COLS} FROM alert_rules WHERE tenant_id = $1 AND enabled AND kind = 'event' AND event_type = ANY($2::text[])`,
      [tx.tenantId, types],
    );
  }

  async telemetryRules(tx: TenantTx): Promise<AlertRuleRow[]> {
    return query<AlertRuleRow>(
      tx,
      `SELECT ${RULE_COLS} FROM alert_rules WHERE tenant_id = $1 AND enabled AND kind = 'telemetry'`,
      [tx.tenantId],
    );
  }

  /** A site's name and tags (for rule scopes); null when deleted or absent. */
  async site(tx: TenantTx, siteId: string): Promise<{ name: string; tags: string[] } | null> {
    const [row] = await query<{ name: string; tags: string[] }>(
      tx,
      `SELECT name, tags FROM sites WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
      [tx.tenantId, siteId],
    );
    return row ?? null;
  }

  /**
   * Telemetry rule evaluation: for every live site in scope, whether the metric crossed the
   * threshold in every sample of the last `durationSeconds` (at least one sample, and the
   * window covered), and the latest value.
   */
  async telemetryState(
    tx: TenantTx,
    rule: AlertRuleRow,
  ): Promise<{ siteId: string; siteName: string; breached: boolean; value: number | null }[]> {
    const expr = {
      cpu: 'cpu_load',
      memory: `CASE WHEN memory_total > 0 THEN 100.0 * memory_used / memory_total END`,
      latency: 'latency_ms',
      temperature: 'temperature_c',
      'interfaces-down': 'interfaces_down',
    }[rule.metric ?? 'cpu'];
    const cmp = rule.operator === '<' ? '<' : '>';
    return query(
      tx,
      `SELECT s.id AS "siteId", s.name AS "siteName",
              coalesce(w.n > 0 AND w.n = w.crossed AND w.first_at <= now() - make_interval(secs => $2 * 0.8), false) AS breached,
              w.latest AS value
         FROM sites s
         LEFT JOIN LATERAL (
           SELECT count(v)::int AS n, count(*) FILTER (WHERE v ${cmp} $3)::int AS crossed, min(at) AS first_at,
                  (array_agg(v ORDER BY at DESC))[1]::float8 AS latest
             FROM (SELECT at, (${expr})::float8 AS v FROM telemetry_samples t
                    WHERE t.site_id = s.id AND t.at > now() - make_interval(secs => greatest($2, 60))) x
            WHERE v IS NOT NULL
         ) w ON true
        WHERE s.tenant_id = $1 AND s.deleted_at IS NULL
          AND ($4 = 'all' OR ($4 = 'tags' AND s.tags && $5::text[]) OR ($4 = 'sites' AND s.id = ANY($6::uuid[])))`,
      [tx.tenantId, rule.durationSeconds, rule.threshold, rule.scope, rule.tags, rule.siteIds],
    );
  }
}

// ---------------------------------------------------------------------------------------------
// alerts

export type AlertState = 'pending' | 'firing' | 'resolved';

export interface AlertRow {
  id: string;
  ruleId: string | null;
  ruleName: string;
  severity: 'info' | 'warning' | 'critical';
  subjectType: string;
  subjectId: string | null;
  siteId: string | null;
  state: AlertState;
  summary: string;
  causeEventId: string | null;
  pendingSince: Date;
  firesAt: Date;
  firedAt: Date | null;
  resolvedAt: Date | null;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  silencedUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const ALERT_COLS = `id, rule_id AS "ruleId", rule_name AS "ruleName", severity, subject_type AS "subjectType",
  subject_id AS "subjectId", site_id AS "siteId", state, summary, cause_event_id AS "causeEventId",
  pending_since AS "pendingSince", fires_at AS "firesAt", fired_at AS "firedAt", resolved_at AS "resolvedAt",
  acknowledged_at AS "acknowledgedAt", acknowledged_by AS "acknowledgedBy", silenced_until AS "silencedUntil",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

export interface AlertFilter {
  /** `open` = pending or firing; `acknowledged` = firing and acknowledged. */
  readonly state?: 'open' | 'pending' | 'firing' | 'acknowledged' | 'resolved' | undefined;
  readonly severity?: string | undefined;
  readonly siteId?: string | undefined;
  readonly ruleId?: string | undefined;
  readonly q?: string | undefined;
}

export interface NewAlert {
  readonly ruleId: string | null;
  readonly ruleName: string;
  readonly severity: string;
  readonly subjectType: string;
  readonly subjectId: string | null;
  readonly siteId: string | null;
  readonly summary: string;
  readonly causeEventId: string | null;
  /** Fires immediately (state firing) when at or before now. */
  readonly firesAt: Date;
  readonly silencedUntil: Date | null;
}

export class AlertsRepository {
  /** The open (pending or firing) alert of a rule for a subject, locked. */
  async open(
    tx: TenantTx,
    ruleId: string | null,
    subjectType: string,
    subjectId: string | null,
  ): Promise<AlertRow | null> {
    const [row] = await query<AlertRow>(
      tx,
      `SELECT ${ALERT_COLS} FROM alerts
        WHERE tenant_id = $1 AND coalesce(rule_id::text, 'system') = coalesce($2::text, 'system') AND subject_type = $3
          AND coalesce(subject_id, '') = coalesce($4, '') AND state IN ('pending', 'firing') FOR UPDATE`,
      [tx.tenantId, ruleId, subjectType, subjectId],
    );
    return row ?? null;
  }

  /** Opens an alert (pending, or firing when due now); null when one is already open (dedup). */
  async openNew(tx: TenantTx, a: NewAlert): Promise<AlertRow | null> {
    const [row] = await query<AlertRow>(
      tx,
      `INSERT INTO alerts (tenant_id, rule_id, rule_name, severity, subject_type, subject_id, site_id, state, summary,
                           cause_event_id, fires_at, fired_at, silenced_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8::timestamptz <= now() THEN 'firing' ELSE 'pending' END, $9,
               $10, $8, CASE WHEN $8::timestamptz <= now() THEN now() END, $11)
       ON CONFLICT DO NOTHING RETURNING ${ALERT_COLS}`,
      [
        tx.tenantId,
        a.ruleId,
        a.ruleName,
        a.severity,
        a.subjectType,
        a.subjectId,
        a.siteId,
        a.firesAt,
        a.summary,
        a.causeEventId,
        a.silencedUntil,
      ],
    );
    return row ?? null;
  }

  /** Pending alerts whose duration has passed, locked. */
  async due(tx: TenantTx, limit: number): Promise<AlertRow[]> {
    return query<AlertRow>(
      tx,
      `SELECT ${ALERT_COLS} FROM alerts WHERE tenant_id = $1 AND state = 'pending' AND fires_at <= now()
        ORDER BY fires_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
      [tx.tenantId, limit],
    );
  }

  async fire(tx: TenantTx, id: string): Promise<AlertRow> {
    const [row] = await query<AlertRow>(
      tx,
      `UPDATE alerts SET state = 'firing', fired_at = now(), updated_at = now() WHERE tenant_id = $1 AND id = $2
       RETURNING ${ALERT_COLS}`,
      [tx.tenantId, id],
    );
    return row!;
  }

  /** Resolves a firing alert; a pending one (never notified) is dropped. Returns the row when it was firing. */
  async resolve(tx: TenantTx, a: AlertRow, causeEventId: string | null): Promise<AlertRow | null> {
    if (a.state === 'pending') {
      await query(tx, `DELETE FROM alerts WHERE tenant_id = $1 AND id = $2`, [tx.tenantId, a.id]);
      return null;
    }
    const [row] = await query<AlertRow>(
      tx,
      `UPDATE alerts SET state = 'resolved', resolved_at = now(), updated_at = now(),
              cause_event_id = coalesce($3, cause_event_id)
        WHERE tenant_id = $1 AND id = $2 AND state = 'firing' RETURNING ${ALERT_COLS}`,
      [tx.tenantId, a.id, causeEventId],
    );
    return row ?? null;
  }

  /** Open alerts of a telemetry rule (to resolve those whose site no longer breaches). */
  async openOfRule(tx: TenantTx, ruleId: string): Promise<AlertRow[]> {
    return query<AlertRow>(
      tx,
      `SELECT ${ALERT_COLS} FROM alerts WHERE tenant_id = $1 AND rule_id = $2 AND state IN ('pending', 'firing') FOR UPDATE`,
      [tx.tenantId, ruleId],
    );
  }

  async get(tx: TenantTx, id: string): Promise<AlertRow | null> {
    const [row] = await query<AlertRow>(tx, `SELECT ${ALERT_COLS} FROM alerts WHERE tenant_id = $1 AND id = $2`, [
      tx.tenantId,
      id,
    ]);
    return row ?? null;
  }

  /** History, newest first, searchable (summary, rule name). Pending alerts are not listed as open ones' history. */
  async list(tx: TenantTx, f: AlertFilter, page: PageRequest): Promise<Page<AlertRow>> {
    const params: unknown[] = [tx.tenantId];
    const where = ['tenant_id = $1'];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.state === 'open') where.push(`state IN ('pending', 'firing')`);
    else if (f.state === 'acknowledged') where.push(`state = 'firing' AND acknowledged_at IS NOT NULL`);
    else if (f.state) add(`state = ?`, f.state);
    if (f.severity) add(`severity = ?`, f.severity);
    if (f.siteId) add(`site_id = ?::uuid`, f.siteId);
    if (f.ruleId) add(`rule_id = ?::uuid`, f.ruleId);
    if (f.q) {
      params.push(`%${f.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      where.push(`(summary ILIKE $${params.length} OR rule_name ILIKE $${params.length})`);
    }
    const rest = newestFirst(page, params, where.join(' AND '));
    return toPage(await query<AlertRow>(tx, `SELECT ${ALERT_COLS} FROM alerts WHERE ${rest}`, params), page.limit);
  }

  async acknowledge(tx: TenantTx, id: string, by: string): Promise<AlertRow | null> {
    const [row] = await query<AlertRow>(
      tx,
      `UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, now()), acknowledged_by = coalesce(acknowledged_by, $3),
              updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND state IN ('pending', 'firing') RETURNING ${ALERT_COLS}`,
      [tx.tenantId, id, by],
    );
    return row ?? null;
  }

  async silence(tx: TenantTx, id: string, until: Date | null): Promise<AlertRow | null> {
    const [row] = await query<AlertRow>(
      tx,
      `UPDATE alerts SET silenced_until = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING ${ALERT_COLS}`,
      [tx.tenantId, id, until],
    );
    return row ?? null;
  }

  /** Open alert counts per site (the fleet page). */
  async openCounts(tx: TenantTx): Promise<{ siteId: string; firing: number; critical: number }[]> {
    return query(
      tx,
      `SELECT site_id AS "siteId", count(*)::int AS firing, count(*) FILTER (WHERE severity = 'critical')::int AS critical
         FROM alerts WHERE tenant_id = $1 AND state = 'firing' AND site_id IS NOT NULL GROUP BY site_id`,
      [tx.tenantId],
    );
  }
}

// ---------------------------------------------------------------------------------------------
// channels and deliveries

export type ChannelKind = 'webhook' | 'email' | 'slack' | 'teams' | 'discord' | 'telegram' | 'ntfy';

/** What a channel keeps encrypted: target URLs (chat webhooks carry tokens), signing secrets, bot tokens. */
export interface ChannelSecrets {
  url?: string | undefined;
  botToken?: string | undefined;
  /** Standard Webhooks signing secret (`whsec_…`). */
  signingSecret?: string | undefined;
  /** The secret before the last rotation, valid until `previousUntil` (ISO). */
  previousSecret?: string | undefined;
  previousUntil?: string | undefined;
}

export interface ChannelRow {
  id: string;
  name: string;
  kind: ChannelKind;
  config: Record<string, unknown>;
  events: string[];
  minSeverity: 'info' | 'warning' | 'critical';
  maxConcurrency: number;
  enabled: boolean;
  disabledReason: string | null;
  disabledAt: Date | null;
  consecutiveFailures: number;
  failingSince: Date | null;
  circuitOpenUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ChannelInput {
  name: string;
  kind: ChannelKind;
  config: Record<string, unknown>;
  events: string[];
  minSeverity: 'info' | 'warning' | 'critical';
  maxConcurrency: number;
  enabled: boolean;
}

const CHANNEL_COLS = `id, name, kind, config, events, min_severity AS "minSeverity", max_concurrency AS "maxConcurrency",
  enabled, disabled_reason AS "disabledReason", disabled_at AS "disabledAt", consecutive_failures AS "consecutiveFailures",
  failing_since AS "failingSince", circuit_open_until AS "circuitOpenUntil", created_at AS "createdAt", updated_at AS "updatedAt"`;

const channelContext = (id: string) => `channel:${id}:secrets`;

export type DeliveryState = 'pending' | 'delivering' | 'delivered' | 'failed';

export interface DeliveryRow {
  id: string;
  channelId: string;
  eventId: string;
  eventType: string;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: Date;
  lastStatus: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  deliveredAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const DELIVERY_COLS = `d.id, d.channel_id AS "channelId", d.event_id AS "eventId", d.event_type AS "eventType", d.state,
  d.attempts, d.next_attempt_at AS "nextAttemptAt", d.last_status AS "lastStatus", d.last_error AS "lastError",
  d.last_latency_ms AS "lastLatencyMs", d.delivered_at AS "deliveredAt", d.created_at AS "createdAt", d.updated_at AS "updatedAt"`;

export interface ClaimedDelivery extends DeliveryRow {
  leaseToken: string;
}

export interface AttemptResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly error: string | null;
  readonly latencyMs: number;
}

export interface DeliveryPolicy {
  /** Delay before retry n (1-based), ms. */
  readonly backoffMs: (attempt: number) => number;
  /** Give up (state `failed`) after this many attempts or this age. */
  readonly maxAttempts: number;
  readonly maxAgeMs: number;
  /** Consecutive failures that open a channel's circuit, and for how long (doubling, capped). */
  readonly breakerThreshold: number;
  readonly breakerCooldownMs: number;
  readonly breakerMaxCooldownMs: number;
  /** A channel failing without a success for this long (and at least `disableMinFailures` times) is disabled. */
  readonly disableAfterMs: number;
  readonly disableMinFailures: number;
}

export class ChannelsRepository {
  constructor(private readonly keyring: Keyring) {}

  async list(tx: TenantTx, page: PageRequest): Promise<Page<ChannelRow>> {
    const params: unknown[] = [tx.tenantId];
    const rest = newestFirst(page, params, 'tenant_id = $1');
    return toPage(
      await query<ChannelRow>(tx, `SELECT ${CHANNEL_COLS} FROM channels WHERE ${rest}`, params),
      page.limit,
    );
  }

  async get(tx: TenantTx, id: string): Promise<ChannelRow | null> {
    const [row] = await query<ChannelRow>(tx, `SELECT ${CHANNEL_COLS} FROM channels WHERE tenant_id = $1 AND id = $2`, [
      tx.tenantId,
      id,
    ]);
    return row ?? null;
  }

  async secrets(tx: TenantTx, id: string): Promise<ChannelSecrets> {
    const [row] = await query<{ secrets_enc: string | null }>(
      tx,
      `SELECT secrets_enc FROM channels WHERE tenant_id = $1 AND id = $2`,
      [tx.tenantId, id],
    );
    if (!row?.secrets_enc) return {};
    return JSON.parse(this.keyring.decryptText(row.secrets_enc, channelContext(id))) as ChannelSecrets;
  }

  async create(tx: TenantTx, c: ChannelInput, secrets: ChannelSecrets): Promise<ChannelRow> {
    const [{ id }] = (await query<{ id: string }>(tx, `SELECT gen_random_uuid() AS id`)) as [{ id: string }];
    const [row] = await query<ChannelRow>(
      tx,
      `INSERT INTO channels (id, tenant_id, name, kind, config, events, min_severity, max_concurrency, enabled, secrets_enc)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10) RETURNING ${CHANNEL_COLS}`,
      [
        id,
        tx.tenantId,
        c.name,
        c.kind,
        JSON.stringify(c.config),
        c.events,
        c.minSeverity,
        c.maxConcurrency,
        c.enabled,
        this.keyring.encrypt(JSON.stringify(secrets), channelContext(id)),
      ],
    );
    return row!;
  }

  /** Updates fields; `secrets` replaces the stored secrets. Re-enabling clears the failure state. */
  async update(
    tx: TenantTx,
    id: string,
    patch: Partial<ChannelInput>,
    secrets?: ChannelSecrets,
  ): Promise<ChannelRow | null> {
    const cols: Record<keyof ChannelInput, string> = {
      name: 'name',
      kind: 'kind',
      config: 'config',
      events: 'events',
      minSeverity: 'min_severity',
      maxConcurrency: 'max_concurrency',
      enabled: 'enabled',
    };
    const params: unknown[] = [tx.tenantId, id];
    const sets = ['updated_at = now()'];
    for (const k of Object.keys(cols) as (keyof ChannelInput)[]) {
      if (patch[k] === undefined) continue;
      params.push(k === 'config' ? JSON.stringify(patch[k]) : patch[k]);
      sets.push(`${cols[k]} = $${params.length}${k === 'config' ? '::jsonb' : ''}`);
    }
    if (patch.enabled === true) {
      sets.push(
        `disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0, failing_since = NULL, circuit_open_until = NULL`,
      );
    }
    if (secrets) {
      params.push(this.keyring.encrypt(JSON.stringify(secrets), channelContext(id)));
      sets.push(`secrets_enc = $${params.length}`);
    }
    const [row] = await query<ChannelRow>(
      tx,
      `UPDATE channels SET ${sets.join(', ')} WHERE tenant_id = $1 AND id = $2 RETURNING ${CHANNEL_COLS}`,
      params,
    );
    return row ?? null;
  }

  async delete(tx: TenantTx, id: string): Promise<boolean> {
    return (
      (await query(tx, `DELETE FROM channels WHERE tenant_id = $1 AND id = $2 RETURNING id`, [tx.tenantId, id]))
        .length > 0
    );
  }

  /**
   * Fan-out: one delivery per enabled channel whose filter takes the event (and, for alert
   * notifications, whose minimum severity it reaches). Idempotent: `(channel, event)` is unique.
   * `only`: a single channel (send test). Returns the number of new deliveries.
   */
  async fanOut(
    tx: TenantTx,
    event: { id: string; type: string; severity?: string | undefined },
    only?: string,
  ): Promise<number> {
    const rows = await query(
      tx,
      `INSERT INTO deliveries (tenant_id, channel_id, event_id, event_type)
       SELECT c.tenant_id, c.id, $2, $3 FROM channels c
        WHERE c.tenant_id = $1 AND c.enabled AND ($5::uuid IS NOT NULL OR $3 = ANY(c.events))
          AND ($5::uuid IS NULL OR c.id = $5::uuid)
          AND ($4::text IS NULL OR array_position(ARRAY['info','warning','critical'], $4::text)
                                   >= array_position(ARRAY['info','warning','critical'], c.min_severity))
       ON CONFLICT (channel_id, event_id) DO NOTHING RETURNING id`,
      [tx.tenantId, event.id, event.type, event.severity ?? null, only ?? null],
    );
    return rows.length;
  }

  /**
   * Claims due deliveries (pending and due, or delivering with an expired lease: the worker
   * died) up to each channel's concurrency limit counting live leases, skipping channels with
   * an open circuit (half-open: one at a time once the cooldown passed). One claimer per
   * tenant at a time (transaction-scoped advisory lock), so limits hold across workers.
   */
  async claim(tx: TenantTx, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const [lock] = await query<{ ok: boolean }>(
      tx,
      `SELECT pg_try_advisory_xact_lock(hashtext('bp-deliveries:' || $1::text)) AS ok`,
      [tx.tenantId],
    );
    if (!lock?.ok) return [];
    return query<ClaimedDelivery>(
      tx,
      `WITH inflight AS (
         SELECT channel_id, count(*)::int AS n FROM deliveries
          WHERE tenant_id = $1 AND state = 'delivering' AND lease_until > now() GROUP BY channel_id
       ), cand AS (
         SELECT d.id, row_number() OVER (PARTITION BY d.channel_id ORDER BY d.next_attempt_at, d.created_at) AS rn,
                CASE WHEN c.consecutive_failures > 0 AND c.circuit_open_until IS NOT NULL THEN 1 ELSE c.max_concurrency END
                  - coalesce(i.n, 0) AS room
           FROM deliveries d JOIN channels c ON c.id = d.channel_id
           LEFT JOIN inflight i ON i.channel_id = d.channel_id
          WHERE d.tenant_id = $1 AND c.enabled AND (c.circuit_open_until IS NULL OR c.circuit_open_until <= now())
            AND ((d.state = 'pending' AND d.next_attempt_at <= now()) OR (d.state = 'delivering' AND d.lease_until <= now()))
       ), picked AS (
         SELECT id FROM cand WHERE rn <= room ORDER BY rn LIMIT $2
       )
       UPDATE deliveries d SET state = 'delivering', attempts = d.attempts + 1, lease_token = gen_random_uuid(),
              lease_until = now() + make_interval(secs => $3::float8 / 1000), updated_at = now()
         FROM picked WHERE d.id = picked.id
       RETURNING ${DELIVERY_COLS}, d.lease_token AS "leaseToken"`,
      [tx.tenantId, limit, leaseMs],
    );
  }

  /**
   * Records one attempt's result (only while the lease is ours: a delivery whose lease expired
   * and was re-claimed is not overwritten by the old attempt). Updates the channel's breaker
   * and, when it kept failing, disables it. Returns what happened.
   */
  async settle(
    tx: TenantTx,
    d: ClaimedDelivery,
    r: AttemptResult,
    policy: DeliveryPolicy,
  ): Promise<{ state: DeliveryState | 'lost'; disabled: ChannelRow | null }> {
    const [cur] = await query<{ attempts: number; created_at: Date }>(
      tx,
      `SELECT attempts, retry_from AS created_at FROM deliveries WHERE id = $1 AND lease_token = $2 AND state = 'delivering' FOR UPDATE`,
      [d.id, d.leaseToken],
    );
    await query(
      tx,
      `INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, status, error, latency_ms) VALUES ($1, $2, $3, $4, $5, $6)`,
      [tx.tenantId, d.id, d.attempts, r.status, r.error?.slice(0, 500) ?? null, Math.round(r.latencyMs)],
    );
    if (!cur) return { state: 'lost', disabled: null };
    let state: DeliveryState;
    if (r.ok) state = 'delivered';
    else if (cur.attempts >= policy.maxAttempts || Date.now() - cur.created_at.getTime() >= policy.maxAgeMs)
      state = 'failed';
    else state = 'pending';
    await query(
      tx,
      `UPDATE deliveries SET state = $2, lease_token = NULL, lease_until = NULL, last_status = $3, last_error = $4,
              last_latency_ms = $5, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END,
              next_attempt_at = now() + make_interval(secs => $6::float8 / 1000), updated_at = now()
        WHERE id = $1`,
      [
        d.id,
        state,
        r.status,
        r.error?.slice(0, 500) ?? null,
        Math.round(r.latencyMs),
        r.ok ? 0 : policy.backoffMs(cur.attempts),
      ],
    );
    if (r.ok) {
      await query(
        tx,
        `UPDATE channels SET consecutive_failures = 0, failing_since = NULL, circuit_open_until = NULL
          WHERE id = $1 AND (consecutive_failures <> 0 OR circuit_open_until IS NOT NULL)`,
        [d.channelId],
      );
      return { state, disabled: null };
    }
    const [ch] = await query<ChannelRow>(
      tx,
      `UPDATE channels SET consecutive_failures = consecutive_failures + 1, failing_since = coalesce(failing_since, now()),
              circuit_open_until = CASE WHEN consecutive_failures + 1 >= $2
                THEN now() + make_interval(secs => least($3::float8 * power(2, least(consecutive_failures + 1 - $2, 20)), $4::float8) / 1000) END,
              enabled = enabled AND NOT (consecutive_failures + 1 >= $6 AND coalesce(failing_since, now()) <= now() - make_interval(secs => $5::float8 / 1000)),
              updated_at = now()
        WHERE id = $1 RETURNING ${CHANNEL_COLS}`,
      [
        d.channelId,
        policy.breakerThreshold,
        policy.breakerCooldownMs,
        policy.breakerMaxCooldownMs,
        policy.disableAfterMs,
        policy.disableMinFailures,
      ],
    );
    if (ch && !ch.enabled && !ch.disabledAt) {
      const [disabled] = await query<ChannelRow>(
        tx,
        `UPDATE channels SET disabled_at = now(), disabled_reason = $2 WHERE id = $1 RETURNING ${CHANNEL_COLS}`,
        [ch.id, `failed ${ch.consecutiveFailures} times in a row since ${ch.failingSince?.toISOString() ?? 'now'}`],
      );
      return { state, disabled: disabled ?? null };
    }
    return { state, disabled: null };
  }

  async deliveries(
    tx: TenantTx,
    channelId: string,
    state: DeliveryState | undefined,
    page: PageRequest,
  ): Promise<Page<DeliveryRow>> {
    const params: unknown[] = [tx.tenantId, channelId];
    let base = 'd.tenant_id = $1 AND d.channel_id = $2';
    if (state) {
      params.push(state);
      base += ` AND d.state = $${params.length}`;
    }
    const rest = newestFirst(page, params, base)
      .replace(/\(created_at, id\)/g, '(d.created_at, d.id)')
      .replace('ORDER BY created_at DESC, id DESC', 'ORDER BY d.created_at DESC, d.id DESC');
    return toPage(
      await query<DeliveryRow>(tx, `SELECT ${DELIVERY_COLS} FROM deliveries d WHERE ${rest}`, params),
      page.limit,
    );
  }

  async delivery(tx: TenantTx, id: string): Promise<DeliveryRow | null> {
    const [row] = await query<DeliveryRow>(
      tx,
      `SELECT ${DELIVERY_COLS} FROM deliveries d WHERE d.tenant_id = $1 AND d.id = $2`,
      [tx.tenantId, id],
    );
    return row ?? null;
  }

  async attempts(
    tx: TenantTx,
    deliveryId: string,
  ): Promise<{ attempt: number; at: Date; status: number | null; error: string | null; latencyMs: number | null }[]> {
    return query(
      tx,
      `SELECT attempt, at, status, error, latency_ms AS "latencyMs" FROM delivery_attempts
        WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY id`,
      [tx.tenantId, deliveryId],
    );
  }

  /** Manual replay: the same event (same id) queued again for this channel now. */
  async replay(tx: TenantTx, channelId: string, deliveryId: string): Promise<DeliveryRow | null> {
    const [row] = await query<DeliveryRow>(
      tx,
      `UPDATE deliveries d SET state = 'pending', next_attempt_at = now(), lease_token = NULL, lease_until = NULL,
              attempts = 0, retry_from = now(), updated_at = now()
        WHERE d.tenant_id = $1 AND d.channel_id = $2 AND d.id = $3 AND d.state <> 'delivering'
        RETURNING ${DELIVERY_COLS}`,
      [tx.tenantId, channelId, deliveryId],
    );
    return row ?? null;
  }
}
