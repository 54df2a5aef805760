import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { ChannelConfigSchemas, DEFAULT_CHANNEL_EVENTS } from '@backplane/contracts';
import {
  AlertRulesRepository,
  AlertsRepository,
  ChannelsRepository,
  OutboxRepository,
  type AlertRow,
  type AlertRuleInput,
  type AlertRuleRow,
  type ChannelInput,
  type ChannelRow,
  type ChannelSecrets,
  type DeliveryRow,
} from '@backplane/db';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import type {
  AlertResponse,
  AlertRuleResponse,
  ChannelResponse,
  CreateAlertRuleBody,
  CreateChannelBody,
  CreatedChannelResponse,
  DeliveryResponse,
  ListAlertsQuery,
  UpdateAlertRuleBody,
  UpdateChannelBody,
} from './alerts.schemas';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const notFound = (what: string) => new ApiError('not_found', `${what} not found`);

export function alertOut(a: AlertRow): z.infer<typeof AlertResponse> {
  return {
    id: a.id,
    ruleId: a.ruleId,
    ruleName: a.ruleName,
    severity: a.severity,
    subjectType: a.subjectType,
    subjectId: a.subjectId,
    siteId: a.siteId,
    state: a.state,
    summary: a.summary,
    causeEventId: a.causeEventId,
    pendingSince: a.pendingSince.toISOString(),
    firesAt: a.firesAt.toISOString(),
    firedAt: iso(a.firedAt),
    resolvedAt: iso(a.resolvedAt),
    acknowledgedAt: iso(a.acknowledgedAt),
    acknowledgedBy: a.acknowledgedBy,
    silencedUntil: iso(a.silencedUntil),
    createdAt: a.createdAt.toISOString(),
  };
}

