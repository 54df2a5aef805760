/**
 * Stable error codes. Clients branch on `error.code`; the HTTP status follows from it and
 * the one global filter maps every failure to `{ error: { code, message, requestId, details? } }`.
 */
export const ERROR_STATUS = {
  validation_failed: 400,
  invalid_json: 400,
  unauthorized: 401,
  mfa_required: 403,
  forbidden: 403,
  command_not_allowed: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  idempotency_in_progress: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  no_matching_sites: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  // Safe changes (docs/adr/0088-plans.md, 0089-approvals.md)
  plan_expired: 409,
  plan_not_ready: 409,
  plan_stale: 409,
  approval_required: 409,
  approval_expired: 409,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetail {
  readonly path?: string;
  readonly message: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: readonly ErrorDetail[],
    /** Seconds, for 429. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  static notFound(what = 'resource'): ApiError {
    return new ApiError('not_found', `${what} not found`);
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string; details?: readonly ErrorDetail[] };
}
