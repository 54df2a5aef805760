import { Database, isTransientDbError, type PlatformTx, type TenantScope, type TenantTx } from '@backplane/db';
import type { Logger } from 'pino';

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
