import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  ApiKeysRepository,
  RegionsRepository,
  SessionsRepository,
  TenantScope,
  type ApiKeyAuthRow,
  type SessionState,
  type TenantRole,
} from '@backplane/db';
import { realtimeKeys } from '@backplane/realtime';
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
import { AUTH_CACHE_TTL_MS, AuthCache } from './auth-cache';
import { TokenError, TokenService } from './tokens';

/** Failed authentications (bad or expired tokens and keys) per source address per window. */
export const AUTH_FAILURES_PER_IP = 200;
const AUTH_FAILURE_WINDOW_SECONDS = 300;

/**
 * How often a cached API key's `last_used_at` is written (at most once a minute in fact: the
 * statement skips fresher rows) and its tenant's state re-read: as often as the cache forgets.
 */
const API_KEY_TOUCH_MS = AUTH_CACHE_TTL_MS;

type SessionWithRole = SessionState & { role: TenantRole | null; mfaMissing: boolean };
interface CachedKey {
  readonly key: ApiKeyAuthRow;
  enabled: boolean;
  touchedAt: number;
  /** The `last_used_at` write (and tenant check) in flight: concurrent uses wait for it instead of repeating it. */
  touching?: Promise<void> | undefined;
}

/** A database lookup in flight for a cache key, and the auth-cache mark it was started at. */
interface Flight {
  readonly mark: number;
  readonly result: Promise<unknown>;
}

