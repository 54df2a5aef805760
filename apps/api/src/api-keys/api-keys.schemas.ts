import { z } from 'zod';
import { cursorQuery, limitQuery, pageOf, tenantRole, text } from '../common/validation';

/** Keys expire: 90 days unless asked otherwise, at most a year ahead (renewable). */
export const API_KEY_DEFAULT_DAYS = 90;
export const API_KEY_MAX_DAYS = 365;
const DAY_MS = 86_400_000;
const expiresAt = z.iso
  .datetime({ offset: true })
  .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
  .refine((v) => Date.parse(v) <= Date.now() + API_KEY_MAX_DAYS * DAY_MS, `at most ${API_KEY_MAX_DAYS} days ahead`)
  .optional()
  .describe(`default: ${API_KEY_DEFAULT_DAYS} days from now; at most ${API_KEY_MAX_DAYS}`);

export const CreateApiKeyBody = z.strictObject({
  name: text(200),
  /** At most your own role (an API key minting a key: at most that key's role). */
  role: tenantRole,
  expiresAt,
});
export const RenewApiKeyBody = z.strictObject({ expiresAt });
export const ListApiKeysQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

export const ApiKeyResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  role: tenantRole,
  /** The visible start of the key, to recognise it in lists and logs. */
  prefix: z.string(),
  /** The member the key belongs to: it stops working when they leave, and never acts above their role. */
  createdBy: z.uuid().nullable(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  revokedAt: z.iso.datetime().nullable(),
  lastUsedAt: z.iso.datetime().nullable(),
});
/** Only the create answer carries the secret; it is never shown again. */
export const CreatedApiKeyResponse = ApiKeyResponse.extend({ key: z.string() });
export const ApiKeyPage = pageOf(ApiKeyResponse);

export type ApiKeyOut = z.infer<typeof ApiKeyResponse>;
