import { z } from 'zod';
import { tenantRole } from '../common/validation';
import { PASSWORD_MAX, PASSWORD_MIN, passwordProblem } from './passwords';

export const email = z.email({ message: 'must be an email address' }).max(254);
export const newPassword = z
  .string()
  .min(PASSWORD_MIN, `must be at least ${PASSWORD_MIN} characters`)
  .max(PASSWORD_MAX, `must be at most ${PASSWORD_MAX} characters`)
  .refine((p) => passwordProblem(p) === undefined, { message: 'is a commonly used password' });

export const LoginBody = z.strictObject({
  email: z.string().min(1).max(254),
  password: z.string().min(1).max(PASSWORD_MAX),
});
/** A TOTP code or a recovery code. */
const totpOrRecoveryCode = z
  .string()
  .trim()
  .regex(/^(\d{6}|[a-zA-Z2-9]{5}-?[a-zA-Z2-9]{5})$/, 'must be 6 digits or a recovery code (xxxxx-xxxxx)');
export const MfaLoginBody = z.strictObject({
  mfaToken: z.string().min(10).max(4096),
  /** A 6-digit TOTP code, or one of the account's recovery codes (`xxxxx-xxxxx`, each works once). */
  code: totpOrRecoveryCode,
});
export const RefreshBody = z.strictObject({ refreshToken: z.string().min(10).max(512) });
export const ChangePasswordBody = z.strictObject({ currentPassword: z.string().min(1).max(PASSWORD_MAX), newPassword });
export const MfaCodeBody = z.strictObject({ code: z.string().regex(/^\d{6}$/, 'must be 6 digits') });
/** Enrolling asks for the password again (a stolen session alone cannot add a second factor). */
export const MfaEnrollBody = z.strictObject({ password: z.string().min(1).max(PASSWORD_MAX) });
/** Turning two-factor sign-in off needs the password and a current code (or a recovery code). */
export const MfaDisableBody = z.strictObject({
  code: totpOrRecoveryCode,
  password: z.string().min(1).max(PASSWORD_MAX),
});
/** New recovery codes need the password and a current code (or a recovery code). */
export const RecoveryCodesBody = MfaDisableBody;
export const SetupBody = z.strictObject({
  setupToken: z.string().min(10).max(512),
  email,
  displayName: z.string().trim().min(1).max(200),
  password: newPassword,
  tenantName: z.string().trim().min(1).max(200),
  tenantSlug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes'),
});

export const TokenPairResponse = z.object({
  tokenType: z.literal('Bearer'),
  accessToken: z.string(),
  expiresIn: z.number().int(),
  refreshToken: z.string(),
});
export const LoginResponse = z.union([
  TokenPairResponse,
  z.object({ mfaRequired: z.literal(true), mfaToken: z.string() }),
]);
export const MeResponse = z.object({
  id: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  platformOperator: z.boolean(),
  mfaEnabled: z.boolean(),
  /** Unused recovery codes left (0 when two-factor sign-in is off). */
  mfaRecoveryCodesLeft: z.number().int(),
  tenants: z.array(z.object({ id: z.uuid(), slug: z.string(), name: z.string(), role: tenantRole })),
});
export const RecoveryCodesResponse = z.object({
  recoveryCodes: z
    .array(z.string())
    .describe('Single-use codes that replace a TOTP code at sign-in; shown only in this answer.'),
});
export const MfaEnrollResponse = z.object({ secret: z.string(), otpauthUri: z.string() });
export const SetupResponse = z.object({ userId: z.uuid(), tenantId: z.uuid() });
