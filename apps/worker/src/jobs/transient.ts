import { Database, type PlatformTx, type TenantScope, type TenantTx } from '@backplane/db';
import type { Logger } from 'pino';

/**
 * PostgreSQL errors after which the same transaction, run again, may succeed: the
 * connection was lost or refused (08*), the server shut the session down or is starting
 * (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now), or the
 * transaction lost a serialization race (40001, 40P01 deadlock). Node socket errors count
 * the same (ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT), and so does node-postgres' own
 * "Connection terminated" when the server closed the socket mid-query.
 */
export function isTransientDbError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
    if (/^08/.test(code) || ['57P01', '57P02', '57P03', '40001', '40P01'].includes(code)) return true;
    if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code)) return true;
    const message = e instanceof Error ? e.message : '';
    // "Query runner already released": TypeORM releases a query runner whose connection
    // emitted an error (terminated mid-transaction); the transaction is gone with it.
    if (
      /Connection terminated|terminating connection|connection is not open|Client has encountered a connection error|Query runner already released/i.test(
        message,
      )
    )
      return true;
    // TypeORM wraps the driver error (QueryFailedError.driverError).
    e =
      typeof e === 'object' && e !== null && 'driverError' in e
        ? e.driverError
        : e instanceof Error
          ? e.cause
          : undefined;
  }
  return false;
}

export interface RetryPolicy {
  /** How long transient failures are retried in all (ms, default 75 s: a failover of up to 60 s fails nothing). */
  readonly budgetMs?: number;
  /** First pause (ms, default 100), doubled up to `maxDelayMs` (default 3 s). */
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** Runs `fn` again with backoff while it fails with a transient database error, within the budget. */
export async function retryTransient<T>(
  what: string,
  fn: () => Promise<T>,
  logger: Logger | undefined,
  policy: RetryPolicy = {},
): Promise<T> {
  const end = Date.now() + (policy.budgetMs ?? 75_000);
  let delay = policy.firstDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || Date.now() + delay > end) throw err;
      logger?.warn({ what, attempt, delayMs: delay, err: String(err) }, 'transient database error: retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, policy.maxDelayMs ?? 3000);
    }
  }
}

/**
 * The worker's database: every transaction is retried as a whole on a transient error (a
 * transaction that failed that way was rolled back, or its commit was lost with the reply:
 * the writes the worker makes are safe to repeat — a step record written twice is kept once,
 * a finish or a backup store made twice is made once).
 */
export class RetryingDatabase extends Database {
  constructor(
    db: Database,
    private readonly logger: Logger | undefined,
    private readonly policy: RetryPolicy = {},
  ) {
    super(db.dataSource);
  }

  override inTenant<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return retryTransient('tenant transaction', () => super.inTenant(scope, fn), this.logger, this.policy);
  }

  override inTenantOneTrip<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return retryTransient('tenant transaction', () => super.inTenantOneTrip(scope, fn), this.logger, this.policy);
  }

  override inPlatform<T>(fn: (tx: PlatformTx) => Promise<T>): Promise<T> {
    return retryTransient('platform transaction', () => super.inPlatform(fn), this.logger, this.policy);
  }
}
