/**
 * Alert lifecycle and the transactional outbox: events exist only when the change committed
 * (triggers in the same transaction), default rules for every tenant, a site offline raises
 * ONE alert after the rule's duration (nothing before), delivered once per matching channel,
 * resolved when it comes back; a short outage below the duration sends nothing; dedup (one
 * open alert per rule and site), acknowledge, silence, searchable history, role checks, and a
 * channel that keeps failing is disabled with an alert to the tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, login } from '../api/harness';
import { alertsWorld, startReceiver, TEST_POLICY, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let siteId: string;
let hookId: string;
let offlineRule: string;
let first: ReturnType<AlertsWorld['dispatcher']> | undefined;

beforeAll(async () => {
  w = await alertsWorld();
  rx = await startReceiver();
  siteId = (await w.api('POST', '/sites', { name: 'Depot North', tags: ['depot'] })).body.id as string;
  const hook = await w.api('POST', '/channels', { kind: 'webhook', name: 'hook', url: `${rx.url}/hook` });
  hookId = hook.body.id as string;
}, 60_000);

afterAll(async () => {
  await w?.close();
  await rx?.close();
});

const setOnline = (online: boolean) => w.h.ds.query(`UPDATE sites SET online = $2 WHERE id = $1`, [siteId, online]);
const events = async (type?: string) =>
  await w.h.ds.query<{ id: string; type: string; subject_id: string; data: Record<string, unknown> }[]>(
    `SELECT id, type, subject_id, data FROM outbox_events WHERE ($1::text IS NULL OR type = $1) ORDER BY seq`,
    [type ?? null],
  );
const hooks = (type: string) =>
  rx.requests
    .filter((r) => r.path === '/hook')
    .map((r) => JSON.parse(r.body) as { id: string; type: string; data: { alertId: string; state: string } })
    .filter((b) => b.type === type);

describe('transactional outbox', () => {
  it('every tenant starts with the default rules (new tenants too)', async () => {
    const rules = await w.api('GET', '/alert-rules');
    const keys = (rules.body.items as { defaultKey: string; eventType: string; durationSeconds: number }[])
      .map((r) => `${r.defaultKey}:${r.eventType}:${r.durationSeconds}`)
      .sort();
    expect(keys).toEqual([
      'backup-failed:backup.failed:0',
      'config-changed:site.config_changed:0',
      'gateway-down:gateway.down:0',
      'job-reverted:job.reverted:0',
      'job-unknown:job.unknown:0',
      'site-offline:site.offline:300',
    ]);
    const [t] = await w.h.ds.query<
      {
        id: string;
      }[]
    >(`INSERT INTO tenants (slug, name) VALUES ('later', 'Later') RETURNING id`);
    const n = await w.h.ds.query<
      {
        n: number;
      }[]
    >(`SELECT count(*)::int AS n FROM alert_rules WHERE tenant_id = $1`, [t!.id]);
    expect(n[0]!.n).toBe(6);
  });

  it('a rolled-back change leaves no event; a committed one leaves exactly one', async () => {
    const q = w.h.ds.createQueryRunner();
    await q.connect();
    await q.startTransaction();
    await q.query(`UPDATE sites SET online = true WHERE id = $1`, [siteId]);
    await q.rollbackTransaction();
    await q.release();
    expect(await events('site.online')).toEqual([]);
    await setOnline(true);
    await setOnline(true); // no change, no event
    const on = await events('site.online');
    expect(on).toHaveLength(1);
    expect(on[0]).toMatchObject({ subject_id: siteId, data: { siteId, siteName: 'Depot North' } });
  });

  it('jobs reaching a final state emit one event each (reverted, unknown, backup failed)', async () => {
    const mk = async (kind: string) => {
      const [j] = await w.h.ds.query<{ id: string }[]>(
        `INSERT INTO jobs (id, tenant_id, site_id, kind, payload, requested_by, state, expires_at)
         VALUES (gen_random_uuid(), $1, $2, $3, '{}', '{}', 'running', now() + interval '1 hour') RETURNING id`,
        [w.tenantId, siteId, kind],
      );
      return j!.id;
    };
    const finish = (id: string, state: string, error: string | null = null) =>
      w.h.ds.query(`UPDATE jobs SET state = $2, error = $3 WHERE id = $1`, [id, state, error]);
    const a = await mk('apply-config');
    await finish(a, 'failed', 'write refused; rolled back 2 applied change(s): dns, ntp');
    await finish(a, 'failed', 'again'); // already final: nothing more
    const b = await mk('reboot');
    await finish(b, 'unknown', 'interrupted');
    const c = await mk('backup');
    await finish(c, 'failed', 'router unreachable');
    const d = await mk('reboot');
    await finish(d, 'succeeded');
    const types = (await events()).filter((e) => e.type.startsWith('job.') || e.type.startsWith('backup.'));
    expect(types.map((e) => `${e.type}:${String(e.data['jobId'])}`)).toEqual([
      `job.reverted:${a}`,
      `job.unknown:${b}`,
      `backup.failed:${c}`,
      `job.succeeded:${d}`,
    ]);
  });
});

describe('site offline → one alert after the rule duration → resolved', () => {
  it('fires once after the duration, delivered once per channel, resolves once', async () => {
    const rules = (await w.api('GET', '/alert-rules')).body.items as { id: string; defaultKey: string | null }[];
    const offline = rules.find((r) => r.defaultKey === 'site-offline')!;
    offlineRule = offline.id;
    const patched = await w.api('PATCH', `/alert-rules/${offline.id}`, { durationSeconds: 2 });
    expect(patched.status).toBe(200);
    // The other default rules produced alerts from the job events above; start clean.
    first = w.dispatcher();
    first.start();
    const idle = async () =>
      (
        await w.h.ds.query<unknown[]>(`SELECT 1 FROM outbox_events WHERE processed_at IS NULL
           UNION ALL SELECT 1 FROM deliveries WHERE state IN ('pending', 'delivering')`)
      ).length === 0;
    await until(idle, 10_000, 'backlog delivered');
    const before = rx.requests.length;

    const t0 = Date.now();
    await setOnline(false);
    const pending = await until(
      async () => {
        const l = await w.api('GET', `/alerts?state=open&siteId=${siteId}&ruleId=${offlineRule}`);
        return (l.body.items as { state: string; id: string }[])[0];
      },
      5000,
      'pending alert',
    );
    expect(pending.state).toBe('pending');
    // A second offline report while pending/firing: still one open alert (dedup).
    await w.h.ds.query(`SELECT bp_outbox_emit($1, 'site.offline', 'site', $2, $3::jsonb)`, [
      w.tenantId,
      siteId,
      JSON.stringify({ siteId }),
    ]);
    const firing = await until(() => hooks('alert.firing').find((h) => h.data.alertId === pending.id), 8000, 'firing');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(firing.data.state).toBe('firing');
    await new Promise((r) => setTimeout(r, 600));
    expect(hooks('alert.firing').filter((h) => h.data.alertId === pending.id)).toHaveLength(1);
    const open = await w.api('GET', `/alerts?state=open&siteId=${siteId}&ruleId=${offlineRule}`);
    expect(open.body.items).toHaveLength(1);
    // From the jobs above: backup failed (warning) still fires; job reverted/unknown were
    // resolved by the job that succeeded on the same site afterwards.
    const counts = await w.api('GET', '/alerts/counts');
    expect(counts.body.items).toEqual([{ siteId, firing: 2, critical: 1 }]);
    const jobAlerts = await w.api('GET', `/alerts?state=resolved&siteId=${siteId}`);
    expect((jobAlerts.body.items as { ruleName: string }[]).map((x) => x.ruleName).sort()).toEqual([
      'Job outcome unknown',
      'Job reverted',
    ]);

    await setOnline(true);
    await until(() => hooks('alert.resolved').find((h) => h.data.alertId === pending.id), 5000, 'resolved');
    const resolved = await w.api('GET', `/alerts/${pending.id}`);
    expect(resolved.body).toMatchObject({ state: 'resolved', ruleName: 'Site offline for 5 minutes' });
    expect(resolved.body.resolvedAt).not.toBeNull();

    // An outage shorter than the duration: nothing is sent, no alert remains.
    await setOnline(false);
    await new Promise((r) => setTimeout(r, 300));
    await setOnline(true);
    await new Promise((r) => setTimeout(r, 2500));
    const after = rx.requests.slice(before).map((r) => (JSON.parse(r.body) as { type: string }).type);
    expect(after.filter((t) => t === 'alert.firing')).toHaveLength(1);
    expect(after.filter((t) => t === 'alert.resolved')).toHaveLength(1);
    // The delivery log: one delivered row per notification.
    const log = await w.api('GET', `/channels/${hookId}/deliveries?state=delivered`);
    expect((log.body.items as { eventType: string }[]).filter((x) => x.eventType.startsWith('alert.')).length).toBe(
      hooks('alert.firing').length + hooks('alert.resolved').length,
    );
  });

  it('acknowledge, silence (no notification while silenced), history search, roles', async () => {
    await setOnline(false);
    const a = await until(
      async () => {
        const l = await w.api('GET', `/alerts?state=firing&siteId=${siteId}&ruleId=${offlineRule}`);
        return (l.body.items as { id: string }[])[0];
      },
      8000,
      'firing again',
    );
    const ack = await w.api('POST', `/alerts/${a.id}/acknowledge`);
    expect(ack.status).toBe(200);
    expect(ack.body.acknowledgedAt).not.toBeNull();
    expect((await w.api('GET', '/alerts?state=acknowledged')).body.items.map((x: { id: string }) => x.id)).toEqual([
      a.id,
    ]);
    const until1 = new Date(Date.now() + 3_600_000).toISOString();
    const sil = await w.api('POST', `/alerts/${a.id}/silence`, { until: until1 });
    expect(sil.status).toBe(200);
    const resolvedBefore = hooks('alert.resolved').length;
    await setOnline(true);
    await until(async () => (await w.api('GET', `/alerts/${a.id}`)).body.state === 'resolved', 5000, 'resolved');
    await new Promise((r) => setTimeout(r, 500));
    expect(hooks('alert.resolved')).toHaveLength(resolvedBefore); // silenced: not sent

    const search = await w.api('GET', '/alerts?state=resolved&q=Depot');
    expect(search.body.items.length).toBeGreaterThanOrEqual(2);
    expect((await w.api('GET', '/alerts?q=nothing-like-this')).body.items).toEqual([]);

    const viewer = await addMember(w.h, w.token, w.tenantId, { email: 'viewer@msp-a.test', role: 'viewer' });
    expect(viewer.status).toBe(201);
    const vt = await login(w.h, 'viewer@msp-a.test');
    const as = (method: string, path: string, body?: unknown) =>
      w.h.call(method, `/api/v1/tenants/${w.tenantId}${path}`, { token: vt, ...(body ? { body } : {}) });
    expect((await as('GET', '/alerts')).status).toBe(200);
    expect((await as('POST', `/alerts/${a.id}/acknowledge`)).status).toBe(403);
    expect((await as('GET', '/channels')).status).toBe(403);
    expect((await as('POST', '/alert-rules', { kind: 'event', name: 'x', eventType: 'site.offline' })).status).toBe(
      403,
    );
    const audit = await w.h.ds.query<
      {
        action: string;
      }[]
    >(`SELECT action FROM audit_log WHERE action LIKE 'alert%'`);
    expect(audit.map((x) => x.action)).toEqual(
      expect.arrayContaining(['alert_rule.updated', 'alert.acknowledged', 'alert.silenced']),
    );
  });

  it('a channel that keeps failing opens its circuit, is disabled, and the tenant gets an alert', async () => {
    const dead = await w.api('POST', '/channels', {
      kind: 'webhook',
      name: 'dead end',
      url: `${rx.url}/dead`,
      events: ['test', 'alert.firing'],
      maxConcurrency: 1,
    });
    await first?.stop();
    rx.status = (r) => (r.path === '/dead' ? 500 : 200);
    const d = w.dispatcher({
      policy: {
        ...TEST_POLICY,
        breakerThreshold: 2,
        breakerCooldownMs: 150,
        breakerMaxCooldownMs: 150,
        disableAfterMs: 0,
        disableMinFailures: 4,
      },
    });
    d.start();
    for (let i = 0; i < 3; i++) await w.api('POST', `/channels/${dead.body.id as string}/test`);
    const ch = await until(
      async () => {
        const c = await w.api('GET', `/channels/${dead.body.id as string}`);
        const body = c.body as { enabled: boolean; disabledReason: string | null };
        return body.enabled ? undefined : body;
      },
      15_000,
      'channel disabled',
    );
    expect(ch.disabledReason).toMatch(/failed 4 times in a row/);
    const hits = rx.requests.filter((r) => r.path === '/dead');
    expect(hits).toHaveLength(4);
    // The breaker spaced the attempts after the second failure.
    expect(hits[3]!.at - hits[2]!.at).toBeGreaterThanOrEqual(140);
    const alert = await until(
      async () => {
        const l = await w.api('GET', '/alerts?state=firing&q=dead end');
        return (l.body.items as { subjectType: string; subjectId: string; severity: string }[])[0];
      },
      5000,
      'channel alert',
    );
    expect(alert).toMatchObject({ subjectType: 'channel', subjectId: dead.body.id, severity: 'critical' });
    // The healthy hook told the admins; nothing more is sent to the disabled channel.
    await until(
      () =>
        hooks('channel.disabled').length === 1 ||
        hooks('alert.firing').some((h) => h.data.alertId === (alert as unknown as { id: string }).id),
      5000,
      'admins told',
    );
    await new Promise((r) => setTimeout(r, 400));
    expect(rx.requests.filter((r) => r.path === '/dead')).toHaveLength(4);
    rx.status = () => 200;
    await d.stop();
  });
});