/** What the request's Redis gate read for the caches. */
interface Gate {
  readonly failing: { ttl: number } | null;
  /** May this request use the auth cache (every invalidation up to now applied here)? */
  readonly cached: boolean;
  /** The tenant's realtime sequence number (tenant routes), for response caches. */
  readonly seq?: number;
}

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
    private readonly cache: AuthCache,
  ) {}

  /**
   * Cache misses being read from PostgreSQL, by cache key (ADR 0114): the 50 sockets of one
   * credential that connect at once make one lookup, not 50. A request joins a lookup only
   * where it could have used a cache entry stored by it: it may use the cache (`cached`: this
   * process applied every invalidation up to the epoch the request read) and no invalidation
   * was applied since the lookup began (same mark), so the lookup's read is not older than any
   * revocation the request must see.
   */
  private readonly flights = new Map<string, Flight>();

  private shared<T>(key: string, cached: boolean, load: () => Promise<T>): Promise<T> {
    if (!cached) return load();
    const mark = this.cache.mark();
    const flight = this.flights.get(key);
    if (flight && flight.mark === mark) return flight.result as Promise<T>;
    const result = load();
    const mine: Flight = { mark, result };
    this.flights.set(key, mine);
    const done = () => {
      if (this.flights.get(key) === mine) this.flights.delete(key);
    };
    result.then(done, done);
    return result;
  }

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
      const tenantId = policy.kind === 'tenant' ? (req.params as Record<string, string | undefined>)['tenantId'] : null;
      const gate = await this.limits(
        bearer ?? `ip:${req.ip}`,
        req.ip,
        tenantId && UUID.test(tenantId) ? tenantId : null,
      );
      failing = gate.failing;
      return await this.authenticate(policy, bearer, req, gate);
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
   * One Redis round trip (one script): counts this request against the caller's per-minute
   * limit, reads the address's failed-authentication count (random bearer strings would
   * otherwise spread the per-credential limit thin), the auth cache's epoch and, for a tenant
   * route, the tenant's realtime sequence number (ADR 0076).
   */
  private async limits(subject: string, ip: string, tenantId: string | null): Promise<Gate> {
    const limit = this.deps.config.API_RATE_LIMIT;
    const reads = [this.cache.epochKey];
    if (tenantId) reads.push(realtimeKeys(this.deps.redisPrefix).seq(tenantId.toLowerCase()));
    const {
      hit,
      peek,
      reads: values,
    } = await this.throttle.hitAndPeek(
      { kind: 'api', subject, windowSeconds: 60 },
      { kind: 'authfail-ip', subject: ip },
      reads,
    );
    if (hit.count > limit) {
      this.metrics.rateLimited.inc({ kind: 'api' });
      throw new ApiError('rate_limited', `more than ${limit} requests per minute; slow down`, undefined, hit.ttl);
    }
    return {
      failing: peek.count >= AUTH_FAILURES_PER_IP ? { ttl: peek.ttl } : null,
      cached: this.cache.usable(values[0] ?? 0),
      ...(tenantId ? { seq: values[1] ?? 0 } : {}),
    };
  }

  private async authenticate(
    policy: AccessPolicy,
    bearer: string | undefined,
    req: AuthedRequest,
    gate: Gate,
  ): Promise<boolean> {
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
      req.auth = { ...(await this.tenantAuth(bearer, tenantId, policy.min, req, gate)), cacheable: gate.cached };
      return true;
    }

    if (bearer.startsWith('bpk_'))
      throw new ApiError('forbidden', 'API keys act for a tenant; this route needs a user');
    const principal = await this.user(bearer, gate.cached);
    if (policy.kind === 'platform' && !principal.platformOperator) {
      throw new ApiError('forbidden', 'this route needs the platform-operator role');
    }
    req.auth = { principal, cacheable: gate.cached };
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

  /** One `last_used_at` write (one round trip), which also reads whether the key's tenant is enabled. */
  private async touch(scope: TenantScope, entry: CachedKey): Promise<void> {
    const now = Date.now();
    entry.enabled = await this.deps.db.inTenantOneTrip(scope, (tx) => this.apiKeys.touch(tx, entry.key.id));
    entry.touchedAt = now;
  }

  private async user(token: string, cached: boolean): Promise<Extract<Principal, { kind: 'user' }>> {
    const claims = await this.verify(token);
    const key = `s:${claims.sessionId}`;
    const hit = cached ? this.cache.get<SessionState>(key) : undefined;
    if (hit) return this.userFromState(hit, claims.userId);
    const state = await this.shared(key, cached, async () => {
      const mark = this.cache.mark();
      const read = await this.deps.db.readPlatform((tx) => this.sessions.state(tx, claims.sessionId));
      if (cached && read && this.usableSession(read, claims.userId))
        this.cache.set(key, read, { session: read.sessionId, user: read.userId }, mark, read.expiresAt.getTime());
      return read;
    });
    return this.userFromState(state, claims.userId);
  }

  /** Only sessions that pass are cached: a refusal is always read from the database again. */
  private usableSession(state: SessionState, userId: string): boolean {
    return state.userId === userId && !state.revoked && !state.expired && !state.userDisabled;
  }

  /** The session with its role in the scope's tenant: from the cache, or one query. */
  private async sessionWithRole(
    scope: TenantScope,
    sessionId: string,
    userId: string,
    cached: boolean,
  ): Promise<SessionWithRole | null> {
    const key = `st:${sessionId}:${scope.tenantId}`;
    const hit = cached ? this.cache.get<SessionWithRole>(key) : undefined;
    if (hit) return hit;
    return this.shared(key, cached, async () => {
      const mark = this.cache.mark();
      const state = await this.deps.db.readTenant(scope, (tx) => this.sessions.stateWithRole(tx, sessionId));
      if (cached && state?.role && this.usableSession(state, userId)) {
        const tags = { session: state.sessionId, user: state.userId, tenant: scope.tenantId };
        this.cache.set(key, state, tags, mark, state.expiresAt.getTime());
      }
      return state;
    });
  }

  /** The API key a secret hashes to (cached when found), and whether its tenant is enabled. */
  private async apiKey(token: string, scope: TenantScope, cached: boolean): Promise<CachedKey | null> {
    const hash = this.tokens.hash(token);
    const key = `k:${hash}`;
    const hit = cached ? this.cache.get<CachedKey>(key) : undefined;
    if (hit) return hit;
    return this.shared(key, cached, async () => {
      const mark = this.cache.mark();
      const row = await this.deps.db.readPlatform((tx) => this.apiKeys.byHash(tx, hash));
      if (!row) return null;
      // `enabled` and `touchedAt` are filled by the first touch, in the key's own tenant.
      const entry: CachedKey = { key: row, enabled: false, touchedAt: 0 };
      if (cached && row.tenantId === scope.tenantId && !row.revokedAt && row.memberRole) {
        this.cache.set(key, entry, { apiKey: row.id, tenant: row.tenantId, user: row.createdBy ?? undefined }, mark);
      }
      return entry;
    });
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
  ): Promise<{ principal: Principal; scope: TenantScope; role: TenantRole; seq: number }> {
    let failing: { ttl: number } | null = null;
    try {
      const gate = await this.limits(bearer, ip, UUID.test(tenantId) ? tenantId : null);
      failing = gate.failing;
      if (bearer.startsWith('bpg_')) return this.fail('wrong_type', 'a gateway credential cannot call this route');
      if (!UUID.test(tenantId)) throw ApiError.notFound('tenant');
      return { ...(await this.tenantBearer(bearer, tenantId, min, gate.cached)), seq: gate.seq ?? 0 };
    } catch (err) {
      throw await this.afterFailure(err, ip, failing);
    }
  }

  private async tenantAuth(
    token: string,
    tenantId: string,
    min: TenantRole,
    req: AuthedRequest,
    gate: Gate,
  ): Promise<RequestAuth> {
    const { principal, scope, role } = await this.tenantBearer(token, tenantId, min, gate.cached);
    const seq = gate.seq;
    return {
      principal,
      tenant: { scope, role, principal, actor: actorOf(principal, req), ...(seq !== undefined ? { seq } : {}) },
    };
  }

  private async tenantBearer(
    token: string,
    tenantId: string,
    min: TenantRole,
    cached: boolean,
  ): Promise<{ principal: Principal; scope: TenantScope; role: TenantRole }> {
    const scope = TenantScope.authenticated(tenantId);
    let principal: Principal;
    let role: TenantRole | null;
    if (token.startsWith('bpk_')) {
      const entry = await this.apiKey(token, scope, cached);
      const key = entry?.key;
      if (!entry || !key) return this.fail('unknown_api_key', 'API key is not valid');
      if (key.revokedAt) return this.fail('revoked_api_key', 'API key was revoked');
      if (key.expiresAt.getTime() <= Date.now()) return this.fail('expired_api_key', 'API key expired');
      if (key.tenantId !== scope.tenantId) throw ApiError.notFound('tenant');
      // A key belongs to its creator's membership (ADR 0051): gone with it, never above it.
      if (!key.memberRole)
        return this.fail('api_key_member_gone', 'the member this API key belongs to left the tenant');
      role = roleAtLeast(key.memberRole, key.role) ? key.role : key.memberRole;
      principal = { kind: 'apiKey', apiKeyId: key.id, tenantId: key.tenantId, role, name: key.name };
      // last_used_at is written at most once a minute anyway; a cached key skips the round trip
      // in between (the tenant's state comes with the write), and concurrent uses share one.
      if (Date.now() - entry.touchedAt >= API_KEY_TOUCH_MS) {
        entry.touching ??= this.touch(scope, entry).finally(() => (entry.touching = undefined));
        await entry.touching;
      }
      if (!entry.enabled) throw ApiError.notFound('tenant');
    } else {
      const claims = await this.verify(token);
      const state = await this.sessionWithRole(scope, claims.sessionId, claims.userId, cached);
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
