import { Inject, Injectable } from '@nestjs/common';
import { currentCorrelationId } from '@backplane/observability';
import { RealtimePublisher, sessionRoom, userRoom } from '@backplane/realtime';
import { secretContext, SessionsRepository, UsersRepository, type PlatformTx, type UserRow } from '@backplane/db';
import { ApiError } from '../common/api-error';
import { ApiMetrics } from '../common/metrics';
import type { Actor } from '../common/request';
import { Throttle } from '../common/throttle';
import { AuditService } from '../audit/audit.service';
import { AuthCache } from './auth-cache';
import { API_DEPS, type ApiDeps } from '../deps';
import { burnPasswordCheck, hashPassword, needsRehash, passwordProblem, verifyPassword } from './passwords';
import { newSecret, TokenError, TokenService } from './tokens';
import { newRecoveryCodes, normalizeRecoveryCode, RECOVERY_CODE } from './recovery-codes';
import { newTotpSecret, otpauthUri, verifyTotp } from './totp';

export const LOGIN_WINDOW_SECONDS = 15 * 60;
/**
 * Failed sign-ins are throttled per (account, source address), never per account alone, so an
 * outsider can slow down only their own attempts, not lock someone else out (ADR 0046).
 * The first LOGIN_FREE_FAILURES - 1 failures of a pair cost nothing; from then on each failure
 * doubles the wait before that pair may try again (4 s, 8 s, 16 s ... capped at
 * LOGIN_MAX_DELAY_SECONDS, reached after about a dozen failures).
 * A success resets the pair; the count is forgotten after LOGIN_PAIR_WINDOW_SECONDS quiet.
 */
export const LOGIN_FREE_FAILURES = 3;
export const LOGIN_MAX_DELAY_SECONDS = 15 * 60;
const LOGIN_PAIR_WINDOW_SECONDS = 60 * 60;
/** Failed attempts per source address per window (password spraying over many accounts). */
export const LOGIN_MAX_IP_FAILURES = 30;

/** Seconds a (account, source) pair waits after its `failures`-th consecutive failure. */
export function loginDelaySeconds(failures: number): number {
  if (failures < LOGIN_FREE_FAILURES) return 0;
  return Math.min(2 ** (failures - LOGIN_FREE_FAILURES + 2), LOGIN_MAX_DELAY_SECONDS);
}

const pair = (email: string, ip: string) => `${email}\n${ip}`;
const SESSION_DAYS = 30;

export interface TokenPair {
  tokenType: 'Bearer';
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
}

export type LoginResult = TokenPair | { mfaRequired: true; mfaToken: string };

const INVALID_LOGIN = 'invalid email or password';

