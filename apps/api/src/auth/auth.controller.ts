import { Body, Controller, Delete, Get, HttpCode, Inject, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import { UsersRepository } from '@backplane/db';
import type { z } from 'zod';
import { ApiErrors } from '../common/validation';
import { ApiError } from '../common/api-error';
import {
  AuthCacheable,
  CurrentActor,
  CurrentPrincipal,
  Public,
  SignedIn,
  SourceIp,
  type Actor,
  type Principal,
} from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import {
  ChangePasswordBody,
  LoginBody,
  LoginResponse,
  MeResponse,
  MfaCodeBody,
  MfaDisableBody,
  MfaEnrollBody,
  MfaEnrollResponse,
  MfaLoginBody,
  RecoveryCodesBody,
  RecoveryCodesResponse,
  RefreshBody,
  TokenPairResponse,
} from './auth.dto';
import { AuthCache } from './auth-cache';
import { AuthService, type LoginResult, type TokenPair } from './auth.service';

function userOf(p: Principal) {
  if (p.kind !== 'user') throw new ApiError('forbidden', 'this route needs a user');
  return p;
}

@ApiTags('auth')
@ApiErrors()
@Controller('api/v1')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly users: UsersRepository,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly authCache: AuthCache,
  ) {}

  @Post('auth/login')
  @ApiOperation({ summary: 'Sign in' })
  @Public()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: LoginResponse })
  login(@Body({ schema: LoginBody }) body: z.infer<typeof LoginBody>, @SourceIp() ip: string): Promise<LoginResult> {
    return this.auth.login(body.email, body.password, ip);
  }

  @Post('auth/login/mfa')
  @ApiOperation({ summary: 'Sign in: second factor' })
  @Public()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: TokenPairResponse })
  loginMfa(
    @Body({ schema: MfaLoginBody }) body: z.infer<typeof MfaLoginBody>,
    @SourceIp() ip: string,
  ): Promise<TokenPair> {
    return this.auth.loginMfa(body.mfaToken, body.code, ip);
  }

  @Post('auth/refresh')
  @ApiOperation({ summary: 'Refresh the access token' })
  @Public()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: TokenPairResponse })
  refresh(@Body({ schema: RefreshBody }) body: z.infer<typeof RefreshBody>): Promise<TokenPair> {
    return this.auth.refresh(body.refreshToken);
  }

  @Post('auth/logout')
  @ApiOperation({ summary: 'Sign out' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(204)
  async logout(@CurrentPrincipal() p: Principal): Promise<void> {
    await this.auth.logout(userOf(p).sessionId);
  }

  @Get('me')
  @ApiOperation({ summary: 'The signed-in person and their tenants' })
  @SignedIn()
  @ApiBearerAuth()
  @ApiResponse({ status: 200, standardSchema: MeResponse })
  async me(@CurrentPrincipal() p: Principal, @AuthCacheable() cacheable: boolean): Promise<z.infer<typeof MeResponse>> {
    const { userId } = userOf(p);
    // Cached per person like an authentication result: changes to the account, its memberships
    // and its tenants' names revoke it (ADR 0076).
    const key = `me:${userId}`;
    const hit = cacheable ? this.authCache.get<z.infer<typeof MeResponse>>(key) : undefined;
    if (hit) return hit;
    const mark = this.authCache.mark();
    // Two one-statement reads side by side: one round trip of latency each.
    const [user, tenants] = await Promise.all([
      this.deps.db.readPlatform((tx) => this.users.byId(tx, userId)),
      this.deps.db.readPlatform((tx) => this.users.memberships(tx, userId)),
    ]);
    if (!user) throw new ApiError('unauthorized', 'account not found');
    const out = {
      id: user.id,
      email: user.email,
      displayName: user.displayName,
      platformOperator: user.platformOperator,
      mfaEnabled: user.totpEnabled,
      mfaRecoveryCodesLeft: user.recoveryCodesLeft,
      tenants: tenants.map((t) => ({ id: t.tenantId, slug: t.slug, name: t.name, role: t.role })),
    };
    if (cacheable) this.authCache.set(key, out, { user: userId, tenants: tenants.map((t) => t.tenantId) }, mark);
    return out;
  }

  /** Changes the password and ends every session of the account (this one included). */
  @Post('me/password')
  @ApiOperation({ summary: 'Change your password' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(204)
  async changePassword(
    @CurrentPrincipal() p: Principal,
    @CurrentActor() actor: Actor,
    @Body({ schema: ChangePasswordBody }) body: z.infer<typeof ChangePasswordBody>,
  ): Promise<void> {
    await this.auth.changePassword(userOf(p).userId, actor, body.currentPassword, body.newPassword);
  }

  @Post('me/mfa/enroll')
  @ApiOperation({ summary: 'Start two-factor enrollment' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: MfaEnrollResponse })
  enrollMfa(
    @CurrentPrincipal() p: Principal,
    @CurrentActor() actor: Actor,
    @Body({ schema: MfaEnrollBody }) body: z.infer<typeof MfaEnrollBody>,
  ) {
    return this.auth.enrollMfa(userOf(p).userId, actor, body.password);
  }

  /** Turns two-factor sign-in on, ends every other session, and answers the recovery codes (once). */
  @Post('me/mfa/verify')
  @ApiOperation({ summary: 'Confirm two-factor enrollment' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: RecoveryCodesResponse })
  verifyMfa(
    @CurrentPrincipal() p: Principal,
    @CurrentActor() actor: Actor,
    @Body({ schema: MfaCodeBody }) body: z.infer<typeof MfaCodeBody>,
  ): Promise<z.infer<typeof RecoveryCodesResponse>> {
    const u = userOf(p);
    return this.auth.setMfa(u.userId, actor, body.code, true, { keepSession: u.sessionId });
  }

  /** Replaces the recovery codes (the old ones stop working); needs the password and a TOTP code. */
  @Post('me/mfa/recovery-codes')
  @ApiOperation({ summary: 'Regenerate two-factor recovery codes' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: RecoveryCodesResponse })
  regenerateRecoveryCodes(
    @CurrentPrincipal() p: Principal,
    @CurrentActor() actor: Actor,
    @Body({ schema: RecoveryCodesBody }) body: z.infer<typeof RecoveryCodesBody>,
  ): Promise<z.infer<typeof RecoveryCodesResponse>> {
    return this.auth.regenerateRecoveryCodes(userOf(p).userId, actor, body.password, body.code);
  }

  @Delete('me/mfa')
  @ApiOperation({ summary: 'Turn off two-factor sign-in' })
  @SignedIn()
  @ApiBearerAuth()
  @HttpCode(204)
  async disableMfa(
    @CurrentPrincipal() p: Principal,
    @CurrentActor() actor: Actor,
    @Body({ schema: MfaDisableBody }) body: z.infer<typeof MfaDisableBody>,
  ): Promise<void> {
    await this.auth.setMfa(userOf(p).userId, actor, body.code, false, { password: body.password });
  }
}
