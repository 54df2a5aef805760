import { ChannelConfigSchemas, type Envelope } from '@backplane/contracts';
import type { AttemptResult, ChannelRow, ChannelSecrets } from '@backplane/db';
import { createTransport } from 'nodemailer';
import {
  describe,
  discordPayload,
  emailContent,
  ntfyPayload,
  slackPayload,
  teamsPayload,
  telegramPayload,
} from './formats';
import type { SafeHttpClient } from './http-client';
import { signHeaders } from './signing';

/** What sends e-mail (nodemailer's SMTP transport; tests may pass any transport). */
export interface Mailer {
  sendMail(m: {
    from: string;
    to: string[];
    subject: string;
    text: string;
    html: string;
    messageId: string;
    headers: Record<string, string>;
  }): Promise<unknown>;
}

/** nodemailer over `SMTP_URL` (`smtp://` with STARTTLS when offered, `smtps://` for implicit TLS). */
export function smtpMailer(url: string): Mailer & { close(): void } {
  const t = createTransport(url);
  return { sendMail: (m) => t.sendMail(m), close: () => t.close() };
}

export interface SenderDeps {
  readonly http: SafeHttpClient;
  readonly mailer: Mailer | null;
  readonly mailFrom: string;
}

/** Secrets that sign now: the current one, plus the previous one until its overlap ends. */
export function activeSecrets(s: ChannelSecrets, now = Date.now()): string[] {
  const out = s.signingSecret ? [s.signingSecret] : [];
  if (s.previousSecret && s.previousUntil && Date.parse(s.previousUntil) > now) out.push(s.previousSecret);
  return out;
}

const errorText = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/** One delivery attempt of an event to a channel. Never throws: the result says what happened. */
export async function sendToChannel(
  deps: SenderDeps,
  ch: ChannelRow,
  secrets: ChannelSecrets,
  e: Envelope,
): Promise<AttemptResult> {
  const started = performance.now();
  const done = (ok: boolean, status: number | null, error: string | null): AttemptResult => ({
    ok,
    status,
    error,
    latencyMs: performance.now() - started,
  });
  try {
    const json = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
      deps.http.send(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'Backplane-Notifications/1', ...headers },
        body: JSON.stringify(payload),
      });
    const m = describe(e);
    let res: { status: number; body: string };
    switch (ch.kind) {
      case 'webhook': {
        const body = JSON.stringify({
          id: e.id,
          type: e.type,
          tenantId: e.tenantId,
          occurredAt: e.occurredAt,
          data: e.data,
        });
        if (!secrets.url) return done(false, null, 'no URL configured');
        res = await deps.http.send(secrets.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Backplane-Webhooks/1',
            ...signHeaders(activeSecrets(secrets), e.id, body),
          },
          body,
        });
        break;
      }
      case 'slack':
      case 'teams':
      case 'discord': {
        if (!secrets.url) return done(false, null, 'no URL configured');
        const payload =
          ch.kind === 'slack' ? slackPayload(m) : ch.kind === 'teams' ? teamsPayload(m) : discordPayload(m);
        res = await json(secrets.url, payload);
        break;
      }
      case 'telegram': {
        const cfg = ChannelConfigSchemas.telegram.parse(ch.config);
        if (!secrets.botToken) return done(false, null, 'no bot token configured');
        const url = `${cfg.apiBase.replace(/\/+$/, '')}/bot${secrets.botToken}/sendMessage`;
        res = await json(url, telegramPayload(m, cfg.chatId));
        break;
      }
      case 'ntfy': {
        const cfg = ChannelConfigSchemas.ntfy.parse(ch.config);
        res = await json(
          cfg.server,
          ntfyPayload(m, cfg.topic),
          secrets.botToken ? { authorization: `Bearer ${secrets.botToken}` } : {},
        );
        break;
      }
      case 'email': {
        const cfg = ChannelConfigSchemas.email.parse(ch.config);
        if (!deps.mailer) return done(false, null, 'SMTP is not configured (SMTP_URL)');
        const c = emailContent(m);
        await deps.mailer.sendMail({
          from: deps.mailFrom,
          to: cfg.to,
          ...c,
          // Stable per event and channel: a resend after a lost reply is recognisably the same mail.
          messageId: `<${e.id}.${ch.id}@backplane>`,
          headers: { 'X-Backplane-Event-Id': e.id, 'X-Backplane-Event-Type': e.type },
        });
        return done(true, 250, null);
      }
    }
    const ok = res.status >= 200 && res.status < 300;
    return done(ok, res.status, ok ? null : `HTTP ${res.status}${res.body ? `: ${res.body.slice(0, 200)}` : ''}`);
  } catch (err) {
    return done(false, null, errorText(err));
  }
}
