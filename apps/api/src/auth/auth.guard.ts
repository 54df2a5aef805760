import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiKeysRepository, RegionsRepository, SessionsRepository, TenantScope, type TenantRole } from '@backplane/db';
import { ApiError } from '../common/api-error';
import { ApiMetrics } from '../common/metrics';
import {
  ACCESS,
  actorOf,
  roleAtLeast,
  type AccessPolicy,
  type AuthedRequest,
  type Principal,
  type RequestAuth,
} from '../common/request';
import { Throttle } from '../common/throttle';
import { API_DEPS, type ApiDeps } from '../deps';
import { TokenError, TokenService } from './tokens';

/** Failed authentications (bad or expired tokens and keys) per source address per window. */
export const AUTH_FAILURES_PER_IP = 200;
const AUTH_FAILURE_WINDOW_SECONDS = 300;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The one global guard: per-client rate limit, then authentication (user access token,
 * API key or gateway credential), then the route's access policy. For tenant routes it
 * checks the membership (or the API key's tenant) and mints the request's TenantScope;
 * another tenant's id answers 404 so existence does not leak.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tokens: TokenService,
    private readonly throttle: Throttle,
    private readonly metrics: ApiMetrics,
    private readonly sessions: SessionsRepository,
    private readonly apiKeys: ApiKeysRepository,
    private readonly regions: RegionsRepository,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const url = req.routeOptions.url ?? req.url;
    if (!url.startsWith('/api/')) return true; // health, readiness, metrics
    const policy = this.reflector.getAllAndOverride<AccessPolicy | undefined>(ACCESS, [
      ctx.getHandler(),
      ctx.getClass(),
    ]);
    if (!policy) throw new ApiError('forbidden', 'this route declares no access policy'); // fail closed
    let failing: { ttl: number } | null = null;
    try {
      const bearer = this.bearer(req);
      failing = await this.limits(bearer ?? `ip:${req.ip}`, req.ip);
      return await this.authenticate(policy, bearer, req);
    } catch (err) {
      throw await this.afterFailure(err, req.ip, failing);
    }
  }

  /**
   * A failed authentication counts against the address. Once the address is over the cap, its
   * failures answer 429 instead of 401, but a valid credential from it is still served: the cap
   * slows guessing, it never locks out the people behind that address (issue 14 finding 5).
   */
  private async afterFailure(err: unknown, ip: string, failing: { ttl: number } | null): Promise<unknown> {
    if (!(err instanceof ApiError) || err.code !== 'unauthorized') return err;
    await this.throttle.hit('authfail-ip', ip, AUTH_FAILURE_WINDOW_SECONDS);
    if (!failing) return err;
    this.metrics.rateLimited.inc({ kind: 'auth_failures' });
    return new ApiError('rate_limited', 'too many failed authentications from this address', undefined, failing.ttl);
  }

  /**
   * One Redis round trip: counts this request against the caller's per-minute limit and
   * reads the address's failed-authentication count (random bearer strings would otherwise
   * spread the per-credential limit thin).
   */
  private async limits(subject: string, ip: string): Promise<{ ttl: number } | null> {
    const limit = this.deps.config.API_RATE_LIMIT;
    const { hit, peek } = await this.throttle.hitAndPeek(
      { kind: 'api', subject, windowSeconds: 60 },
      { kind: 'authfail-ip', subject: ip },
    );
    if (hit.count > limit) {
      this.metrics.rateLimited.inc({ kind: 'api' });
      throw new ApiError('rate_limited', `more than ${limit} requests per minute; slow down`, undefined, hit.ttl);
    }
    return peek.count >= AUTH_FAILURES_PER_IP ? { ttl: peek.ttl } : null;
  }

  private async authenticate(policy: AccessPolicy, bearer: string | undefined, req: AuthedRequest): Promise<boolean> {
    if (policy.kind === 'public') return true;
    if (!bearer) return this.fail('missing', 'authentication required: send Authorization: Bearer <token>');

    if (policy.kind === 'gateway') {
      req.auth = { principal: await this.gateway(bearer) };
      return true;
    }
    if (bearer.startsWith('bpg_')) return this.fail('wrong_type', 'a gateway credential cannot call this route');

    if (policy.kind === 'tenant') {
      const tenantId = (req.params as Record<string, string | undefined>)['tenantId'];
      if (!tenantId || !UUID.test(tenantId)) throw ApiError.notFound('tenant');
      req.auth = await this.tenantAuth(bearer, tenantId, policy.min, req);
      return true;
    }

    if (bearer.startsWith('bpk_'))
      throw new ApiError('forbidden', 'API keys act for a tenant; this route needs a user');
    const principal = await this.user(bearer);
    if (policy.kind === 'platform' && !principal.platformOperator) {
      throw new ApiError('forbidden', 'this route needs the platform-operator role');
    }
    req.auth = { principal };
    return true;
  }

  private bearer(req: AuthedRequest): string | undefined {
    const h = req.headers.authorization;
    if (!h) return undefined;
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{10,2048})$/.exec(h);
    if (!m) return this.fail('malformed', 'Authorization header must be "Bearer <token>"');
    return m[1];
  }

  private fail(reason: string, message: string): never {
    this.metrics.authFailures.inc({ reason });
    throw new ApiError('unauthorized', message);
  }

  private async user(token: string): Promise<Extract<Principal, { kind: 'user' }>> {
    const claims = await this.verify(token);
    const state = await this.deps.db.inPlatform((tx) => this.sessions.state(tx, claims.sessionId));
    return this.userFromState(state, claims.userId);
  }

  private async verify(token: string) {
    try {
      return await this.tokens.verifyAccess(token);
    } catch (err) {
      if (err instanceof TokenError) {
        return this.fail(err.reason, err.reason === 'expired' ? 'access token expired' : 'access token is not valid');
      }
      throw err;
    }
  }

  private userFromState(
    state: Awaited<ReturnType<SessionsRepository['state']>>,
    userId: string,
  ): Extract<Principal, { kind: 'user' }> {
    if (!state || state.userId !== userId) return this.fail('invalid', 'access token is not valid');
    if (state.revoked || state.expired) return this.fail('revoked_session', 'session ended; sign in again');
    if (state.userDisabled) return this.fail('disabled', 'account disabled');
    return {
      kind: 'user',
      userId,
      email: state.email,
      sessionId: state.sessionId,
      platformOperator: state.platformOperator,
    };
  }

  /**
   * The tenant-route rule for a bearer presented outside an HTTP route (the realtime
   * handshake): same rate limit, failed-authentication cap, token/API-key checks,
   * membership and role as REST, with the same messages. Throws ApiError.
   */
  async authenticateTenantBearer(
    bearer: string,
    tenantId: string,
    min: TenantRole,
    ip: string,
  ): Promise<{ principal: Principal; scope: TenantScope; role: TenantRole }> {
    let failing: { ttl: number } | null = null;
    try {
      failing = await this.limits(bearer, ip);
      if (bearer.startsWith('bpg_')) return this.fail('wrong_type', 'a gateway credential cannot call this route');
      if (!UUID.test(tenantId)) throw ApiError.notFound('tenant');
      return await this.tenantBearer(bearer, tenantId, min);
    } catch (err) {
      throw await this.afterFailure(err, ip, failing);
    }
  }

  private async tenantAuth(token: string, tenantId: string, min: TenantRole, req: AuthedRequest): Promise<RequestAuth> {
    const { principal, scope, role } = await this.tenantBearer(token, tenantId, min);
    return { principal, tenant: { scope, role, principal, actor: actorOf(principal, req) } };
  }

  private async tenantBearer(
    token: string,
    tenantId: string,
    min: TenantRole,
  ): Promise<{ principal: Principal; scope: TenantScope; role: TenantRole }> {
    const scope = TenantScope.authenticated(tenantId);
    let principal: Principal;
    let role: TenantRole | null;
    if (token.startsWith('bpk_')) {
      const key = await this.deps.db.inPlatform((tx) => this.apiKeys.byHash(tx, this.tokens.hash(token)));
      if (!key) return this.fail('unknown_api_key', 'API key is not valid');
      if (key.revokedAt) return this.fail('revoked_api_key', 'API key was revoked');
      if (key.expiresAt.getTime() <= Date.now()) return this.fail('expired_api_key', 'API key expired');
      if (key.tenantId !== scope.tenantId) throw ApiError.notFound('tenant');
      // A key belongs to its creator's membership (ADR 0051): gone with it, never above it.
      if (!key.memberRole)
        return this.fail('api_key_member_gone', 'the member this API key belongs to left the tenant');
      role = roleAtLeast(key.memberRole, key.role) ? key.role : key.memberRole;
      principal = { kind: 'apiKey', apiKeyId: key.id, tenantId: key.tenantId, role, name: key.name };
      const enabled = await this.deps.db.inTenant(scope, (tx) => this.apiKeys.touch(tx, key.id));
      if (!enabled) throw ApiError.notFound('tenant');
    } else {
      const claims = await this.verify(token);
      const state = await this.deps.db.inTenant(scope, (tx) => this.sessions.stateWithRole(tx, claims.sessionId));
      principal = this.userFromState(state, claims.userId);
      role = state?.role ?? null;
      // Tenant policy "MFA required" (ADR 0054): a member without two-factor sign-in may sign
      // in and use /me (to enrol) but no route of this tenant until they enrol.
      if (role && state?.mfaMissing) {
        throw new ApiError(
          'mfa_required',
          'this tenant requires two-factor sign-in; turn it on for your account (POST /api/v1/me/mfa/enroll) first',
        );
      }
    }
    if (!role) throw ApiError.notFound('tenant');
    if (!roleAtLeast(role, min)) {
      throw new ApiError('forbidden', `this action needs the ${min} role or higher in this tenant (you are ${role})`);
    }
    return { principal, scope, role };
  }

  private async gateway(token: string): Promise<Principal> {
    if (!token.startsWith('bpg_')) return this.fail('wrong_type', 'this route needs a gateway credential');
    const gw = await this.deps.db.inPlatform((tx) =>
      this.regions.gatewayByCredential(tx, this.tokens.hash(token), this.deps.config.GATEWAY_DOWN_AFTER),
    );
    if (!gw) return this.fail('unknown_gateway', 'gateway credential is not valid');
    return { kind: 'gateway', gatewayId: gw.id, regionId: gw.regionId, name: gw.name };
  }
}
