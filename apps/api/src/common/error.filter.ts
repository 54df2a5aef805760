import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import { InvalidCursorError, isTransientDbError } from '@backplane/db';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ApiError, ERROR_STATUS, type ErrorBody, type ErrorCode, type ErrorDetail } from './api-error';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'validation_failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'unavailable',
};

/** Retry-After (seconds) of a 503 answered while the database is unavailable. */
const DB_RETRY_AFTER_S = 5;

interface PgError {
  code: string;
  constraint?: string;
  detail?: string;
}

function pgError(err: unknown): PgError | undefined {
  const e = err as { driverError?: unknown; code?: unknown };
  const inner = (e.driverError ?? err) as { code?: unknown; constraint?: unknown };
  if (typeof inner.code === 'string' && /^[0-9A-Z]{5}$/.test(inner.code)) return inner as PgError;
  return undefined;
}

/** Turns anything thrown into the one error shape; unexpected errors are logged, not shown. */
export function toApiError(err: unknown): { error: ApiError; unexpected: boolean } {
  if (err instanceof ApiError) return { error: err, unexpected: false };
  if (err instanceof InvalidCursorError)
    return {
      error: new ApiError('validation_failed', err.message, [{ path: 'cursor', message: err.message }]),
      unexpected: false,
    };
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const res = err.getResponse();
    const raw = typeof res === 'object' && res !== null ? (res as { message?: unknown }).message : res;
    const messages = Array.isArray(raw) ? raw.map(String) : [typeof raw === 'string' ? raw : err.message];
    const code: ErrorCode =
      status === 400 && /JSON/.test(messages.join(' '))
        ? 'invalid_json'
        : (BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'validation_failed'));
    const details: ErrorDetail[] | undefined = Array.isArray(raw) ? messages.map((m) => ({ message: m })) : undefined;
    return { error: new ApiError(code, messages.join('; ').slice(0, 2000), details), unexpected: status >= 500 };
  }
  // Fastify's own errors (body parser, size limit, media type) carry a statusCode.
  const fst = err as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof fst.statusCode === 'number' && typeof fst.code === 'string' && fst.code.startsWith('FST_')) {
    const status = fst.statusCode;
    const code: ErrorCode =
      fst.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fst.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || status === 400
        ? status === 400
          ? 'invalid_json'
          : (BY_STATUS[status] ?? 'validation_failed')
        : (BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'validation_failed'));
    const message =
      code === 'payload_too_large'
        ? 'request body is larger than the configured limit (API_BODY_LIMIT)'
        : code === 'unsupported_media_type'
          ? 'send the body as application/json'
          : typeof fst.message === 'string'
            ? fst.message
            : 'bad request';
    return { error: new ApiError(code, message), unexpected: status >= 500 };
  }
  const pg = pgError(err);
  if (pg) {
    if (pg.code === '23505')
      return { error: new ApiError('conflict', 'a resource with these values already exists'), unexpected: false };
    if (pg.code === '23514' || pg.code === '22P02' || pg.code === '22003' || pg.code === '23502' || pg.code === '22001')
      return { error: new ApiError('validation_failed', 'a value is out of range or malformed'), unexpected: false };
    if (pg.code === '23503')
      return {
        error: new ApiError('conflict', 'a referenced resource does not exist or is in use'),
        unexpected: false,
      };
  }
  // The database is restarting, failing over or unreachable (ADR 0113): a retryable 503, not
  // an internal error (still logged: an operator wants to see the outage).
  if (isTransientDbError(err))
    return {
      error: new ApiError('unavailable', 'the database is unavailable; retry shortly', undefined, DB_RETRY_AFTER_S),
      unexpected: true,
    };
  return { error: new ApiError('internal', 'internal error'), unexpected: true };
}

export function errorBody(error: ApiError, requestId: string): ErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      requestId,
      ...(error.details && error.details.length > 0 ? { details: error.details } : {}),
    },
  };
}

export function sendError(reply: FastifyReply, requestId: string, error: ApiError): void {
  if (error.retryAfter !== undefined) void reply.header('retry-after', String(error.retryAfter));
  void reply.status(ERROR_STATUS[error.code]).type('application/json').send(errorBody(error, requestId));
}

/** The one global filter: every controller error ends up in the same body shape. */
@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<FastifyRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const { error, unexpected } = toApiError(exception);
    if (unexpected) this.logger.error({ err: exception, route: req.routeOptions.url }, 'unhandled error');
    sendError(reply, req.id, error);
  }
}
