import type { FirmwarePolicyRow } from '@backplane/db';
import { ROUTEROS_VERSION } from '@backplane/jobs';
import { z } from 'zod';

const channel = z
  .enum(['stable', 'long-term', 'testing'])
  .describe('The RouterOS update channel (`/system package update channel`)');
const version = z
  .string()
  .regex(ROUTEROS_VERSION, 'a RouterOS version like 7.16.2 or 7.21beta3')
  .nullable()
  .default(null)
  .describe(
    'The only version an upgrade may install; null: whatever the channel offers. RouterOS installs only what its ' +
      'channel offers, so an upgrade fails (nothing installed) while the channel offers another version.',
  );
const tag = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\s,]+$/, 'no spaces or commas');

export const FirmwarePolicyBody = z
  .strictObject({
    channel,
    pinnedVersion: version,
    /** In order: a site follows the first rule whose tag it carries, else the tenant's channel and pin. */
    tags: z
      .array(z.strictObject({ tag, channel, pinnedVersion: version }))
      .max(100)
      .default([])
      .describe("Per-tag rules, in order: a site follows the first rule whose tag it carries, else the tenant's."),
  })
  .refine((b) => new Set(b.tags.map((t) => t.tag)).size === b.tags.length, {
    message: 'each tag may have one rule',
    path: ['tags'],
  });

export const FirmwarePolicyResponse = z.object({
  channel,
  pinnedVersion: z.string().nullable(),
  tags: z.array(z.object({ tag: z.string(), channel, pinnedVersion: z.string().nullable() })),
  /** null: no policy stored yet (the defaults: stable, no pin). */
  updatedAt: z.iso.datetime().nullable(),
});

export const SiteFirmwareResponse = z.object({
  siteId: z.uuid(),
  channel,
  pinnedVersion: z.string().nullable(),
  source: z.string().describe('`default` (no policy), `tenant`, or `tag:<tag>` (the rule that applies)'),
});

export function toFirmwarePolicyResponse(p: FirmwarePolicyRow): z.infer<typeof FirmwarePolicyResponse> {
  return {
    channel: p.channel,
    pinnedVersion: p.pinnedVersion,
    tags: p.tags.map((t) => ({ tag: t.tag, channel: t.channel, pinnedVersion: t.pinnedVersion })),
    updatedAt: p.updatedAt ? p.updatedAt.toISOString() : null,
  };
}
