import { z } from 'zod';
import type { InvitationRow } from '@backplane/db';
import { email, newPassword } from '../auth/auth.dto';
import { pageOf, tenantRole, text } from '../common/validation';

/** An invitation token as handed out: `bpi_` and 43 base64url characters. */
export const invitationToken = z.string().regex(/^bpi_[A-Za-z0-9_-]{43}$/, 'must be an invitation token (bpi_...)');

export const CreateInvitationBody = z.strictObject({ email, role: tenantRole });

export const InvitationResponse = z.object({
  id: z.uuid(),
  email: z.string(),
  role: tenantRole,
  status: z.enum(['pending', 'expired']),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
});
export const InvitationPage = pageOf(InvitationResponse);

export const CreatedInvitationResponse = InvitationResponse.extend({
  token: invitationToken.describe('The single-use token. Shown once: only its hash is stored.'),
  acceptUrl: z.url().describe('Portal page that accepts the invitation (`/accept-invite?token=...`). Shown once.'),
});

export const AcceptInvitationBody = z.strictObject({
  token: invitationToken,
  /** The invitee's own password for the new account. */
  password: newPassword,
  displayName: text(200).optional(),
});
export const AcceptSignedInBody = z.strictObject({ token: invitationToken });

export const AcceptedResponse = z.object({
  tenantId: z.uuid(),
  userId: z.uuid(),
  role: tenantRole,
});

export function toInvitationResponse(row: InvitationRow, now = Date.now()): z.infer<typeof InvitationResponse> {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    status: row.expiresAt.getTime() > now ? 'pending' : 'expired',
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
  };
}
