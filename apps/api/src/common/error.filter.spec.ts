import { BadRequestException, NotFoundException, PayloadTooLargeException } from '@nestjs/common';
import { InvalidCursorError } from '@backplane/db';
import { describe, expect, it } from 'vitest';
import { ApiError } from './api-error';
import { errorBody, toApiError } from './error.filter';

describe('toApiError: everything thrown becomes one stable code', () => {
  it('keeps ApiErrors as they are', () => {
    const e = new ApiError('conflict', 'taken');
    expect(toApiError(e)).toEqual({ error: e, unexpected: false });
  });

  it('maps database constraint violations to 409/400, never 500, without echoing SQL', () => {
    const unique = toApiError({
      driverError: { code: '23505', constraint: 'tenants_slug_key', detail: 'Key (slug)=(x)' },
    });
    expect(unique.error.code).toBe('conflict');
    expect(unique.error.message).not.toContain('slug');
    expect(toApiError({ code: '23514' }).error.code).toBe('validation_failed');
    expect(toApiError({ code: '22P02' }).error.code).toBe('validation_failed');
    expect(toApiError({ code: '23503' }).error.code).toBe('conflict');
  });

  it('answers a lost or refused database connection with a retryable 503, logged (ADR 0113)', () => {
    for (const err of [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      { driverError: { code: '57P01' } },
      new Error('Connection terminated unexpectedly'),
    ]) {
      const r = toApiError(err);
      expect(r.error.code).toBe('unavailable');
      expect(r.error.status).toBe(503);
      expect(r.error.retryAfter).toBe(5);
      expect(r.unexpected).toBe(true);
    }
  });

  it('maps framework errors by status', () => {
    expect(toApiError(new NotFoundException('Cannot GET /x')).error.code).toBe('not_found');
    expect(toApiError(new PayloadTooLargeException()).error.code).toBe('payload_too_large');
    expect(toApiError(new BadRequestException('Body is not valid JSON')).error.code).toBe('invalid_json');
    expect(toApiError(new InvalidCursorError()).error.code).toBe('validation_failed');
  });

  it('hides unexpected errors behind "internal" and flags them for the log', () => {
    const r = toApiError(new Error('connection string postgres://user:secret@db'));
    expect(r.unexpected).toBe(true);
    expect(r.error.code).toBe('internal');
    expect(r.error.message).toBe('internal error');
  });

  it('renders the one body shape, details only when present', () => {
    expect(errorBody(new ApiError('not_found', 'site not found'), 'req-1')).toEqual({
      error: { code: 'not_found', message: 'site not found', requestId: 'req-1' },
    });
    expect(
      errorBody(new ApiError('validation_failed', 'bad', [{ path: 'body.name', message: 'x' }]), 'r').error.details,
    ).toHaveLength(1);
  });
});
