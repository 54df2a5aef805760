import {
  applyDecorators,
  Inject,
  Injectable,
  SetMetadata,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiHeader } from '@nestjs/swagger';
import {
  IdempotencyRepository,
  type ClaimResult,
  type IdempotencyClaim,
  type IdempotencyRecord,
  type PlatformTx,
  type TenantTx,
} from '@backplane/db';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { TokenService } from '../auth/tokens';
import { API_DEPS, type ApiDeps } from '../deps';
import { ApiError } from './api-error';
import type { AuthedRequest, Principal } from './request';

const IDEMPOTENT = 'backplane:idempotent';
const KEY = /^[A-Za-z0-9_.:-]{1,255}$/;
/** How long the first answer of a non-job create is kept (ADR 0058). Jobs: forever. */
export const IDEMPOTENCY_RETENTION_SECONDS = 24 * 3600;

/** The `Idempotency-Key` header's documentation, on every creating POST. */
export const IdempotencyHeader = (jobs = false) =>
  ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: jobs
      ? 'Makes retries safe: the same key with the same request returns the same job (200 instead of 201) for as long as the job exists; with a different request (body, kind or route), 422 idempotency_key_reused.'
      : 'Makes retries safe for 24 h: the same key with the same request returns the first answer; with a different request (body or route), 422 idempotency_key_reused.',
  });

/** Creating POSTs accept `Idempotency-Key`: a retry with the same key and request gets the first answer. */
export const Idempotent = () => applyDecorators(SetMetadata(IDEMPOTENT, true), IdempotencyHeader());

function principalKey(p: Principal | undefined): string {
  if (!p) return 'anon';
  if (p.kind === 'user') return `u:${p.userId}`;
  if (p.kind === 'apiKey') return `k:${p.apiKeyId}`;
  return `g:${p.gatewayId}`;
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The one idempotency scheme (ADR 0058): records in PostgreSQL (`idempotency_records`), per
 * tenant (or platform) and caller, with a keyed hash of the whole request (method, route,
 * path parameters, body), so one key names one request everywhere.
 */
@Injectable()
export class IdempotencyService {
  readonly repo: IdempotencyRepository;

  constructor(
    private readonly tokens: TokenService,
    @Inject(API_DEPS) deps: ApiDeps,
  ) {
    this.repo = new IdempotencyRepository(deps.keyring);
  }

  /** The request's key and fingerprint, or undefined without the header (400 on a malformed key). */
  claimOf(req: FastifyRequest): IdempotencyClaim | undefined {
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return undefined;
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (!key || !KEY.test(key)) {
      throw new ApiError('validation_failed', 'Idempotency-Key must be 1-255 characters of A-Z a-z 0-9 _ . : -');
    }
    const route = `${req.method} ${req.routeOptions.url ?? ''}`;
    // Keyed: bodies may hold initial passwords; the table is no place for their plain hashes.
    const requestHash = this.tokens.hash(JSON.stringify(canonical({ route, params: req.params, body: req.body })));
    return { principal: principalKey((req as AuthedRequest).auth?.principal), key, requestHash, route };
  }

  /** 422 when the key was used for another request; the record otherwise. */
  checkSame(claim: IdempotencyClaim, record: IdempotencyRecord): IdempotencyRecord {
    if (record.requestHash !== claim.requestHash) {
      throw new ApiError(
        'idempotency_key_reused',
        `this Idempotency-Key was used with a different request (${record.route}, another body or kind)`,
      );
    }
    return record;
  }
}

/**
 * Non-job creates: a `pending` record is committed before the handler runs (a concurrent
 * duplicate gets 409 idempotency_in_progress), then the status and body for 24 hours. A failed
 * first attempt is forgotten so it can be retried; a pending record older than a minute (its
 * process died) is taken over. Job creates claim inside the job's own transaction instead
 * (JobsService), so a job and its record commit together.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly idem: IdempotencyService,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.reflector.get<boolean | undefined>(IDEMPOTENT, ctx.getHandler())) return next.handle();
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const claim = this.idem.claimOf(req);
    if (!claim) return next.handle();
    return from(this.run(ctx, req, claim, next));
  }

  private inScope<T>(req: AuthedRequest, fn: (tx: TenantTx | PlatformTx) => Promise<T>): Promise<T> {
    const scope = req.auth?.tenant?.scope;
    return scope ? this.deps.db.inTenant(scope, fn) : this.deps.db.inPlatform(fn);
  }

  private async run(
    ctx: ExecutionContext,
    req: AuthedRequest,
    claim: IdempotencyClaim,
    next: CallHandler,
  ): Promise<unknown> {
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const repo = this.idem.repo;
    const found: ClaimResult = await this.inScope(req, (tx) => repo.claim(tx, claim, IDEMPOTENCY_RETENTION_SECONDS));
    if (!found.claimed) {
      const stored = this.idem.checkSame(claim, found.record);
      if (stored.state === 'pending') {
        throw new ApiError('idempotency_in_progress', 'a request with this Idempotency-Key is still running');
      }
      void reply.status(stored.status ?? 200).header('idempotent-replayed', 'true');
      return stored.body;
    }
    try {
      const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
      const status = (Reflect.getMetadata('__httpCode__', ctx.getHandler()) as number | undefined) ?? 201;
      await this.inScope(req, (tx) => repo.complete(tx, found.id, status, body));
      return body;
    } catch (err) {
      await this.inScope(req, (tx) => repo.release(tx, claim)).catch((e: unknown) =>
        this.deps.logger.warn({ err: String(e) }, 'could not release an idempotency claim'),
      );
      throw err;
    }
  }
}
