import type { JobProgressData, TenantEventInput } from '@backplane/contracts';
import { redactSecretText } from './command-policy';
import type { JobState } from './names';
import type { JobRow } from './store';

/**
 * The `job.progress` tenant event of a job (api on enqueue/cancel, worker on every state
 * or step change). `progress` is 0..1 (the row keeps percent).
 */
export function jobProgressEvent(
  job: Pick<JobRow, 'id' | 'siteId' | 'batchId' | 'kind'>,
  state: JobState,
  extra: { step?: string; progressPercent?: number; error?: string | null } = {},
): TenantEventInput {
  const data: JobProgressData = {
    jobId: job.id,
    siteId: job.siteId,
    batchId: job.batchId,
    kind: job.kind,
    state,
    ...(extra.step !== undefined ? { step: extra.step } : {}),
    ...(extra.progressPercent !== undefined ? { progress: Math.max(0, Math.min(1, extra.progressPercent / 100)) } : {}),
    // every member of the tenant receives it: secret values in an error text are redacted
    ...(extra.error ? { error: redactSecretText(extra.error) } : {}),
  };
  return { type: 'job.progress', data };
}
