/**
 * Channels end to end with real local receivers: a webhook receiver verifying the Standard
 * Webhooks signature (and both signatures during a secret rotation), each chat payload shape
 * (Slack, Teams, Discord, Telegram, ntfy), an SMTP server receiving the e-mail (plain text and
 * HTML), the delivery log with retries after failures, and manual replay (same event id).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../apps/worker/src/alerts';
import { alertsWorld, startReceiver, startSmtp, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let siteId: string;

beforeAll(async () => {
  w = await alertsWorld();
  rx = await startReceiver();
  smtp = await startSmtp();
  siteId = (await w.api('POST', '/sites', { name: 'Branch Office 7', tags: ['vip'] })).body.id as string;
  w.dispatcher({}, smtp.port).start();
}, 60_000);

afterAll(async () => {
  await w?.close();
  await rx?.close();
  await smtp?.close();
});

const setOnline = (online: boolean) => w.h.ds.query(`UPDATE sites SET online = $2 WHERE id = $1`, [siteId, online]);
const byPath = (p: string) => rx.requests.filter((r) => r.path === p);

describe('webhook channel (Standard Webhooks)', () => {
  let channelId: string;
  let secret: string;

  it('creates a webhook channel and answers its signing secret once', async () => {
    const res = await w.api('POST', '/channels', {
      kind: 'webhook',
      name: 'NOC webhook',
      url: `${rx.url}/hook`,
      events: ['alert.firing', 'alert.resolved', 'test'],
    });
    expect(res.status).toBe(201);
    expect(res.body.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(res.body.target).toBe(rx.url);
    channelId = res.body.id as string;
    secret = res.body.signingSecret as string;
    const again = await w.api('GET', `/channels/${channelId}`);
    expect(again.body.signingSecret).toBeUndefined();
    expect(JSON.stringify(again.body)).not.toContain('/hook');
  });

  it('"send test" arrives signed: the receiver verifies it, a wrong secret does not', async () => {
    const sent = await w.api('POST', `/channels/${channelId}/test`);
    expect(sent.status).toBe(202);
    const eventId = sent.body.eventId as string;
    const got = await until(() => byPath('/hook').find((r) => r.headers['webhook-id'] === eventId), 10_000, 'test');
    expect(verifySignature(secret, got.headers, got.body)).toBe(true);
    expect(verifySignature(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, got.headers, got.body)).toBe(false);
    expect(verifySignature(secret, got.headers, got.body.replace('Test', 'Tset'))).toBe(false);
    const body = JSON.parse(got.body) as { id: string; type: string; tenantId: string; data: { channelId: string } };
    expect(body).toMatchObject({ id: eventId, type: 'test', tenantId: w.tenantId, data: { channelId } });
    expect(got.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
  });

  it('after a rotation both the new and the previous secret verify (two signatures)', async () => {
    const rot = await w.api('POST', `/channels/${channelId}/rotate-secret`, { overlapSeconds: 3600 });
    expect(rot.status).toBe(200);
    const fresh = rot.body.signingSecret as string;
    expect(fresh).not.toBe(secret);
    expect(rot.body.previousSecretUntil).not.toBeNull();
    const eventId = (await w.api('POST', `/channels/${channelId}/test`)).body.eventId as string;
    const got = await until(() => byPath('/hook').find((r) => r.headers['webhook-id'] === eventId), 10_000, 'test');
    expect(String(got.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifySignature(fresh, got.headers, got.body)).toBe(true);
    expect(verifySignature(secret, got.headers, got.body)).toBe(true);
    // Rotation without overlap: only the newest secret signs.
    const rot2 = await w.api('POST', `/channels/${channelId}/rotate-secret`, { overlapSeconds: 0 });
    const id2 = (await w.api('POST', `/channels/${channelId}/test`)).body.eventId as string;
    const got2 = await until(() => byPath('/hook').find((r) => r.headers['webhook-id'] === id2), 10_000, 'test');
    expect(verifySignature(rot2.body.signingSecret as string, got2.headers, got2.body)).toBe(true);
    expect(verifySignature(fresh, got2.headers, got2.body)).toBe(false);
    secret = rot2.body.signingSecret as string;
  });

  it('the delivery log shows status, attempts, response code and latency; failures are retried', async () => {
    let fails = 2;
    rx.status = (r) => (r.path === '/hook' && fails-- > 0 ? 503 : 200);
    const eventId = (await w.api('POST', `/channels/${channelId}/test`)).body.eventId as string;
    const log = await until(
      async () => {
        const l = await w.api('GET', `/channels/${channelId}/deliveries?state=delivered`);
        return (l.body.items as { id: string; eventId: string }[]).find((d) => d.eventId === eventId);
      },
      10_000,
      'delivered after retries',
    );
    expect(log).toMatchObject({ state: 'delivered', attempts: 3, lastStatus: 200 });
    const detail = await w.api('GET', `/channels/${channelId}/deliveries/${log.id}`);
    expect(detail.body.attemptLog.map((a: { status: number }) => a.status)).toEqual([503, 503, 200]);
    expect(detail.body.attemptLog.every((a: { latencyMs: number }) => a.latencyMs >= 0)).toBe(true);
    const hits = byPath('/hook').filter((r) => r.headers['webhook-id'] === eventId);
    expect(hits).toHaveLength(3);
    expect(new Set(hits.map((h) => h.body)).size).toBe(1); // the same event each time
    rx.status = () => 200;

    // Manual replay: the same event id once more.
    const replay = await w.api('POST', `/channels/${channelId}/deliveries/${log.id}/replay`);
    expect(replay.status).toBe(202);
    await until(
      () => byPath('/hook').filter((r) => r.headers['webhook-id'] === eventId).length === 4,
      10_000,
      'replay',
    );
    const audit = await w.h.ds.query(
      `SELECT action FROM audit_log WHERE action LIKE 'delivery.%' OR action LIKE 'channel.%'`,
    );
    expect((audit as { action: string }[]).map((a) => a.action)).toEqual(
      expect.arrayContaining(['channel.created', 'channel.secret_rotated', 'channel.test_sent', 'delivery.replayed']),
    );
  });
});

describe('chat payload shapes and e-mail, from one alert', () => {
  it('an offline site fires the rule; every channel gets its own shape once', async () => {
    const mk = async (body: Record<string, unknown>) => {
      const r = await w.api('POST', '/channels', body);
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return r.body.id as string;
    };
    await mk({ kind: 'slack', name: 'Slack', url: `${rx.url}/slack/T000/B000/xyz` });
    await mk({ kind: 'teams', name: 'Teams', url: `${rx.url}/teams/webhookb2/abc` });
    await mk({ kind: 'discord', name: 'Discord', url: `${rx.url}/discord/api/webhooks/1/tok` });
    await mk({
      kind: 'telegram',
      name: 'Telegram',
      botToken: '123456:ABC-DEF_ghi',
      config: { chatId: '-100200300', apiBase: `${rx.url}/tg` },
    });
    await mk({ kind: 'ntfy', name: 'ntfy', config: { topic: 'noc-alerts', server: `${rx.url}/ntfy` } });
    await mk({ kind: 'email', name: 'NOC mail', config: { to: ['noc@msp-a.test', 'oncall@msp-a.test'] } });
    // Only warning and above reach this one: a critical alert does.
    await mk({ kind: 'slack', name: 'Quiet', url: `${rx.url}/quiet`, minSeverity: 'critical' });

    const rule = await w.api('POST', '/alert-rules', {
      kind: 'event',
      name: 'Site offline now',
      eventType: 'site.offline',
      severity: 'critical',
      scope: 'tags',
      tags: ['vip'],
    });
    expect(rule.status).toBe(201);

    await setOnline(true);
    await setOnline(false);

    const slack = await until(() => byPath('/slack/T000/B000/xyz')[0], 10_000, 'slack');
    const s = JSON.parse(slack.body) as { text: string; blocks: { type: string }[] };
    expect(s.text).toContain('FIRING');
    expect(s.text).toContain('Branch Office 7');
    expect(s.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'context']);

    const teams = JSON.parse((await until(() => byPath('/teams/webhookb2/abc')[0], 10_000, 'teams')).body) as {
      type: string;
      attachments: { contentType: string; content: { type: string; version: string; body: { type: string }[] } }[];
    };
    expect(teams.type).toBe('message');
    expect(teams.attachments[0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(teams.attachments[0]!.content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(teams.attachments[0]!.content.body.map((b) => b.type)).toEqual(['TextBlock', 'TextBlock', 'FactSet']);

    const discord = JSON.parse(
      (await until(() => byPath('/discord/api/webhooks/1/tok')[0], 10_000, 'discord')).body,
    ) as { content: string; embeds: { title: string; color: number; footer: { text: string } }[] };
    expect(discord.embeds[0]!.color).toBe(0xdc2626);
    expect(discord.embeds[0]!.footer.text).toMatch(/^event [0-9a-f-]{36}$/);

    const tg = await until(() => byPath('/tg/bot123456:ABC-DEF_ghi/sendMessage')[0], 10_000, 'telegram');
    expect(JSON.parse(tg.body)).toMatchObject({ chat_id: '-100200300', parse_mode: 'HTML' });
    expect((JSON.parse(tg.body) as { text: string }).text).toContain('<b>');

    const ntfy = JSON.parse((await until(() => byPath('/ntfy')[0], 10_000, 'ntfy')).body) as Record<string, unknown>;
    expect(ntfy).toMatchObject({ topic: 'noc-alerts', priority: 5, tags: ['rotating_light'] });
    expect(String(ntfy['title'])).toContain('Branch Office 7');

    const mail = await until(() => smtp.mails[0], 10_000, 'e-mail');
    expect(mail.to.sort()).toEqual(['noc@msp-a.test', 'oncall@msp-a.test']);
    expect(mail.from).toBe('alerts@backplane.test');
    const headers = mail.raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
    expect(headers).toMatch(/^Subject: \[Backplane\] \[FIRING\] CRITICAL: Branch Office 7: A site's tunnel went down/m);
    expect(headers).toMatch(/^X-Backplane-Event-Id: [0-9a-f-]{36}$/im);
    expect(mail.raw).toContain('Content-Type: text/plain');
    expect(mail.raw).toContain('Content-Type: text/html');
    expect(headers).toMatch(/^Message-ID: <[0-9a-f-]{36}\.[0-9a-f-]{36}@backplane>/m);

    await until(() => byPath('/quiet')[0], 10_000, 'critical to the min-severity channel');
    // Exactly once each, also after the dispatcher had time for more rounds.
    await new Promise((r) => setTimeout(r, 500));
    for (const p of ['/slack/T000/B000/xyz', '/teams/webhookb2/abc', '/discord/api/webhooks/1/tok', '/ntfy', '/quiet'])
      expect(byPath(p), p).toHaveLength(1);
    expect(smtp.mails).toHaveLength(1);

    // Back online: resolved, once per channel.
    await setOnline(true);
    await until(() => byPath('/slack/T000/B000/xyz').length === 2, 10_000, 'resolved');
    expect(JSON.parse(byPath('/slack/T000/B000/xyz')[1]!.body).text).toContain('RESOLVED');
    await until(() => smtp.mails.length === 2, 10_000, 'resolved mail');
  });
});
