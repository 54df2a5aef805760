import { IdempotencyRepository, type Database } from '@backplane/db';
import type { Logger } from 'pino';

/** How often expired idempotency records are deleted (they expire 24 h after the request). */
export const IDEMPOTENCY_CLEANUP_EVERY_SECONDS = 3600;
const BATCH = 5000;

/**
 * Retention of `idempotency_records` (ADR 0058): records of non-job creates expire 24 hours
 * after the request; this deletes them in batches of 5,000 (a short transaction each).
 * Job and batch records never expire (the job row is the answer).
 */
export class IdempotencyCleanup {
  private readonly repo = new IdempotencyRepository();

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** Deletes every expired record; returns how many. */
  async runOnce(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.db.inPlatform((tx) => this.repo.deleteExpired(tx, BATCH));
      total += n;
      if (n < BATCH) break;
    }
    if (total) this.logger.debug({ deleted: total }, 'expired idempotency records deleted');
    return total;
  }
}
