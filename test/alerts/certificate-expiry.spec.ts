/**
 * `certificate.expiring` (ADR 0104): the region health tick (GatewaySweep.checkRegions, a
 * worker schedule) reports a gateway certificate or the deployment CA within 30 days of
 * expiry once per certificate and threshold (30, 7, 1 days), to the tenants it concerns, and
 * a channel that takes the event receives it once.
 */
import { createLogger } from '@backplane/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewaySweep } from '../../apps/worker/src/schedules/gateway-sweep';
import { alertsWorld, startReceiver, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let sweep: GatewaySweep;
let gatewayId: string;

beforeAll(async () => {
  w = await alertsWorld();
  rx = await startReceiver();
  const [r] = await w.h.ds.query<{ id: string }[]>(
    `INSERT INTO regions (slug, name, public_host, public_port, latitude, longitude)
     VALUES ('eu-cert', 'EU', 'gw.example.com', 8443, 50, 8) RETURNING id`,
  );
  const [g] = await w.h.ds.query<{ id: string }[]>(
    `INSERT INTO gateways (region_id, name, credential_hash, last_heartbeat_at)
     VALUES ($1, 'gw-eu-cert', 'hash-c', now()) RETURNING id`,
    [r!.id],
  );
  gatewayId = g!.id;
  const site = await w.api('POST', '/sites', { name: 'Ferry', tags: [] });
  await w.h.ds.query(`UPDATE sites SET region_id = $2 WHERE id = $1`, [site.body.id, r!.id]);
  const hook = await w.api('POST', '/channels', {
    kind: 'webhook',
    name: 'certs',
    url: `${rx.url}/certs`,
    events: ['certificate.expiring'],
  });
  expect(hook.status).toBe(201);
  sweep = new GatewaySweep(
    {
      db: w.h.db,
      redis: w.h.redis,
      redisPrefix: w.h.prefix,
      logger: createLogger({ app: 'alerts-test', level: 'error' }),
      config: { GATEWAY_DOWN_AFTER: 90 },
    },
    { publish: () => Promise.resolve() },
  );
}, 60_000);

afterAll(async () => {
  await w?.close();
  await rx?.close();
});

const expiring = () =>
  w.h.ds.query<{ subject_type: string; subject_id: string | null; data: Record<string, unknown> }[]>(
    `SELECT subject_type, subject_id, data FROM outbox_events WHERE type = 'certificate.expiring' ORDER BY seq`,
  );

describe('certificate expiring', () => {
  it('reports a gateway certificate once per threshold, the CA too, and delivers it', async () => {
    // The deployment CA: the active one (or a new one) expires in 20 days.
    const [ca] = await w.h.ds.query<{ id: string }[]>(`SELECT id FROM pki_authorities WHERE retired_at IS NULL`);
    if (ca)
      await w.h.ds.query(`UPDATE pki_authorities SET not_after = now() + interval '20 days' WHERE id = $1`, [ca.id]);
    else
      await w.h.ds.query(
        `INSERT INTO pki_authorities (certificate_pem, private_key_enc, serial_number, not_after)
         VALUES ('pem', 'enc', 'ca01', now() + interval '20 days')`,
      );
    const [auth] = await w.h.ds.query<{ id: string; serial_number: string }[]>(
      `SELECT id, serial_number FROM pki_authorities WHERE retired_at IS NULL`,
    );
    const cert = (serial: string, days: number) =>
      w.h.ds.query(
        `INSERT INTO gateway_certificates (serial_number, authority_id, gateway_id, common_name, certificate_pem, not_after, issued_at)
         VALUES ($1, $2, $3, 'gw-eu-cert.example.com', 'pem', now() + make_interval(days => $4), now())`,
        [serial, auth!.id, gatewayId, days],
      );
    await cert('a1', 25);

    await sweep.checkRegions();
    let ev = await expiring();
    expect(ev.map((e) => `${String(e.data['certificate'])}:${String(e.data['thresholdDays'])}`).sort()).toEqual([
      'ca:30',
      'gateway:30',
    ]);
    const gw = ev.find((e) => e.data['certificate'] === 'gateway')!;
    expect(gw).toMatchObject({
      subject_type: 'gateway',
      subject_id: gatewayId,
      data: { serialNumber: 'a1', gatewayName: 'gw-eu-cert', daysLeft: 24 },
    });
    // The next tick: nothing new.
    await sweep.checkRegions();
    expect(await expiring()).toHaveLength(2);

    // Closer to expiry: the 7-day threshold is reported, once.
    await w.h.ds.query(
      `UPDATE gateway_certificates SET not_after = now() + interval '6 days' WHERE serial_number = 'a1'`,
    );
    await sweep.checkRegions();
    await sweep.checkRegions();
    ev = await expiring();
    expect(ev.map((e) => `${String(e.data['certificate'])}:${String(e.data['thresholdDays'])}`)).toEqual([
      expect.any(String),
      expect.any(String),
      'gateway:7',
    ]);

    // Renewed (a newer certificate far from expiry): nothing more for this gateway.
    await cert('a2', 365);
    await w.h.ds.query(
      `UPDATE gateway_certificates SET not_after = now() + interval '12 hours' WHERE serial_number = 'a1'`,
    );
    await sweep.checkRegions();
    expect(await expiring()).toHaveLength(3);

    // Delivered to the channel that takes it, once each.
    const d = w.dispatcher();
    d.start();
    await until(() => rx.requests.length >= 3, 15_000, 'three deliveries');
    await until(
      async () =>
        (await w.h.ds.query<unknown[]>(`SELECT 1 FROM deliveries WHERE state IN ('pending', 'delivering')`)).length ===
        0,
      15_000,
      'deliveries final',
    );
    const bodies = rx.requests.map((r) => JSON.parse(r.body) as { id: string; type: string });
    expect(bodies.every((b) => b.type === 'certificate.expiring')).toBe(true);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(3);
    await d.stop();
  }, 60_000);
});
