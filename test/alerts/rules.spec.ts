/**
 * Rules beyond site status: the default "Gateway down" rule from the region-health sweep's
 * `gateway.down` / `gateway.up` events (one per tenant with sites in the gateway's region),
 * and a telemetry rule (CPU above a threshold for its whole duration) firing and resolving.
 */
import { OutboxRepository } from '@backplane/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsWorld, type AlertsWorld } from './fixture';

let w: AlertsWorld;
let siteId: string;
let engine: ReturnType<AlertsWorld['dispatcher']>['engine'];

beforeAll(async () => {
  w = await alertsWorld();
  siteId = (await w.api('POST', '/sites', { name: 'Quarry', tags: ['remote'] })).body.id as string;
  engine = w.dispatcher().engine;
}, 60_000);

afterAll(async () => {
  await w?.close();
});

const openAlerts = async (rule: string) =>
  (
    (await w.api('GET', `/alerts?state=open&q=${encodeURIComponent(rule)}`)).body.items as {
      id: string;
      state: string;
      summary: string;
      ruleName: string;
      subjectType: string;
    }[]
  ).filter((a) => a.ruleName === rule);

describe('gateway down (default rule)', () => {
  it('a gateway without heartbeat raises one alert per tenant with sites in its region; a heartbeat resolves it', async () => {
    const [r] = await w.h.ds.query<{ id: string }[]>(
      `INSERT INTO regions (slug, name, public_host, public_port, latitude, longitude)
       VALUES ('eu-1', 'EU 1', 'gw.example.com', 8443, 50, 8) RETURNING id`,
    );
    const [g] = await w.h.ds.query<{ id: string }[]>(
      `INSERT INTO gateways (region_id, name, credential_hash, last_heartbeat_at)
       VALUES ($1, 'gw-eu-1a', 'hash-1', now() - interval '10 minutes') RETURNING id`,
      [r!.id],
    );
    await w.h.ds.query(`UPDATE sites SET region_id = $2 WHERE id = $1`, [siteId, r!.id]);
    const sweep = () => w.h.db.inPlatform((tx) => new OutboxRepository().gatewayDownSweep(tx, 90));
    expect(await sweep()).toEqual([{ gateway_id: g!.id, down: true }]);
    expect(await sweep()).toEqual([]); // reported once
    await engine.processTenant(w.tenantId);
    const open = await openAlerts('Gateway down');
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ state: 'firing', subjectType: 'gateway' });
    expect(open[0]!.summary).toContain('gw-eu-1a');

    await w.h.ds.query(`UPDATE gateways SET last_heartbeat_at = now() WHERE id = $1`, [g!.id]);
    expect(await sweep()).toEqual([{ gateway_id: g!.id, down: false }]);
    await engine.processTenant(w.tenantId);
    expect(await openAlerts('Gateway down')).toEqual([]);
    const types = await w.h.ds.query<{ type: string }[]>(
      `SELECT type FROM outbox_events WHERE type LIKE 'gateway.%' OR (type LIKE 'alert.%' AND data->>'ruleName' = 'Gateway down') ORDER BY seq`,
    );
    expect(types.map((t) => t.type)).toEqual(['gateway.down', 'alert.firing', 'gateway.up', 'alert.resolved']);
  });
});

describe('telemetry threshold rule', () => {
  it('CPU above 90 % for the whole duration fires; a normal sample resolves', async () => {
    const rule = await w.api('POST', '/alert-rules', {
      kind: 'telemetry',
      name: 'CPU hot',
      metric: 'cpu',
      operator: '>',
      threshold: 90,
      durationSeconds: 60,
      scope: 'tags',
      tags: ['remote'],
      severity: 'warning',
    });
    expect(rule.status).toBe(201);
    const sample = (secondsAgo: number, cpu: number) =>
      w.h.ds.query(
        `INSERT INTO telemetry_samples (tenant_id, site_id, at, cpu_load) VALUES ($1, $2, now() - make_interval(secs => $3), $4)`,
        [w.tenantId, siteId, secondsAgo, cpu],
      );
    // Hot for only 20 s: not yet.
    await sample(20, 97);
    await sample(5, 95);
    await engine.processTenant(w.tenantId);
    expect(await openAlerts('CPU hot')).toEqual([]);
    // Hot for the whole minute.
    await sample(58, 96);
    await sample(40, 99);
    await engine.processTenant(w.tenantId);
    const open = await openAlerts('CPU hot');
    expect(open).toHaveLength(1);
    expect(open[0]!.summary).toMatch(/^Quarry: cpu > 90 for 60s \(now 95\.0\)$/);
    await engine.processTenant(w.tenantId);
    expect(await openAlerts('CPU hot')).toHaveLength(1); // still one (dedup)
    await sample(1, 12);
    await engine.processTenant(w.tenantId);
    expect(await openAlerts('CPU hot')).toEqual([]);
    const resolved = await w.api('GET', `/alerts?state=resolved&ruleId=${rule.body.id as string}`);
    expect(resolved.body.items).toHaveLength(1);
  });
});

describe('outbox retention', () => {
  it('old processed events with final deliveries go; unprocessed or still-retrying ones stay', async () => {
    const ch = await w.api('POST', '/channels', {
      kind: 'webhook',
      name: 'ret',
      url: 'https://hooks.example.com/x',
      events: ['backup.created'],
    });
    const mk = async (processed: boolean) => {
      const [e] = await w.h.ds.query<{ id: string }[]>(
        `INSERT INTO outbox_events (tenant_id, type, subject_type, data, occurred_at, processed_at)
         VALUES ($1, 'backup.created', 'site', '{}', now() - interval '40 days', CASE WHEN $2 THEN now() END) RETURNING id`,
        [w.tenantId, processed],
      );
      return e!.id;
    };
    const done = await mk(true);
    const unprocessed = await mk(false);
    const retrying = await mk(true);
    const recent = (
      await w.h.ds.query<{ id: string }[]>(
        `INSERT INTO outbox_events (tenant_id, type, subject_type, data, processed_at) VALUES ($1, 'test', 'tenant', '{}', now()) RETURNING id`,
        [w.tenantId],
      )
    )[0]!.id;
    for (const [id, state] of [
      [done, 'delivered'],
      [retrying, 'pending'],
    ] as const) {
      await w.h.ds.query(
        `INSERT INTO deliveries (tenant_id, channel_id, event_id, event_type, state) VALUES ($1, $2, $3, 'backup.created', $4)`,
        [w.tenantId, ch.body.id, id, state],
      );
    }
    const n = await w.h.db.inPlatform((tx) => new OutboxRepository().cleanup(tx, 30, 100));
    expect(n).toBe(1);
    const left = (await w.h.ds.query<{ id: string }[]>(`SELECT id FROM outbox_events`)).map((r) => r.id);
    expect(left).not.toContain(done);
    expect(left).toEqual(expect.arrayContaining([unprocessed, retrying, recent]));
  });
});
