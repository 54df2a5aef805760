import { EVENT_CATALOGUE, resolvingEvent, type AlertNotice, type EventType } from '@backplane/contracts';
import {
  AlertRulesRepository,
  AlertsRepository,
  ChannelsRepository,
  MaintenanceWindowsRepository,
  OutboxRepository,
  TenantScope,
  type AlertRow,
  type AlertRuleRow,
  type ChannelRow,
  type Database,
  type OutboxEventRow,
  type TenantTx,
} from '@backplane/db';
import { windowState } from '@backplane/jobs';
import type { Logger } from 'pino';

/** Event types that end a condition, mapped to the types whose condition they end. */
const RESOLVES = new Map<string, string[]>();
for (const t of Object.keys(EVENT_CATALOGUE) as EventType[]) {
  const r = resolvingEvent(t);
  if (r) RESOLVES.set(r, [...(RESOLVES.get(r) ?? []), t]);
}

export interface EngineDeps {
  readonly db: Database;
  readonly keyring: ConstructorParameters<typeof ChannelsRepository>[0];
  readonly logger: Logger;
  /**
   * Called after the commit for every alert that changed (the worker publishes the realtime
   * `alert.changed` event from it, `alertChangePublisher`; docs/adr/0093).
   */
  readonly onAlertChange?: ((tenantId: string, change: AlertChange) => void) | undefined;
  /** Seconds between telemetry rule evaluations of one tenant. */
  readonly telemetryEverySeconds?: number;
}

export interface AlertChange {
  readonly alertId: string;
  readonly state: 'pending' | 'firing' | 'resolved';
  readonly siteId?: string | null;
  readonly severity?: string;
}

interface Changed {
  readonly tenantId: string;
  readonly data: AlertChange;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * The alert engine (issue 20): per tenant, in ONE transaction, it takes the unprocessed
 * outbox events in order, fans each out to the channels whose filter takes it, applies the
 * tenant's rules (opening, firing and resolving alerts; one open alert per rule and subject),
 * promotes pending alerts whose duration has passed, evaluates telemetry rules, and marks the
 * events processed. The notifications it decides on (`alert.firing`, `alert.resolved`) are new
 * outbox events, fanned out by the next round: a crash anywhere rolls all of it back, and
 * nothing is decided twice.
 */
export class AlertEngine {
  private readonly outbox = new OutboxRepository();
  private readonly rules = new AlertRulesRepository();
  private readonly alerts = new AlertsRepository();
  private readonly windows = new MaintenanceWindowsRepository();
  readonly channels: ChannelsRepository;
  private readonly telemetryAt = new Map<string, number>();

  constructor(private readonly deps: EngineDeps) {
    this.channels = new ChannelsRepository(deps.keyring);
  }

  /** One round for a tenant; returns how many events and alerts it handled (0: idle). */
  async processTenant(tenantId: string, batch = 200): Promise<number> {
    const changed: Changed[] = [];
    const n = await this.deps.db.inTenant(TenantScope.authenticated(tenantId), async (tx) => {
      const events = await this.outbox.claimPending(tx, batch);
      for (const e of events) await this.handle(tx, e, changed);
      await this.outbox.markProcessed(
        tx,
        events.map((e) => e.id),
      );
      const due = await this.alerts.due(tx, batch);
      for (const a of due) {
        const fired = await this.alerts.fire(tx, a.id);
        await this.notify(tx, fired, 'alert.firing', null, changed);
      }
      const t = await this.evaluateTelemetry(tx, changed);
      return events.length + due.length + t;
    });
    for (const c of changed) this.deps.onAlertChange?.(c.tenantId, c.data);
    return n;
  }

