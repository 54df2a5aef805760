import { z } from 'zod';
import { cursorQuery, limitQuery, pageOf, tenantRole, text } from '../common/validation';

export const CreateApiKeyBody = z.strictObject({
  name: text(200),
  role: tenantRole,
  expiresAt: z.iso
    .datetime({ offset: true })
    .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
    .optional(),
});
export const ListApiKeysQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

export const ApiKeyResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  role: tenantRole,
  /** The visible start of the key, to recognise it in lists and logs. */
  prefix: z.string(),
  createdBy: z.uuid().nullable(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  lastUsedAt: z.iso.datetime().nullable(),
});
/** Only the create answer carries the secret; it is never shown again. */
export const CreatedApiKeyResponse = ApiKeyResponse.extend({ key: z.string() });
export const ApiKeyPage = pageOf(ApiKeyResponse);

export type ApiKeyOut = z.infer<typeof ApiKeyResponse>;
