import { JOB_KINDS, type JobKind } from '@backplane/jobs';
import type { JobContext } from './context';
import { applyConfig } from './handlers/apply-config';
import { backup, reboot, recreateTunnel, restore, runCommand } from './handlers/actions';
import { planJob } from './handlers/plan';
import { routerosUpgrade } from './handlers/upgrade';

export type JobHandler<K extends JobKind> = (ctx: JobContext<K>) => Promise<unknown>;
export type HandlerRegistry = { readonly [K in JobKind]: JobHandler<K> };

/** One handler per job kind (the type makes a missing one a compile error). */
export const HANDLERS: HandlerRegistry = {
  'apply-config': applyConfig,
  'run-command': runCommand,
  backup,
  restore,
  reboot,
  'recreate-tunnel': recreateTunnel,
  'routeros-upgrade': routerosUpgrade,
  plan: planJob,
};

/** Start-up check: every job name has exactly one handler, and no handler lacks a job name. */
export function assertRegistry(handlers: Readonly<Record<string, unknown>>): void {
  const names = Object.keys(handlers);
  const missing = JOB_KINDS.filter((k) => typeof handlers[k] !== 'function');
  const unknown = names.filter((n) => !(JOB_KINDS as readonly string[]).includes(n));
  const dupes = JOB_KINDS.filter((k) => names.filter((n) => n === k).length > 1);
  if (missing.length || unknown.length || dupes.length) {
    throw new Error(
      `job registry mismatch: missing handlers [${missing.join(', ')}], handlers without a job name [${unknown.join(', ')}], duplicates [${dupes.join(', ')}]`,
    );
  }
}