  private async handle(tx: TenantTx, e: OutboxEventRow, changed: Changed[]): Promise<void> {
    if (e.type === 'test') {
      await this.channels.fanOut(tx, e, String(e.data['channelId']));
      return;
    }
    const severity = e.type.startsWith('alert.') ? (e.data['severity'] as string | undefined) : undefined;
    // A site in its maintenance window: its events still drive the rules, but nothing is sent.
    const muted = e.subjectType === 'site' && e.subjectId ? await this.windowOpen(tx, e.subjectId, new Date()) : null;
    if (!muted) await this.channels.fanOut(tx, { id: e.id, type: e.type, severity });
    if (e.type.startsWith('alert.')) return;
    const resolves = RESOLVES.get(e.type) ?? [];
    const rules = await this.rules.forEvents(tx, [e.type, ...resolves]);
    if (!rules.length) return;
    const site = e.subjectType === 'site' && e.subjectId ? await this.rules.site(tx, e.subjectId) : null;
    for (const r of rules) {
      if (!inScope(r, e, site)) continue;
      if (r.eventType === e.type) {
        if (await this.alerts.open(tx, r.id, e.subjectType, e.subjectId)) continue; // dedup
        const firesAt = new Date(e.occurredAt.getTime() + r.durationSeconds * 1000);
        const a = await this.alerts.openNew(tx, {
          ruleId: r.id,
          ruleName: r.name,
          severity: r.severity,
          subjectType: e.subjectType,
          subjectId: e.subjectId,
          siteId: e.subjectType === 'site' ? e.subjectId : null,
          summary: summaryOf(r, e, site?.name),
          causeEventId: e.id,
          firesAt,
          silencedUntil: null,
        });
        if (!a) continue;
        if (a.state === 'firing') await this.notify(tx, a, 'alert.firing', r, changed);
        else changed.push({ tenantId: tx.tenantId, data: { alertId: a.id, state: a.state, siteId: a.siteId } });
      } else {
        const open = await this.alerts.open(tx, r.id, e.subjectType, e.subjectId);
        if (!open) continue;
        const resolved = await this.alerts.resolve(tx, open, e.id);
        if (resolved) await this.notify(tx, resolved, 'alert.resolved', r, changed);
        else
          changed.push({ tenantId: tx.tenantId, data: { alertId: open.id, state: 'resolved', siteId: open.siteId } });
      }
    }
  }

  /** Writes the `alert.*` notification (unless the alert or its rule is silenced). */
  private async notify(
    tx: TenantTx,
    a: AlertRow,
    type: 'alert.firing' | 'alert.resolved',
    rule: AlertRuleRow | null,
    changed: Changed[],
  ): Promise<void> {
    changed.push({
      tenantId: tx.tenantId,
      data: { alertId: a.id, state: a.state, siteId: a.siteId, severity: a.severity },
    });
    const r = rule ?? (a.ruleId ? await this.rules.get(tx, a.ruleId) : null);
    const now = Date.now();
    if ((a.silencedUntil && a.silencedUntil.getTime() > now) || (r?.silencedUntil && r.silencedUntil.getTime() > now)) {
      return;
    }
    if (a.siteId) {
      // Muted by the site's maintenance window (docs/adr/0092): the alert is recorded and shown,
      // silenced until the window closes; its resolution is muted too when its firing was.
      const closes = await this.windowOpen(tx, a.siteId, new Date(now));
      if (type === 'alert.firing' && closes) {
        await this.alerts.silence(tx, a.id, closes);
        this.deps.logger.info({ alertId: a.id, siteId: a.siteId, until: closes }, 'alert muted by maintenance window');
        return;
      }
      if (type === 'alert.resolved' && (closes || (a.firedAt && (await this.windowOpen(tx, a.siteId, a.firedAt)))))
        return;
    }
    const site = a.siteId ? await this.rules.site(tx, a.siteId) : null;
    const data: AlertNotice = {
      alertId: a.id,
      ruleId: a.ruleId,
      ruleName: a.ruleName,
      severity: a.severity,
      state: a.state === 'resolved' ? 'resolved' : 'firing',
      summary: a.summary,
      subjectType: a.subjectType as AlertNotice['subjectType'],
      subjectId: a.subjectId,
      siteName: site?.name ?? null,
      firedAt: iso(a.firedAt) ?? new Date().toISOString(),
      resolvedAt: iso(a.resolvedAt),
      causeEventId: a.causeEventId,
    };
    await this.outbox.emit(tx, { tenantId: tx.tenantId, type, subjectType: 'alert', subjectId: a.id, data });
  }

