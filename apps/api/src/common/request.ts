import { applyDecorators, createParamDecorator, SetMetadata, type ExecutionContext } from '@nestjs/common';
import { ApiParam } from '@nestjs/swagger';
import type { AuditEntryInput, TenantRole, TenantScope } from '@backplane/db';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './api-error';

export type Principal =
  | { kind: 'user'; userId: string; email: string; sessionId: string; platformOperator: boolean }
  | { kind: 'apiKey'; apiKeyId: string; tenantId: string; role: TenantRole; name: string }
  | { kind: 'gateway'; gatewayId: string; regionId: string; name: string };

/** Who did something, for the audit log. */
export type Actor = Pick<AuditEntryInput, 'actorType' | 'actorId' | 'actorLabel' | 'sourceIp' | 'requestId'>;

export interface TenantContext {
  readonly scope: TenantScope;
  readonly role: TenantRole;
  readonly actor: Actor;
  readonly principal: Principal;
  /**
   * The tenant's realtime sequence number when the request was let in (read in the same Redis
   * call as the rate limit): every tenant event increments it, so a response cached at this
   * number is current as long as it has not moved (ADR 0076).
   */
  readonly seq?: number;
}

export interface RequestAuth {
  principal: Principal;
  tenant?: TenantContext;
  /** The guard found this process's auth cache current for this request (ADR 0076). */
  cacheable?: boolean;
}

export type AuthedRequest = FastifyRequest & { auth?: RequestAuth };

/** Who may call a route. Every route declares one; the guard refuses undeclared routes. */
export type AccessPolicy =
  | { kind: 'public' }
  | { kind: 'user' }
  | { kind: 'tenant'; min: TenantRole }
  | { kind: 'platform' }
  | { kind: 'gateway' };

export const ACCESS = 'backplane:access';

export const Public = () => SetMetadata(ACCESS, { kind: 'public' } satisfies AccessPolicy);
/** Any signed-in person (user tokens only; API keys act for a tenant, not a person). */
export const SignedIn = () => SetMetadata(ACCESS, { kind: 'user' } satisfies AccessPolicy);
/** A member of the `:tenantId` in the path (user or API key) with at least this role. */
export const TenantAccess = (min: TenantRole) =>
  applyDecorators(
    SetMetadata(ACCESS, { kind: 'tenant', min } satisfies AccessPolicy),
    ApiParam({ name: 'tenantId', description: 'Tenant id (UUID)', schema: { type: 'string', format: 'uuid' } }),
  );
export const PlatformOperator = () => SetMetadata(ACCESS, { kind: 'platform' } satisfies AccessPolicy);
export const GatewayAccess = () => SetMetadata(ACCESS, { kind: 'gateway' } satisfies AccessPolicy);

const ROLE_RANK: Record<TenantRole, number> = { viewer: 0, operator: 1, admin: 2, owner: 3 };

/** The one role comparison of the api: does `role` include everything `min` may do? */
export function roleAtLeast(role: TenantRole, min: TenantRole): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[min];
}

/** Who did it, for the audit log: the principal plus where the request (or socket) came from. */
export function actorOf(principal: Principal, req: Pick<FastifyRequest, 'ip' | 'id'>): Actor {
  const base = { sourceIp: req.ip, requestId: req.id };
  switch (principal.kind) {
    case 'user':
      return { ...base, actorType: 'user', actorId: principal.userId, actorLabel: principal.email };
    case 'apiKey':
      return { ...base, actorType: 'api_key', actorId: principal.apiKeyId, actorLabel: principal.name };
    case 'gateway':
      return { ...base, actorType: 'gateway', actorId: principal.gatewayId, actorLabel: principal.name };
  }
}

function authOf(ctx: ExecutionContext): RequestAuth {
  const req = ctx.switchToHttp().getRequest<AuthedRequest>();
  if (!req.auth) throw new ApiError('unauthorized', 'authentication required');
  return req.auth;
}

/** The tenant the guard authenticated this request for (scope, role and actor). */
export const Tenant = createParamDecorator((_: unknown, ctx: ExecutionContext): TenantContext => {
  const t = authOf(ctx).tenant;
  if (!t) throw new Error('@Tenant() on a route without @TenantAccess()');
  return t;
});

export const CurrentPrincipal = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Principal => authOf(ctx).principal,
);

export const CurrentActor = createParamDecorator((_: unknown, ctx: ExecutionContext): Actor => {
  const req = ctx.switchToHttp().getRequest<AuthedRequest>();
  return actorOf(authOf(ctx).principal, req);
});

/** Whether this request may read the api's auth cache (every revocation up to its start applied here). */
export const AuthCacheable = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): boolean => authOf(ctx).cacheable === true,
);

export const SourceIp = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): string => ctx.switchToHttp().getRequest<FastifyRequest>().ip,
);

export const RequestMeta = createParamDecorator((_: unknown, ctx: ExecutionContext): { ip: string; id: string } => {
  const req = ctx.switchToHttp().getRequest<FastifyRequest>();
  return { ip: req.ip, id: req.id };
});
