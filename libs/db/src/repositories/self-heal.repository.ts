import { query } from '../sql';
import type { PlatformTx } from '../tenancy';

/** A site whose flapping mark just changed. */
export interface FlappingChangeRow {
  tenant_id: string;
  site_id: string;
  flapping: boolean;
  disconnects: number;
}

/** A site that polls but has had no tunnel for long enough to be repaired. */
export interface SelfHealCandidateRow {
  tenant_id: string;
  site_id: string;
  down_since: Date;
}

export interface SelfHealLimits {
  /** Seconds without a tunnel (while polling) before a repair. */
  readonly downAfterSeconds: number;
  /** Per site: no repair within this many seconds of the last recreate-tunnel job. */
  readonly cooldownSeconds: number;
  /** Global: at most this many self-heal jobs per minute. */
  readonly perMinute: number;
}

/** Platform-wide reads for the self-heal schedule (SECURITY DEFINER functions, migration SelfHeal). */
export class SelfHealRepository {
  /** Marks sites with at least `n` disconnects in `windowSeconds` as flapping, clears calmed ones; the changes. */
  async updateFlapping(tx: PlatformTx, n: number, windowSeconds: number): Promise<FlappingChangeRow[]> {
    return query<FlappingChangeRow>(tx, `SELECT * FROM bp_flapping_update($1, $2)`, [n, windowSeconds]);
  }

  /** Sites to repair now, oldest outage first, within the per-site and global limits. */
  async candidates(tx: PlatformTx, l: SelfHealLimits): Promise<SelfHealCandidateRow[]> {
    return query<SelfHealCandidateRow>(tx, `SELECT * FROM bp_self_heal_candidates($1, $2, $3)`, [
      l.downAfterSeconds,
      l.cooldownSeconds,
      l.perMinute,
    ]);
  }
}
