import type { DesiredState, RouterWrite } from '@backplane/jobs';
import { SiteUnreachableError } from '../channel';
import { JobCancelledError, LeaseLostError, RetryLaterError, type JobContext } from '../context';
import { enforceJobPolicy } from './actions';
import { ChangeRejectedError, planDesired, RecordingReader, type ChangePlan, type RouterReader } from './config-diff';
import { checkPlanBinding } from './plan';

// The diff moved to config-diff.ts (shared with plan.ts); these names stay importable from here.
export { ChangeRejectedError, planDesired, type ChangePlan } from './config-diff';

/** Runs router writes in order; a write with `find` resolves its `.id` first (gone: skipped). */
export async function runWrites(ctx: JobContext, writes: readonly RouterWrite[]): Promise<void> {
  for (const w of writes) {
    let attributes = w.attributes;
    if (w.find) {
      const { match } = w.find;
      const hit = (await ctx.print(w.find.menu)).find((r) => Object.entries(match).every(([k, v]) => r[k] === v));
      if (!hit?.['.id']) continue;
      attributes = { '.id': hit['.id'], ...attributes };
    }
    await ctx.call(w.command, attributes);
  }
}

/**
 * Errors after which the job runs again later (nothing to take back: it resumes), or after
 * which this run must not touch the router at all (it lost its lease: another run owns the job).
 */
function resumable(err: unknown): boolean {
  return (
    err instanceof RetryLaterError ||
    err instanceof SiteUnreachableError ||
    err instanceof JobCancelledError ||
    err instanceof LeaseLostError
  );
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Find-then-set of one desired state: plans, writes, and when a write is refused takes back
 * the writes of this plan already made before rethrowing. Returns the plan that was applied.
 */
export async function applyDesired(
  ctx: JobContext,
  d: DesiredState,
  v6: boolean,
  /** Where the plan reads (default: the router now); the writes always go to `ctx`. */
  reader: RouterReader = ctx,
): Promise<ChangePlan> {
  const plan = await planDesired(reader, d, v6);
  let made = 0;
  try {
    for (const w of plan.writes) {
      await runWrites(ctx, [w]);
      made++;
    }
  } catch (err) {
    if (resumable(err) || made === 0) throw err;
    try {
      await runWrites(ctx, plan.undo.slice(0, made).reverse());
    } catch (undoErr) {
      if (resumable(undoErr)) throw undoErr;
      throw new Error(`${message(err)}; taking back its first ${made} write(s) failed too: ${message(undoErr)}`, {
        cause: undoErr,
      });
    }
    throw err;
  }
  return plan;
}

/**
 * All or nothing. First every change is planned against the router as it is (each menu
 * read, nothing written): a router without a menu, or a value it cannot hold, fails the job
 * before the first write. Then each change is one step, re-planned right before its write
 * and recorded with its undo. When a write is refused, the changes already applied (in this
 * or an earlier attempt) are taken back in reverse order before the job fails.
 */
export async function applyConfig(ctx: JobContext<'apply-config'>) {
  enforceJobPolicy(ctx);
  const changes = ctx.payload.changes;
  const n = changes.length;
  const v6 = (await ctx.routerVersion()).startsWith('6.');
  const names = changes.map((d, i) => `apply ${i + 1}/${n} ${d.menu}`);
  /** The check step's readings while they are current (see below). */
  let checked: RecordingReader | undefined;
  await ctx.step(
    'check every change',
    5,
    async () => {
      let writes = 0;
      // Reads each menu once; an apply of a plan compares what it read with what the plan read.
      const reader = new RecordingReader(ctx);
      checked = reader;
      const plans: ChangePlan[] = [];
      for (const [i, d] of changes.entries()) {
        if (ctx.stepState(names[i]!)?.state === 'done') continue;
        try {
          const p = await planDesired(reader, d, v6);
          plans.push(p);
          writes += p.writes.length;
        } catch (err) {
          if (resumable(err)) throw err;
          throw new ChangeRejectedError(
            `change ${i + 1}/${n} (${d.menu}) cannot be applied, nothing was changed: ${message(err)}`,
          );
        }
      }
      await checkPlanBinding(ctx, reader, plans);
      return `${n} change(s) checked, ${writes} write(s) needed`;
    },
    { idempotent: true, readOnly: true },
  );
  const all: string[] = [];
  for (const [i, d] of changes.entries()) {
    // Until this attempt's first write, the check's readings (a moment old, nothing written
    // since) are what a read now would return: the first change is planned from them (one
    // router read fewer per job, issue 19). After a write, every change reads anew.
    const reader: RouterReader = checked ?? ctx;
    let undo: readonly RouterWrite[] = [];
    try {
      const detail = await ctx.step(
        names[i]!,
        10 + Math.floor((80 * (i + 1)) / n),
        async () => {
          const plan = await applyDesired(ctx, d, v6, reader);
          if (plan.writes.length > 0) checked = undefined;
          undo = [...plan.undo].reverse();
          // Read back: the router now holds the desired state (nothing left to write).
          const left = (await planDesired(ctx, d, v6)).summary;
          if (left.length > 0) {
            throw new Error(`read back after writing, the router still differs: ${left.join('; ')}`);
          }
          return plan.summary.length ? plan.summary.join('; ') : 'already as desired';
        },
        { idempotent: true, undo: () => undo },
      );
      if (detail && detail !== 'already as desired') all.push(detail);
    } catch (err) {
      if (resumable(err)) throw err;
      throw await rollBack(ctx, names.slice(0, i), `change ${i + 1}/${n} (${d.menu}) failed`, err);
    }
  }
  return { changed: all };
}

/** Takes back the done steps among `names` (newest first); returns the error the job ends with. */
async function rollBack(ctx: JobContext, names: readonly string[], what: string, cause: unknown): Promise<Error> {
  const reason = `${what}: ${message(cause)}`;
  const done = names.filter((s) => (ctx.stepState(s)?.undo?.length ?? 0) > 0);
  if (done.length === 0) return new Error(`${reason}; nothing had been changed`);
  try {
    await ctx.step('roll back', 95, async () => {
      for (const s of [...done].reverse()) await runWrites(ctx, ctx.stepState(s)!.undo!);
      return `took back: ${done.join(', ')}`;
    });
  } catch (err) {
    if (resumable(err)) throw err;
    return new Error(`${reason}; ROLLBACK FAILED (${message(err)}): the router may keep ${done.join(', ')}`);
  }
  return new Error(`${reason}; rolled back ${done.length} applied change(s): ${done.join(', ')}`);
}
