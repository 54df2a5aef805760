import { z } from 'zod';
import { CONFIRM_WINDOW } from '@backplane/jobs';
import type { MemberRow, TenantRow } from '@backplane/db';
import { email } from '../auth/auth.dto';
import { CreatedInvitationResponse } from './invitations.dto';
import { cursorQuery, limitQuery, pageOf, tenantRole, text } from '../common/validation';

const slug = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes (max 63)');

export const CreateTenantBody = z.strictObject({
  slug,
  name: text(200),
  /** Gets an owner invitation (returned once as `ownerInvitation`); no account is created or changed. */
  owner: z.strictObject({ email }),
});
export const UpdateTenantBody = z
  .strictObject({
    name: text(200).optional(),
    /** Members without two-factor sign-in get 403 mfa_required on this tenant until they enrol. */
    mfaRequired: z.boolean().optional(),
    /**
     * The commit-confirm window of the tenant's changes in seconds (a job's own
     * `confirmSeconds` still wins); null: back to the default. Admins may set it; name and
     * mfaRequired stay the owner's.
     */
    commitConfirmSeconds: z.number().int().min(CONFIRM_WINDOW.min).max(CONFIRM_WINDOW.max).nullable().optional(),
  })
  .refine((b) => b.name !== undefined || b.mfaRequired !== undefined || b.commitConfirmSeconds !== undefined, {
    message: 'give name, mfaRequired or commitConfirmSeconds',
  });

export const TenantResponse = z.object({
  id: z.uuid(),
  slug: z.string(),
  name: z.string(),
  disabled: z.boolean(),
  mfaRequired: z.boolean(),
  /** The tenant's commit-confirm window in seconds (null: the default, `commitConfirmDefaultSeconds`). */
  commitConfirmSeconds: z.number().nullable(),
  commitConfirmDefaultSeconds: z.number(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export const CreatedTenantResponse = TenantResponse.extend({
  ownerInvitation: CreatedInvitationResponse.describe(
    'The owner invitation: its token and link are shown only in this answer (no mail is sent yet).',
  ),
});
export const MyTenantsResponse = z.object({
  items: z.array(z.object({ id: z.uuid(), slug: z.string(), name: z.string(), role: tenantRole })),
});

export function toTenantResponse(t: TenantRow): z.infer<typeof TenantResponse> {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    disabled: t.disabled,
    mfaRequired: t.mfaRequired,
    commitConfirmSeconds: t.commitConfirmSeconds,
    commitConfirmDefaultSeconds: CONFIRM_WINDOW.default,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

export const UpdateMemberBody = z.strictObject({ role: tenantRole });
export const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

export const MemberResponse = z.object({
  userId: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  role: tenantRole,
  mfaEnabled: z.boolean(),
  createdAt: z.iso.datetime(),
});
export const MemberPage = pageOf(MemberResponse);

export function toMemberResponse(m: MemberRow): z.infer<typeof MemberResponse> {
  return {
    userId: m.userId,
    email: m.email,
    displayName: m.displayName,
    role: m.role,
    mfaEnabled: m.mfaEnabled,
    createdAt: m.createdAt.toISOString(),
  };
}
