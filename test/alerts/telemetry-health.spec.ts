/**
 * Telemetry rules on the router's temperature and on interfaces going down (ADR 0104),
 * evaluated like the cpu/memory/latency rules: breached for the rule's whole duration fires one
 * alert; a normal sample resolves it. Samples are stored through the gateway's ingest
 * function, as a gateway's batch is.
 */
import { TelemetryRepository } from '@backplane/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsWorld, type AlertsWorld } from './fixture';

let w: AlertsWorld;
let siteId: string;
let gatewayId: string;
let engine: ReturnType<AlertsWorld['dispatcher']>['engine'];

beforeAll(async () => {
  w = await alertsWorld();
  siteId = (await w.api('POST', '/sites', { name: 'Boiler Room', tags: ['hot'] })).body.id as string;
  const [r] = await w.h.ds.query<{ id: string }[]>(
    `INSERT INTO regions (slug, name, public_host, public_port, latitude, longitude)
     VALUES ('eu-t', 'EU', 'gw.example.com', 8443, 50, 8) RETURNING id`,
  );
  const [g] = await w.h.ds.query<{ id: string }[]>(
    `INSERT INTO gateways (region_id, name, credential_hash, last_heartbeat_at)
     VALUES ($1, 'gw-t', 'hash-t', now()) RETURNING id`,
    [r!.id],
  );
  gatewayId = g!.id;
  await w.h.ds.query(`UPDATE sites SET region_id = $2, gateway_id = $3, online = true WHERE id = $1`, [
    siteId,
    r!.id,
    gatewayId,
  ]);
  engine = w.dispatcher().engine;
}, 60_000);

afterAll(async () => {
  await w?.close();
});

/** One sample as a gateway sends it, `secondsAgo` old. */
const sample = (secondsAgo: number, temperatureC: number | null, interfacesDown: number | null, site = siteId) =>
  w.h.db.inPlatform((tx) =>
    new TelemetryRepository().ingest(tx, gatewayId, [
      {
        siteId: site,
        at: new Date(Date.now() - secondsAgo * 1000).toISOString(),
        cpuLoad: 5,
        memoryUsed: 1,
        memoryTotal: 2,
        uptimeSeconds: 100,
        tunnelBytesIn: 0,
        tunnelBytesOut: 0,
        latencyMs: 3,
        temperatureC,
        interfacesDown,
        interfaces: [],
      },
    ]),
  );

const open = async (rule: string) =>
  ((await w.api('GET', `/alerts?state=open`)).body.items as { ruleName: string; summary: string }[]).filter(
    (a) => a.ruleName === rule,
  );

describe('telemetry rules: temperature and interfaces down', () => {
  it('temperature above 70 °C for the duration fires once; a cool sample resolves', async () => {
    const rule = await w.api('POST', '/alert-rules', {
      kind: 'telemetry',
      name: 'Too hot',
      metric: 'temperature',
      operator: '>',
      threshold: 70,
      durationSeconds: 60,
      scope: 'tags',
      tags: ['hot'],
      severity: 'critical',
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);
    expect((await sample(58, 74, 0)).length).toBe(1);
    await sample(30, 77, 0);
    await sample(2, 79, 0);
    await engine.processTenant(w.tenantId);
    const a = await open('Too hot');
    expect(a).toHaveLength(1);
    expect(a[0]!.summary).toBe('Boiler Room: temperature > 70 for 60s (now 79.0)');
    await engine.processTenant(w.tenantId);
    expect(await open('Too hot')).toHaveLength(1);
    await sample(1, 45, 0);
    await engine.processTenant(w.tenantId);
    expect(await open('Too hot')).toEqual([]);
    await w.api('DELETE', `/alert-rules/${rule.body.id as string}`);
  });

  it('an interface down for the duration fires; back up resolves; a short blip does not fire', async () => {
    const rule = await w.api('POST', '/alert-rules', {
      kind: 'telemetry',
      name: 'Link down',
      metric: 'interfaces-down',
      operator: '>',
      threshold: 0,
      durationSeconds: 60,
      severity: 'warning',
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);
    const closet = (await w.api('POST', '/sites', { name: 'Switch Closet' })).body.id as string;
    await w.h.ds.query(`UPDATE sites SET gateway_id = $2, online = true WHERE id = $1`, [closet, gatewayId]);
    const s = (secondsAgo: number, down: number) => sample(secondsAgo, null, down, closet);
    // Down for only 20 s: not yet.
    await s(20, 1);
    await engine.processTenant(w.tenantId);
    expect(await open('Link down')).toEqual([]);
    await s(59, 1);
    await s(40, 2);
    await engine.processTenant(w.tenantId);
    const a = await open('Link down');
    expect(a).toHaveLength(1);
    expect(a[0]!.summary).toBe('Switch Closet: interfaces-down > 0 for 60s (now 1.0)');
    await s(1, 0);
    await engine.processTenant(w.tenantId);
    expect(await open('Link down')).toEqual([]);
    const types = await w.h.ds.query<{ type: string; data: { metric: string } }[]>(
      `SELECT type, data FROM outbox_events WHERE type = 'telemetry.threshold' ORDER BY seq`,
    );
    expect(types.map((t) => t.data.metric)).toEqual(['temperature', 'interfaces-down']);
  });
});
