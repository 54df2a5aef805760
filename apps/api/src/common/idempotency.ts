import { createHash } from 'node:crypto';
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
import type { FastifyReply } from 'fastify';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { z } from 'zod';
import { TokenService } from '../auth/tokens';
import { API_DEPS, type ApiDeps } from '../deps';
import { ApiError } from './api-error';
import type { AuthedRequest, Principal } from './request';

const IDEMPOTENT = 'backplane:idempotent';
const KEY = /^[A-Za-z0-9_.:-]{1,255}$/;
const DONE_TTL_SECONDS = 24 * 3600;
const PENDING_TTL_SECONDS = 60;

/** Creating POSTs accept `Idempotency-Key`: a retry with the same key and body gets the first answer. */
export const Idempotent = () =>
  applyDecorators(
    SetMetadata(IDEMPOTENT, true),
    ApiHeader({
      name: 'Idempotency-Key',
      required: false,
      description:
        'Makes retries safe for 24 h: the same key with the same body returns the first answer; with a different body, 422.',
    }),
  );

/** The Redis record of one key (parsed, not cast: a bad record is dropped and the client retries). */
const Stored = z.object({
  state: z.enum(['pending', 'done']),
  hash: z.string(),
  status: z.number().int().optional(),
  body: z.unknown().optional(),
});
type Stored = z.infer<typeof Stored>;

function parseStored(text: string | null): Stored | undefined {
  if (!text) return undefined;
  try {
    return Stored.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
}

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
 * Stored in Redis per caller and route: `pending` while the first request runs (a
 * concurrent duplicate gets 409), then the status and body for 24 hours. A failed first
 * attempt is forgotten so it can be retried.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tokens: TokenService,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (!this.reflector.get<boolean | undefined>(IDEMPOTENT, ctx.getHandler())) return next.handle();
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const raw = req.headers['idempotency-key'];
    if (raw === undefined) return next.handle();
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (!key || !KEY.test(key)) {
      throw new ApiError('validation_failed', 'Idempotency-Key must be 1-255 characters of A-Z a-z 0-9 _ . : -');
    }
    return from(this.run(ctx, req, key, next));
  }

  private async run(ctx: ExecutionContext, req: AuthedRequest, key: string, next: CallHandler): Promise<unknown> {
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const redis = this.deps.redis;
    const scope = req.auth?.tenant?.scope.tenantId ?? 'platform';
    const route = `${req.method} ${req.routeOptions.url ?? ''}`;
    const rkey = `${this.deps.redisPrefix}idem:${scope}:${principalKey(req.auth?.principal)}:${createHash('sha256').update(`${route}\0${key}`).digest('base64url')}`;
    // Keyed: bodies may hold initial passwords, and Redis is not a place for their plain hashes.
    const hash = this.tokens.hash(JSON.stringify(canonical({ params: req.params, body: req.body })));
    const pending: Stored = { state: 'pending', hash };
    const claimed = await redis.set(rkey, JSON.stringify(pending), 'EX', PENDING_TTL_SECONDS, 'NX');
    if (claimed !== 'OK') {
      const text = await redis.get(rkey);
      const stored = parseStored(text);
      if (text && !stored) await redis.del(rkey); // unreadable: gone, the retry runs the request
      if (!stored)
        throw new ApiError('idempotency_in_progress', 'a request with this Idempotency-Key just finished; retry');
      if (stored.hash !== hash) {
        throw new ApiError('idempotency_key_reused', 'this Idempotency-Key was used with a different request body');
      }
      if (stored.state === 'pending') {
        throw new ApiError('idempotency_in_progress', 'a request with this Idempotency-Key is still running');
      }
      void reply.status(stored.status ?? 200).header('idempotent-replayed', 'true');
      return stored.body;
    }
    try {
      const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
      const status = (Reflect.getMetadata('__httpCode__', ctx.getHandler()) as number | undefined) ?? 201;
      const done: Stored = { state: 'done', hash, status, body };
      await redis.set(rkey, JSON.stringify(done), 'EX', DONE_TTL_SECONDS);
      return body;
    } catch (err) {
      await redis.del(rkey);
      throw err;
    }
  }
}
