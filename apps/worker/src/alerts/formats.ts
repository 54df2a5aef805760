import { AlertNotice, EVENT_CATALOGUE, type Envelope, type EventType } from '@backplane/contracts';

/**
 * What a notification says, independent of the channel, and each chat service's payload
 * shape (Slack incoming webhook, Microsoft Teams Adaptive Card, Discord embed, Telegram
 * sendMessage, ntfy JSON publish) and the e-mail (plain text and HTML).
 */
export interface Message {
  readonly title: string;
  readonly text: string;
  readonly severity: 'info' | 'warning' | 'critical';
  readonly facts: readonly { name: string; value: string }[];
  readonly eventId: string;
  readonly eventType: string;
  readonly at: string;
}

const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v);

export function describe(e: Envelope): Message {
  if (e.type === 'alert.firing' || e.type === 'alert.resolved') {
    const n = AlertNotice.parse(e.data);
    const word = n.state === 'firing' ? 'FIRING' : 'RESOLVED';
    return {
      title: `[${word}] ${n.severity.toUpperCase()}: ${n.summary}`,
      text: `${n.ruleName}: ${n.summary}${n.state === 'resolved' ? ' (resolved)' : ''}`,
      severity: n.state === 'resolved' ? 'info' : n.severity,
      facts: [
        { name: 'Rule', value: n.ruleName },
        { name: 'Severity', value: n.severity },
        ...(n.siteName ? [{ name: 'Site', value: n.siteName }] : []),
        { name: 'Fired at', value: n.firedAt },
        ...(n.resolvedAt ? [{ name: 'Resolved at', value: n.resolvedAt }] : []),
        { name: 'Alert', value: n.alertId },
      ],
      eventId: e.id,
      eventType: e.type,
      at: e.occurredAt,
    };
  }
  const entry = EVENT_CATALOGUE[e.type as EventType] as { summary: string } | undefined;
  const data = e.data;
  const subject = str(data['siteName']) || str(data['gatewayName']) || str(data['channelName']);
  return {
    title: `${entry?.summary ?? e.type}${subject ? `: ${subject}` : ''}`,
    text: e.type === 'test' ? str(data['message']) : `${e.type}${subject ? ` — ${subject}` : ''}`,
    severity: e.type === 'channel.disabled' ? 'critical' : 'info',
    facts: Object.entries(data)
      .filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([name, v]) => ({ name, value: str(v) })),
    eventId: e.id,
    eventType: e.type,
    at: e.occurredAt,
  };
}

const COLOR = { info: 0x3b82f6, warning: 0xf59e0b, critical: 0xdc2626 } as const;
const EMOJI = { info: ':information_source:', warning: ':warning:', critical: ':rotating_light:' } as const;

export function slackPayload(m: Message) {
  return {
    text: `${EMOJI[m.severity]} ${m.title}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: m.title.slice(0, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: m.text } },
      {
        type: 'section',
        fields: m.facts.slice(0, 10).map((f) => ({ type: 'mrkdwn', text: `*${f.name}*\n${f.value}` })),
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `event ${m.eventId}` }] },
    ],
  };
}

export function teamsPayload(m: Message) {
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            {
              type: 'TextBlock',
              text: m.title,
              weight: 'Bolder',
              size: 'Medium',
              wrap: true,
              color: m.severity === 'critical' ? 'Attention' : m.severity === 'warning' ? 'Warning' : 'Default',
            },
            { type: 'TextBlock', text: m.text, wrap: true },
            { type: 'FactSet', facts: m.facts.map((f) => ({ title: f.name, value: f.value })) },
          ],
        },
      },
    ],
  };
}

export function discordPayload(m: Message) {
  return {
    content: m.title.slice(0, 2000),
    embeds: [
      {
        title: m.title.slice(0, 256),
        description: m.text.slice(0, 4096),
        color: COLOR[m.severity],
        timestamp: m.at,
        fields: m.facts
          .slice(0, 25)
          .map((f) => ({ name: f.name.slice(0, 256), value: f.value.slice(0, 1024), inline: true })),
        footer: { text: `event ${m.eventId}` },
      },
    ],
    allowed_mentions: { parse: [] as string[] },
  };
}

export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function telegramPayload(m: Message, chatId: string) {
  const facts = m.facts.map((f) => `<b>${escapeHtml(f.name)}</b>: ${escapeHtml(f.value)}`).join('\n');
  return {
    chat_id: chatId,
    text: `<b>${escapeHtml(m.title)}</b>\n${escapeHtml(m.text)}\n\n${facts}`.slice(0, 4096),
    parse_mode: 'HTML',
    disable_web_page_preview: true,
  };
}

export function ntfyPayload(m: Message, topic: string) {
  return {
    topic,
    title: m.title,
    message: `${m.text}\n${m.facts.map((f) => `${f.name}: ${f.value}`).join('\n')}`,
    priority: m.severity === 'critical' ? 5 : m.severity === 'warning' ? 4 : 3,
    tags: [m.severity === 'critical' ? 'rotating_light' : m.severity === 'warning' ? 'warning' : 'information_source'],
  };
}

export function emailContent(m: Message): { subject: string; text: string; html: string } {
  const text = [m.title, '', m.text, '', ...m.facts.map((f) => `${f.name}: ${f.value}`), '', `Event ${m.eventId}`].join(
    '\n',
  );
  const rows = m.facts
    .map((f) => `<tr><th align="left">${escapeHtml(f.name)}</th><td>${escapeHtml(f.value)}</td></tr>`)
    .join('');
  const html =
    `<!doctype html><html><body style="font-family:sans-serif">` +
    `<h2 style="color:#${COLOR[m.severity].toString(16).padStart(6, '0')}">${escapeHtml(m.title)}</h2>` +
    `<p>${escapeHtml(m.text)}</p><table>${rows}</table>` +
    `<p style="color:#888;font-size:12px">Event ${escapeHtml(m.eventId)}</p></body></html>`;
  return { subject: `[Backplane] ${m.title}`, text, html };
}