@Injectable()
export class AuthService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tokens: TokenService,
    private readonly throttle: Throttle,
    private readonly metrics: ApiMetrics,
    private readonly users: UsersRepository,
    private readonly sessions: SessionsRepository,
    private readonly realtime: RealtimePublisher,
    private readonly authCache: AuthCache,
    private readonly audit: AuditService,
  ) {}

  private async checkLoginThrottle(email: string, ip: string): Promise<void> {
    const [wait, byIp] = await Promise.all([
      this.throttle.peek('login-wait', pair(email, ip)),
      this.throttle.peek('login-ip', ip),
    ]);
    if (wait.count > 0 || byIp.count >= LOGIN_MAX_IP_FAILURES) {
      this.metrics.rateLimited.inc({ kind: 'login' });
      this.metrics.authFailures.inc({ reason: 'throttled' });
      throw new ApiError(
        'rate_limited',
        'too many failed sign-in attempts from this address; try again later',
        undefined,
        Math.max(wait.count > 0 ? wait.ttl : 0, byIp.count >= LOGIN_MAX_IP_FAILURES ? byIp.ttl : 0, 1),
      );
    }
  }

  /** Counts a failure of this (account, source) pair and of the source; sets the pair's wait. */
  private async countLoginFailure(email: string, ip: string): Promise<void> {
    const [p] = await Promise.all([
      this.throttle.hit('login-pair', pair(email, ip), LOGIN_PAIR_WINDOW_SECONDS),
      this.throttle.hit('login-ip', ip, LOGIN_WINDOW_SECONDS),
    ]);
    const delay = loginDelaySeconds(p.count);
    if (delay > 0) await this.throttle.once('login-wait', pair(email, ip), delay);
  }

  private async loginFailed(email: string, ip: string, reason: string): Promise<never> {
    this.metrics.authFailures.inc({ reason });
    await this.countLoginFailure(email, ip);
    throw new ApiError('unauthorized', INVALID_LOGIN);
  }

  async login(emailRaw: string, password: string, ip: string): Promise<LoginResult> {
    const email = emailRaw.trim().toLowerCase();
    await this.checkLoginThrottle(email, ip);
    const user = await this.deps.db.inPlatform((tx) => this.users.byEmail(tx, email));
    const ok =
      user && user.passwordHash && !user.disabled
        ? await verifyPassword(user.passwordHash, password)
        : await burnPasswordCheck(password);
    if (!ok || !user) return this.loginFailed(email, ip, 'bad_credentials');
    await this.throttle.reset('login-pair', pair(email, ip));
    if (user.passwordHash && needsRehash(user.passwordHash)) {
      const rehashed = await hashPassword(password);
      await this.deps.db.inPlatform((tx) => this.users.setPassword(tx, user.id, rehashed));
    }
    if (user.totpEnabled) return { mfaRequired: true, mfaToken: await this.tokens.signMfa(user.id) };
    return this.deps.db.inPlatform((tx) => this.startSession(tx, user, ip));
  }

  async loginMfa(mfaToken: string, code: string, ip: string): Promise<TokenPair> {
    let userId: string;
    try {
      userId = await this.tokens.verifyMfa(mfaToken);
    } catch (err) {
      if (err instanceof TokenError) {
        this.metrics.authFailures.inc({ reason: `mfa_token_${err.reason}` });
        throw new ApiError('unauthorized', 'sign-in step expired or not valid; sign in again');
      }
      throw err;
    }
    const user = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
    if (!user || user.disabled || !user.totpEnabled || !user.totpSecret) {
      throw new ApiError('unauthorized', 'sign-in step expired or not valid; sign in again');
    }
    await this.checkLoginThrottle(user.email, ip);
    await this.checkSecondFactor(user, code, ip);
    return this.deps.db.inPlatform((tx) => this.startSession(tx, user, ip));
  }

  /** A TOTP code, or a recovery code (spent). */
  private async checkSecondFactor(user: UserRow, code: string, ip: string): Promise<void> {
    if (RECOVERY_CODE.test(code)) await this.spendRecoveryCode(user, code, ip);
    else await this.checkTotp(user, code, ip);
  }

  /** A recovery code instead of a TOTP code: valid once (its digest is removed atomically). */
  private async spendRecoveryCode(user: UserRow, code: string, ip: string): Promise<void> {
    const digest = this.tokens.hash(normalizeRecoveryCode(code));
    const left = await this.deps.db.inPlatform(async (tx) => {
      if (!(await this.users.useRecoveryCode(tx, user.id, digest))) return null;
      const after = await this.users.byId(tx, user.id);
      await this.audit.record(
        tx,
        {
          actorType: 'user',
          actorId: user.id,
          actorLabel: user.email,
          sourceIp: ip,
          requestId: currentCorrelationId() ?? null,
        },
        {
          action: 'user.recovery_code_used',
          targetType: 'user',
          targetId: user.id,
          after: { left: after?.recoveryCodesLeft ?? 0 },
        },
      );
      return after?.recoveryCodesLeft ?? 0;
    });
    if (left === null) {
      this.metrics.authFailures.inc({ reason: 'mfa_recovery_code' });
      await this.countLoginFailure(user.email, ip);
      throw new ApiError('unauthorized', 'the code is not valid (or was already used)');
    }
    await this.authCache.revoke({ user: user.id }); // /me counts the codes left
  }

  /** New recovery codes (the old ones stop working); needs the password and a current TOTP code. */
  async regenerateRecoveryCodes(
    userId: string,
    actor: Actor,
    password: string,
    code: string,
  ): Promise<{ recoveryCodes: string[] }> {
    await this.reauthenticate(userId, actor, password);
    const user = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
    if (!user?.totpEnabled || !user.totpSecret) throw new ApiError('conflict', 'two-factor sign-in is off');
    await this.checkLoginThrottle(user.email, actor.sourceIp ?? 'unknown');
    await this.checkSecondFactor(user, code, actor.sourceIp ?? 'unknown');
    const codes = newRecoveryCodes();
    await this.deps.db.inPlatform(async (tx) => {
      await this.users.setRecoveryCodes(
        tx,
        userId,
        codes.map((c) => this.tokens.hash(normalizeRecoveryCode(c))),
      );
      await this.audit.record(tx, actor, {
        action: 'user.recovery_codes_regenerated',
        targetType: 'user',
        targetId: userId,
      });
    });
    await this.authCache.revoke({ user: userId });
    return { recoveryCodes: codes };
  }

  private async checkTotp(user: UserRow, code: string, ip: string): Promise<void> {
    const secret = this.deps.keyring.decryptText(user.totpSecret!, secretContext.userTotp(user.id));
    const step = verifyTotp(secret, code);
    if (step === null || !(await this.throttle.once('totp-used', `${user.id}:${step}`, 120))) {
      this.metrics.authFailures.inc({ reason: 'mfa_code' });
      await this.countLoginFailure(user.email, ip);
      throw new ApiError('unauthorized', 'the code is not valid (or was already used)');
    }
  }

  async startSession(tx: PlatformTx, user: UserRow, ip: string | null): Promise<TokenPair> {
    const expires = new Date(Date.now() + SESSION_DAYS * 86_400_000);
    const sessionId = await this.sessions.create(tx, user.id, expires, ip);
    await this.audit.record(
      tx,
      {
        actorType: 'user',
        actorId: user.id,
        actorLabel: user.email,
        sourceIp: ip,
        requestId: currentCorrelationId() ?? null,
      },
      { action: 'user.signed_in', targetType: 'session', targetId: sessionId },
    );
    const refreshToken = newSecret('bpr');
    await this.sessions.addRefreshToken(tx, sessionId, this.tokens.hash(refreshToken));
    return {
      tokenType: 'Bearer',
      accessToken: await this.tokens.signAccess({ userId: user.id, sessionId }),
      expiresIn: this.tokens.accessTtl,
      refreshToken,
    };
  }

  /** Rotates: the presented token is spent; presenting a spent one ends the whole session. */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const hash = this.tokens.hash(refreshToken);
    // The revocation on reuse must commit, so the transaction returns instead of throwing.
    const result = await this.deps.db.inPlatform(
      async (tx): Promise<TokenPair | 'invalid' | { readonly reusedSession: string }> => {
        const found = await this.sessions.consumeRefreshToken(tx, hash);
        if (!found || found.outcome === 'dead') return 'invalid';
        if (found.outcome === 'reused') {
          await this.sessions.revoke(tx, found.sessionId, 'refresh_token_reuse');
          await this.audit.record(
            tx,
            {
              actorType: 'system',
              actorId: null,
              actorLabel: 'refresh token reuse detection',
              sourceIp: null,
              requestId: currentCorrelationId() ?? null,
            },
            {
              action: 'session.revoked',
              targetType: 'session',
              targetId: found.sessionId,
              after: { reason: 'refresh_token_reuse', userId: found.userId },
            },
          );
          return { reusedSession: found.sessionId };
        }
        const user = await this.users.byId(tx, found.userId);
        if (!user || user.disabled) return 'invalid';
        const next = newSecret('bpr');
        await this.sessions.addRefreshToken(tx, found.sessionId, this.tokens.hash(next));
        return {
          tokenType: 'Bearer',
          accessToken: await this.tokens.signAccess({ userId: user.id, sessionId: found.sessionId }),
          expiresIn: this.tokens.accessTtl,
          refreshToken: next,
        };
      },
    );
    if (result !== 'invalid' && 'reusedSession' in result) {
      this.metrics.authFailures.inc({ reason: 'refresh_token_reuse' });
      // Whoever holds the session (the thief or the owner) loses its live sockets too.
      await this.authCache.revoke({ session: result.reusedSession });
      this.realtime.disconnect(sessionRoom(result.reusedSession));
      throw new ApiError('unauthorized', 'refresh token was already used; the session has been ended for safety');
    }
    if (result === 'invalid') {
      this.metrics.authFailures.inc({ reason: 'invalid_refresh_token' });
      throw new ApiError('unauthorized', 'refresh token is not valid; sign in again');
    }
    return result;
  }

  async logout(sessionId: string): Promise<void> {
    await this.deps.db.inPlatform((tx) => this.sessions.revoke(tx, sessionId, 'logout'));
    await this.authCache.revoke({ session: sessionId });
    this.realtime.disconnect(sessionRoom(sessionId));
  }

  async changePassword(userId: string, actor: Actor, current: string, next: string): Promise<void> {
    const user = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
    if (!user) throw new ApiError('unauthorized', 'account not found');
    await this.checkLoginThrottle(user.email, actor.sourceIp ?? 'unknown');
    if (!user.passwordHash || !(await verifyPassword(user.passwordHash, current))) {
      return this.loginFailed(user.email, actor.sourceIp ?? 'unknown', 'bad_credentials');
    }
    const problem = passwordProblem(next, user.email);
    if (problem) throw new ApiError('validation_failed', `newPassword ${problem}`);
    const hash = await hashPassword(next);
    await this.deps.db.inPlatform(async (tx) => {
      await this.users.setPassword(tx, userId, hash);
      const ended = await this.sessions.revokeAllForUser(tx, userId, 'password_changed');
      await this.audit.record(tx, actor, {
        action: 'user.password_changed',
        targetType: 'user',
        targetId: userId,
        after: { sessionsRevoked: ended },
      });
    });
    await this.authCache.revoke({ user: userId });
    this.realtime.disconnect(userRoom(userId));
  }

  async enrollMfa(userId: string, actor: Actor, password: string): Promise<{ secret: string; otpauthUri: string }> {
    await this.reauthenticate(userId, actor, password);
    return this.deps.db.inPlatform(async (tx) => {
      const user = await this.users.byId(tx, userId);
      if (!user) throw new ApiError('unauthorized', 'account not found');
      if (user.totpEnabled) throw new ApiError('conflict', 'two-factor sign-in is already on; turn it off first');
      const secret = newTotpSecret();
      await this.users.setTotp(tx, userId, this.deps.keyring.encrypt(secret, secretContext.userTotp(userId)), false);
      return { secret, otpauthUri: otpauthUri(secret, user.email) };
    });
  }

  /** The account's password again, throttled like a sign-in (a wrong one counts as a failure). */
  private async reauthenticate(userId: string, actor: Actor, password: string): Promise<void> {
    const user = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
    if (!user) throw new ApiError('unauthorized', 'account not found');
    await this.checkLoginThrottle(user.email, actor.sourceIp ?? 'unknown');
    if (!user.passwordHash || !(await verifyPassword(user.passwordHash, password))) {
      return this.loginFailed(user.email, actor.sourceIp ?? 'unknown', 'bad_credentials');
    }
  }

  async setMfa(
    userId: string,
    actor: Actor,
    code: string,
    enable: boolean,
    opts: { password?: string; keepSession?: string } = {},
  ): Promise<{ recoveryCodes: string[] }> {
    if (!enable) await this.reauthenticate(userId, actor, opts.password ?? '');
    const user = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
    if (!user?.totpSecret) throw new ApiError('conflict', 'enroll first (POST /api/v1/me/mfa/enroll)');
    if (user.totpEnabled === enable)
      throw new ApiError('conflict', `two-factor sign-in is already ${enable ? 'on' : 'off'}`);
    await this.checkLoginThrottle(user.email, actor.sourceIp ?? 'unknown');
    // Turning it off also takes a recovery code (someone who lost the phone can re-enrol).
    if (enable) await this.checkTotp(user, code, actor.sourceIp ?? 'unknown');
    else await this.checkSecondFactor(user, code, actor.sourceIp ?? 'unknown');
    // Enabling hands out fresh recovery codes (shown once, stored as HMAC digests); disabling
    // removes them.
    const codes = enable ? newRecoveryCodes() : [];
    await this.deps.db.inPlatform(async (tx) => {
      await this.users.setTotp(tx, userId, enable ? user.totpSecret : null, enable);
      await this.users.setRecoveryCodes(
        tx,
        userId,
        codes.map((c) => this.tokens.hash(normalizeRecoveryCode(c))),
      );
      // Turning the second factor on ends every other session: one opened with the password
      // alone (perhaps stolen) does not outlive it.
      const ended = enable ? await this.sessions.revokeAllForUser(tx, userId, 'mfa_enabled', opts.keepSession) : 0;
      await this.audit.record(tx, actor, {
        action: enable ? 'user.mfa_enabled' : 'user.mfa_disabled',
        targetType: 'user',
        targetId: userId,
        ...(enable ? { after: { sessionsRevoked: ended } } : {}),
      });
    });
    // Other sessions end (on), and tenants that require MFA let the account in or not.
    await this.authCache.revoke({ user: userId });
    return { recoveryCodes: codes };
  }
}