function ruleOut(r: AlertRuleRow): z.infer<typeof AlertRuleResponse> {
  return {
    ...r,
    silencedUntil: iso(r.silencedUntil),
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

/** Scheme, host and port only: chat webhook URLs carry their token in the path. */
function targetOf(url: string | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}

function channelOut(c: ChannelRow, s: ChannelSecrets): z.infer<typeof ChannelResponse> {
  const cfg = c.config;
  return {
    id: c.id,
    name: c.name,
    kind: c.kind,
    config: cfg,
    target:
      targetOf(s.url) ??
      (c.kind === 'telegram'
        ? targetOf(cfg['apiBase'] as string)
        : c.kind === 'ntfy'
          ? targetOf(cfg['server'] as string)
          : null),
    events: c.events,
    minSeverity: c.minSeverity,
    maxConcurrency: c.maxConcurrency,
    enabled: c.enabled,
    disabledReason: c.disabledReason,
    disabledAt: iso(c.disabledAt),
    consecutiveFailures: c.consecutiveFailures,
    circuitOpenUntil: iso(c.circuitOpenUntil),
    previousSecretUntil: s.previousSecret && s.previousUntil ? s.previousUntil : null,
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}

function deliveryOut(d: DeliveryRow): z.infer<typeof DeliveryResponse> {
  return {
    id: d.id,
    channelId: d.channelId,
    eventId: d.eventId,
    eventType: d.eventType,
    state: d.state,
    attempts: d.attempts,
    nextAttemptAt: d.nextAttemptAt.toISOString(),
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    lastLatencyMs: d.lastLatencyMs,
    deliveredAt: iso(d.deliveredAt),
    createdAt: d.createdAt.toISOString(),
  };
}

const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** Alerts, alert rules and notification channels of a tenant (issue 20, ADR 0091). */
@Injectable()
export class AlertsService {
  private readonly alerts = new AlertsRepository();
  private readonly rules = new AlertRulesRepository();
  private readonly outbox = new OutboxRepository();
  private readonly channels: ChannelsRepository;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditService,
  ) {
    this.channels = new ChannelsRepository(deps.keyring);
  }

  // ---- alerts

  async listAlerts(t: TenantContext, q: z.infer<typeof ListAlertsQuery>) {
    const page = await this.deps.db.inTenant(t.scope, (tx) => this.alerts.list(tx, q, q));
    return { items: page.items.map(alertOut), nextCursor: page.nextCursor };
  }

  async getAlert(t: TenantContext, id: string) {
    const a = await this.deps.db.inTenant(t.scope, (tx) => this.alerts.get(tx, id));
    if (!a) throw notFound('alert');
    return alertOut(a);
  }

  async counts(t: TenantContext) {
    return { items: await this.deps.db.inTenant(t.scope, (tx) => this.alerts.openCounts(tx)) };
  }

  async acknowledge(t: TenantContext, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const a = await this.alerts.acknowledge(tx, id, t.actor.actorLabel ?? t.actor.actorId ?? 'unknown');
      if (!a)
        throw (await this.alerts.get(tx, id)) ? new ApiError('conflict', 'the alert is resolved') : notFound('alert');
      await this.audit.record(tx, t.actor, { action: 'alert.acknowledged', targetType: 'alert', targetId: id });
      return alertOut(a);
    });
  }

  async silence(t: TenantContext, id: string, until: string | null) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const a = await this.alerts.silence(tx, id, until ? new Date(until) : null);
      if (!a) throw notFound('alert');
      await this.audit.record(tx, t.actor, {
        action: until ? 'alert.silenced' : 'alert.unsilenced',
        targetType: 'alert',
        targetId: id,
        after: { silencedUntil: until },
      });
      return alertOut(a);
    });
  }

  // ---- rules

  async listRules(t: TenantContext, q: { limit: number; cursor?: string | undefined }) {
    const page = await this.deps.db.inTenant(t.scope, (tx) => this.rules.list(tx, q));
    return { items: page.items.map(ruleOut), nextCursor: page.nextCursor };
  }

  async getRule(t: TenantContext, id: string) {
    const r = await this.deps.db.inTenant(t.scope, (tx) => this.rules.get(tx, id));
    if (!r) throw notFound('alert rule');
    return ruleOut(r);
  }

  async createRule(t: TenantContext, b: z.infer<typeof CreateAlertRuleBody>) {
    const input: AlertRuleInput = {
      name: b.name,
      enabled: b.enabled,
      kind: b.kind,
      eventType: b.kind === 'event' ? b.eventType : null,
      metric: b.kind === 'telemetry' ? b.metric : null,
      operator: b.kind === 'telemetry' ? b.operator : null,
      threshold: b.kind === 'telemetry' ? b.threshold : null,
      durationSeconds: b.durationSeconds,
      scope: b.scope,
      tags: b.tags,
      siteIds: b.siteIds,
      severity: b.severity,
      silencedUntil: b.silencedUntil ? new Date(b.silencedUntil) : null,
    };
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const r = ruleOut(await this.rules.create(tx, input));
      await this.audit.record(tx, t.actor, {
        action: 'alert_rule.created',
        targetType: 'alert_rule',
        targetId: r.id,
        after: r,
      });
      return r;
    });
  }

  async updateRule(t: TenantContext, id: string, b: z.infer<typeof UpdateAlertRuleBody>) {
    const { silencedUntil, ...rest } = b;
    const patch: Partial<AlertRuleInput> = {
      ...rest,
      ...(silencedUntil !== undefined ? { silencedUntil: silencedUntil ? new Date(silencedUntil) : null } : {}),
    };
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.rules.get(tx, id);
      if (!before) throw notFound('alert rule');
      const r = await this.rules.update(tx, id, patch).catch((err: unknown) => {
        if (String(err).includes('alert_rules_shape')) {
          throw new ApiError(
            'validation_failed',
            'an event rule needs eventType; a telemetry rule metric, operator and threshold',
          );
        }
        throw err;
      });
      const out = ruleOut(r!);
      await this.audit.record(tx, t.actor, {
        action: 'alert_rule.updated',
        targetType: 'alert_rule',
        targetId: id,
        before: ruleOut(before),
        after: out,
      });
      return out;
    });
  }

  async deleteRule(t: TenantContext, id: string) {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.rules.get(tx, id);
      if (!before || !(await this.rules.delete(tx, id))) throw notFound('alert rule');
      await this.audit.record(tx, t.actor, {
        action: 'alert_rule.deleted',
        targetType: 'alert_rule',
        targetId: id,
        before: ruleOut(before),
      });
    });
  }

  // ---- channels

  async listChannels(t: TenantContext, q: { limit: number; cursor?: string | undefined }) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const page = await this.channels.list(tx, q);
      const items = [];
      for (const c of page.items) items.push(channelOut(c, await this.channels.secrets(tx, c.id)));
      return { items, nextCursor: page.nextCursor };
    });
  }

  async getChannel(t: TenantContext, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const c = await this.channels.get(tx, id);
      if (!c) throw notFound('channel');
      return channelOut(c, await this.channels.secrets(tx, id));
    });
  }

  async createChannel(
    t: TenantContext,
    b: z.infer<typeof CreateChannelBody>,
  ): Promise<z.infer<typeof CreatedChannelResponse>> {
    const secrets: ChannelSecrets = {};
    let config: Record<string, unknown> = {};
    if ('url' in b) secrets.url = b.url;
    if (b.kind === 'webhook') secrets.signingSecret = newSigningSecret();
    if (b.kind === 'telegram') secrets.botToken = b.botToken;
    if (b.kind === 'ntfy' && b.accessToken) secrets.botToken = b.accessToken;
    if ('config' in b) config = b.config;
    const input: ChannelInput = {
      name: b.name,
      kind: b.kind,
      config,
      events: [...(b.events ?? DEFAULT_CHANNEL_EVENTS)],
      minSeverity: b.minSeverity,
      maxConcurrency: b.maxConcurrency,
      enabled: b.enabled,
    };
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const c = await this.channels.create(tx, input, secrets);
      const out = channelOut(c, secrets);
      await this.audit.record(tx, t.actor, {
        action: 'channel.created',
        targetType: 'channel',
        targetId: c.id,
        after: out,
      });
      return { ...out, signingSecret: secrets.signingSecret ?? null };
    });
  }

  async updateChannel(t: TenantContext, id: string, b: z.infer<typeof UpdateChannelBody>) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.channels.get(tx, id);
      if (!before) throw notFound('channel');
      const secrets = await this.channels.secrets(tx, id);
      let changedSecrets = false;
      if (b.url !== undefined) {
        if (!['webhook', 'slack', 'teams', 'discord'].includes(before.kind))
          throw new ApiError('validation_failed', `a ${before.kind} channel has no url`);
        secrets.url = b.url;
        changedSecrets = true;
      }
      if (b.botToken !== undefined) {
        secrets.botToken = b.botToken;
        changedSecrets = true;
      }
      let config: Record<string, unknown> | undefined;
      if (b.config !== undefined) {
        const parsed = ChannelConfigSchemas[before.kind].safeParse(b.config);
        if (!parsed.success)
          throw new ApiError(
            'validation_failed',
            `invalid body: config: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
          );
        config = parsed.data;
      }
      const c = await this.channels.update(
        tx,
        id,
        {
          name: b.name,
          config,
          events: b.events,
          minSeverity: b.minSeverity,
          maxConcurrency: b.maxConcurrency,
          enabled: b.enabled,
        },
        changedSecrets ? secrets : undefined,
      );
      const out = channelOut(c!, secrets);
      await this.audit.record(tx, t.actor, {
        action: 'channel.updated',
        targetType: 'channel',
        targetId: id,
        before: channelOut(before, secrets),
        after: out,
      });
      return out;
    });
  }

  async deleteChannel(t: TenantContext, id: string) {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.channels.delete(tx, id))) throw notFound('channel');
      await this.audit.record(tx, t.actor, { action: 'channel.deleted', targetType: 'channel', targetId: id });
    });
  }

  /** New signing secret; the previous one keeps signing (second signature) for the overlap. */
  async rotateSecret(t: TenantContext, id: string, overlapSeconds: number) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const c = await this.channels.get(tx, id);
      if (!c) throw notFound('channel');
      if (c.kind !== 'webhook') throw new ApiError('validation_failed', 'only webhook channels have a signing secret');
      const s = await this.channels.secrets(tx, id);
      const next: ChannelSecrets = {
        ...s,
        signingSecret: newSigningSecret(),
        previousSecret: overlapSeconds > 0 ? s.signingSecret : undefined,
        previousUntil: overlapSeconds > 0 ? new Date(Date.now() + overlapSeconds * 1000).toISOString() : undefined,
      };
      const row = await this.channels.update(tx, id, {}, next);
      await this.audit.record(tx, t.actor, {
        action: 'channel.secret_rotated',
        targetType: 'channel',
        targetId: id,
        after: { previousSecretUntil: next.previousUntil ?? null },
      });
      return { ...channelOut(row!, next), signingSecret: next.signingSecret ?? null };
    });
  }

  /** "Send test": a `test` event for this channel only, through the outbox like any other. */
  async sendTest(t: TenantContext, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const c = await this.channels.get(tx, id);
      if (!c) throw notFound('channel');
      const eventId = await this.outbox.emit(tx, {
        tenantId: tx.tenantId,
        type: 'test',
        subjectType: 'channel',
        subjectId: id,
        data: { channelId: id, message: `Test notification for channel "${c.name}" from Backplane` },
      });
      await this.audit.record(tx, t.actor, {
        action: 'channel.test_sent',
        targetType: 'channel',
        targetId: id,
        after: { eventId },
      });
      return { eventId };
    });
  }

  async listDeliveries(
    t: TenantContext,
    channelId: string,
    q: { state?: DeliveryRow['state'] | undefined; limit: number; cursor?: string | undefined },
  ) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.channels.get(tx, channelId))) throw notFound('channel');
      const page = await this.channels.deliveries(tx, channelId, q.state, q);
      return { items: page.items.map(deliveryOut), nextCursor: page.nextCursor };
    });
  }

  async getDelivery(t: TenantContext, channelId: string, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const d = await this.channels.delivery(tx, id);
      if (!d || d.channelId !== channelId) throw notFound('delivery');
      const log = await this.channels.attempts(tx, id);
      return { ...deliveryOut(d), attemptLog: log.map((a) => ({ ...a, at: a.at.toISOString() })) };
    });
  }

  async replay(t: TenantContext, channelId: string, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const d = await this.channels.replay(tx, channelId, id);
      if (!d) {
        const cur = await this.channels.delivery(tx, id);
        if (!cur || cur.channelId !== channelId) throw notFound('delivery');
        throw new ApiError('conflict', 'the delivery is being sent right now');
      }
      await this.audit.record(tx, t.actor, {
        action: 'delivery.replayed',
        targetType: 'delivery',
        targetId: id,
        after: { channelId, eventId: d.eventId },
      });
      return deliveryOut(d);
    });
  }
}