  /** When the site's open maintenance window closes (null: no window open at `at`). */
  private async windowOpen(tx: TenantTx, siteId: string, at: Date): Promise<Date | null> {
    const site = await this.windows.forSite(tx, siteId);
    if (!site || site.windows.length === 0) return null;
    return windowState(site.windows, site.timezone, at).current?.closesAt ?? null;
  }

  private async evaluateTelemetry(tx: TenantTx, changed: Changed[]): Promise<number> {
    const every = (this.deps.telemetryEverySeconds ?? 30) * 1000;
    const last = this.telemetryAt.get(tx.tenantId) ?? 0;
    if (Date.now() - last < every) return 0;
    this.telemetryAt.set(tx.tenantId, Date.now());
    let n = 0;
    for (const r of await this.rules.telemetryRules(tx)) {
      const states = await this.rules.telemetryState(tx, r);
      const open = new Map((await this.alerts.openOfRule(tx, r.id)).map((a) => [a.subjectId, a]));
      for (const s of states) {
        const a = open.get(s.siteId);
        if (s.breached && !a) {
          const eventId = await this.outbox.emit(tx, {
            tenantId: tx.tenantId,
            type: 'telemetry.threshold',
            subjectType: 'site',
            subjectId: s.siteId,
            data: { siteId: s.siteId, siteName: s.siteName, metric: r.metric, value: s.value, threshold: r.threshold },
          });
          const created = await this.alerts.openNew(tx, {
            ruleId: r.id,
            ruleName: r.name,
            severity: r.severity,
            subjectType: 'site',
            subjectId: s.siteId,
            siteId: s.siteId,
            summary: `${s.siteName}: ${r.metric} ${r.operator} ${r.threshold} for ${r.durationSeconds}s (now ${s.value?.toFixed(1)})`,
            causeEventId: eventId,
            firesAt: new Date(0),
            silencedUntil: null,
          });
          if (created) await this.notify(tx, created, 'alert.firing', r, changed);
          n++;
        } else if (!s.breached && a && s.value !== null) {
          const resolved = await this.alerts.resolve(tx, a, null);
          if (resolved) await this.notify(tx, resolved, 'alert.resolved', r, changed);
          n++;
        }
      }
    }
    return n;
  }

  /**
   * A channel that kept failing was disabled: a system alert for the tenant's admins (alerts
   * page, every other channel that takes `channel.disabled` or alert notifications).
   */
  async channelDisabled(tx: TenantTx, ch: ChannelRow): Promise<void> {
    const eventId = await this.outbox.emit(tx, {
      tenantId: tx.tenantId,
      type: 'channel.disabled',
      subjectType: 'channel',
      subjectId: ch.id,
      data: { channelId: ch.id, channelName: ch.name, failures: ch.consecutiveFailures },
    });
    const a = await this.alerts.openNew(tx, {
      ruleId: null,
      ruleName: 'Notification channel disabled',
      severity: 'critical',
      subjectType: 'channel',
      subjectId: ch.id,
      siteId: null,
      summary: `Channel "${ch.name}" was disabled after ${ch.consecutiveFailures} failed deliveries in a row`,
      causeEventId: eventId,
      firesAt: new Date(0),
      silencedUntil: null,
    });
    if (a) await this.notify(tx, a, 'alert.firing', null, []);
  }
}

function inScope(r: AlertRuleRow, e: OutboxEventRow, site: { tags: string[] } | null): boolean {
  if (r.scope === 'all') return true;
  if (e.subjectType !== 'site' || !e.subjectId) return false;
  if (r.scope === 'sites') return r.siteIds.includes(e.subjectId);
  return !!site && site.tags.some((t) => r.tags.includes(t));
}

function summaryOf(r: AlertRuleRow, e: OutboxEventRow, siteName: string | undefined): string {
  const who = siteName ?? (e.data['gatewayName'] as string | undefined) ?? e.subjectId ?? 'tenant';
  const entry = EVENT_CATALOGUE[e.type as EventType] as { summary: string } | undefined;
  const dur = r.durationSeconds
    ? ` for ${r.durationSeconds >= 60 ? `${Math.round(r.durationSeconds / 60)} min` : `${r.durationSeconds} s`}`
    : '';
  return `${who}: ${entry?.summary ?? e.type}${dur}`;
}
