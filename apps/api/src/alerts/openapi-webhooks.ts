import { EVENT_CATALOGUE, EVENT_TYPES, envelopeSchema } from '@backplane/contracts';
import type { OpenAPIObject } from '@nestjs/swagger';
import { z } from 'zod';

/**
 * The event catalogue in the OpenAPI document (3.1 `webhooks`): one entry per event type with
 * the envelope a webhook channel POSTs, and the Standard Webhooks headers it is signed with.
 */
export function addEventWebhooks(doc: OpenAPIObject): void {
  const webhooks: Record<string, unknown> = {};
  for (const type of EVENT_TYPES) {
    const schema = z.toJSONSchema(envelopeSchema(type), { target: 'openapi-3.0', unrepresentable: 'any' });
    delete (schema as Record<string, unknown>)['$schema'];
    webhooks[type] = {
      post: {
        summary: EVENT_CATALOGUE[type].summary,
        operationId: `event_${type.replace(/\./g, '_')}`,
        tags: ['events'],
        parameters: [
          {
            name: 'webhook-id',
            in: 'header',
            required: true,
            schema: { type: 'string' },
            description: 'the event id (stable across retries: deduplicate on it)',
          },
          {
            name: 'webhook-timestamp',
            in: 'header',
            required: true,
            schema: { type: 'string' },
            description: 'Unix seconds',
          },
          {
            name: 'webhook-signature',
            in: 'header',
            required: true,
            schema: { type: 'string' },
            description:
              'space-separated `v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`; two during a secret rotation',
          },
        ],
        requestBody: { required: true, content: { 'application/json': { schema } } },
        responses: { '2XX': { description: 'accepted; anything else is retried with backoff' } },
      },
    };
  }
  Object.assign(doc, { webhooks });
}
