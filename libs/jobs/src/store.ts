import {
  JobsRepository,
  type JobRef as DbJobRef,
  type JobRow as DbJobRow,
  type NewJob as DbNewJob,
} from '@backplane/db';
import type { JobKind, JobState } from './names';

export { deterministicId, type JobStep, type Requester, type RouterWrite, type StepState } from '@backplane/db';

/** A job as stored, with the kinds and states of this lib. The SQL lives in libs/db (`JobsRepository`). */
export type JobRow = DbJobRow<JobKind, JobState>;
export type NewJob = DbNewJob<JobKind>;
/** What a set-based create or a replay reads back of a job (no payload, no exports). */
export type JobRef = DbJobRef<JobKind, JobState>;

/** The jobs repository, typed with this lib's kinds and states. */
export const jobsRepo = new JobsRepository<JobKind, JobState>();
