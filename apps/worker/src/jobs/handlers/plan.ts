import { PlansRepository } from '@backplane/db';
import { jobsRepo, READ_VERBS, type RouterWrite } from '@backplane/jobs';
import { z } from 'zod';
import { RouterCommandError } from '../channel';
import type { JobContext } from '../context';
import { NamedError } from '../named-error';
import { enforceJobPolicy } from './actions';
import { previewOtherKind } from './plan-kinds';
import {
  ChangeRejectedError,
  planCommand,
  planDesired,
  propertyChanges,
  RecordingReader,
  renderWrite,
  writesDigest,
  type ChangePlan,
  type PropertyChange,
} from './config-diff';

/**
 * Plans (previews, docs/adr/0088-plans.md): a `plan` job reads the router and records what
 * an apply-config with the same changes would write — structured (menu, item, property,
 * before → after) and as RouterOS commands — plus a fingerprint of what it read. It writes
 * no configuration. On RouterOS 7.16+ it also asks the router for `/import dry-run` of the
 * generated script (skipped when the router answers that it does not know it).
 */

/** The result a plan job stores (and the apply of the plan checks against). */
export const PlanResult = z.object({
  version: z.string(),
  fingerprint: z.string(),
  menus: z.record(z.string(), z.string()),
  writesDigest: z.string(),
  changes: z.array(
    z.object({
      menu: z.string(),
      item: z.string(),
      property: z.string(),
      before: z.string().nullable(),
      after: z.string().nullable(),
    }),
  ),
  commands: z.array(z.string()),
  perChange: z.array(z.object({ menu: z.string(), writes: z.number(), summary: z.array(z.string()) })),
  dryRun: z.object({
    status: z.enum(['ok', 'errors', 'unsupported', 'skipped']),
    detail: z.string(),
  }),
  /** Why a run-command preview is partial or empty; the one-line summary of the other kinds. */
  note: z.string().nullable().optional(),
  /** Restore, upgrade: what the apply checks besides the fingerprint (ADR 0107). */
  bind: z.record(z.string(), z.string()).optional(),
});
export type PlanResult = z.infer<typeof PlanResult>;

/** An apply of a plan found the router changed since the plan read it: nothing is written. */
export class PlanStaleError extends NamedError {}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** `7.16.2` → [7, 16, 2]; whether it is at least 7.16 (the first with `/import dry-run`). */
export function hasImportDryRun(version: string): boolean {
  const [maj = 0, min = 0] = version.split('.').map((n) => Number.parseInt(n, 10) || 0);
  return maj > 7 || (maj === 7 && min >= 16);
}

/** Computes the change plans of every change from one consistent read. */
export async function planAll(
  reader: RecordingReader,
  changes: readonly Parameters<typeof planDesired>[1][],
  v6: boolean,
): Promise<ChangePlan[]> {
  const out: ChangePlan[] = [];
  for (const [i, d] of changes.entries()) {
    try {
      out.push(await planDesired(reader, d, v6));
    } catch (err) {
      if (err instanceof ChangeRejectedError || err instanceof RouterCommandError) {
        throw new ChangeRejectedError(
          `change ${i + 1}/${changes.length} (${d.menu}) cannot be applied: ${message(err)}`,
        );
      }
      throw err;
    }
  }
  return out;
}

/** The digest that names what apply would write (secrets left out). */
export const digestOf = (plans: readonly ChangePlan[]): string => writesDigest(plans.flatMap((p) => p.writes));

/** `/import dry-run` of the generated script where the router has it (7.16+). */
async function dryRun(
  ctx: JobContext<'plan'>,
  version: string,
  writes: readonly RouterWrite[],
  read: RecordingReader,
): Promise<PlanResult['dryRun']> {
  if (!ctx.payload.importDryRun) return { status: 'skipped', detail: 'not asked for (importDryRun)' };
  if (writes.length === 0) return { status: 'skipped', detail: 'nothing to write' };
  if (!hasImportDryRun(version)) return { status: 'skipped', detail: `RouterOS ${version} has no /import dry-run` };
  const file = `bp-plan-${ctx.job.id.slice(0, 8)}.rsc`;
  const script = writes.map((w) => renderWrite(w, false)).join('\n');
  try {
    await ctx.call('/file/add', { name: file, contents: script });
  } catch (err) {
    if (!(err instanceof RouterCommandError)) throw err;
    return { status: 'unsupported', detail: `could not stage the script: ${message(err)}` };
  }
  try {
    const res = await ctx.call('/import', { 'file-name': file, 'dry-run': '' });
    // A router that ignored `dry-run` ran the script: say so loudly (the plan is void).
    const again = new RecordingReader(ctx);
    for (const m of read.menus()) await again.print(m);
    if (again.fingerprint() !== read.fingerprint()) {
      throw new Error(
        'the router ran the script instead of a dry run (its configuration changed): this router does not honour /import dry-run; plan without importDryRun',
      );
    }
    return { status: 'ok', detail: res.ret ?? 'accepted' };
  } catch (err) {
    if (!(err instanceof RouterCommandError)) throw err;
    const m = message(err);
    if (/dry-run|unknown parameter|no such command|bad command/i.test(m)) {
      return { status: 'unsupported', detail: `the router does not answer /import dry-run: ${m}` };
    }
    return { status: 'errors', detail: m };
  } finally {
    await ctx.call('/file/remove', { numbers: file }).catch(() => undefined);
  }
}

/** The `plan` job: read, compute, record; nothing of the configuration is written. */
export async function planJob(ctx: JobContext<'plan'>) {
  enforceJobPolicy(ctx);
  const version = await ctx.version();
  const v6 = version.startsWith('6.');
  const out = await ctx.step('read and compare', 80, async () => {
    const other = await previewOtherKind(ctx, version);
    if (other) return JSON.stringify(other);
    const reader = new RecordingReader(ctx);
    const { command, attributes } = ctx.payload;
    if (command !== undefined) {
      const p = await planCommand(reader, command, attributes ?? {}, READ_VERBS);
      const result: PlanResult = {
        version,
        fingerprint: reader.fingerprint(),
        menus: reader.perMenu(),
        writesDigest: writesDigest(p.writes),
        changes: [...p.changes],
        commands: p.writes.map((w) => renderWrite(w, true)),
        perChange: [{ menu: command, writes: p.writes.length, summary: [] }],
        dryRun: { status: 'skipped', detail: 'run-command plans are not dry-run' },
        note: p.note,
      };
      return JSON.stringify(result);
    }
    const desired = ctx.payload.changes ?? [];
    const plans = await planAll(reader, desired, v6);
    const writes = plans.flatMap((p) => p.writes);
    const changes: PropertyChange[] = plans.flatMap((p) => propertyChanges(p));
    const result: PlanResult = {
      version,
      fingerprint: reader.fingerprint(),
      menus: reader.perMenu(),
      writesDigest: digestOf(plans),
      changes,
      commands: writes.map((w) => renderWrite(w, true)),
      perChange: plans.map((p, i) => ({
        menu: desired[i]!.menu,
        writes: p.writes.length,
        summary: [...p.summary],
      })),
      dryRun: await dryRun(ctx, version, writes, reader),
    };
    return JSON.stringify(result);
  });
  return PlanResult.parse(JSON.parse(out ?? '{}'));
}

/**
 * An apply-config job made from a plan applies only when the router holds what the plan
 * read (the same fingerprint) and would get the same writes; otherwise it fails before its
 * first write with `plan_stale`. Jobs not made from a plan pass.
 */
export async function checkPlanBinding(
  ctx: JobContext,
  reader: RecordingReader,
  plans: readonly ChangePlan[] | { readonly digest: string },
): Promise<void> {
  const bound = await planOf(ctx);
  if (bound) compareWithPlan(bound, reader, 'digest' in plans ? plans.digest : digestOf(plans));
}

export type Binding = { planId: string; result: ReturnType<typeof PlanResult.safeParse> };

/** The plan this job applies (its preview of this site), if it was made from one. */
export async function planOf(ctx: JobContext): Promise<Binding | undefined> {
  return ctx.services.db.inTenant(ctx.scope, async (tx) => {
    const b = await new PlansRepository().bindingOf(tx, ctx.job.id);
    if (!b) return undefined;
    const planJob = await jobsRepo.get(tx, b.planJobId);
    return { planId: b.planId, result: PlanResult.safeParse(planJob?.result) };
  });
}

function compareWithPlan(bound: Binding, reader: RecordingReader, digest: string): void {
  if (!bound.result.success) {
    throw new PlanStaleError(`plan_stale: plan ${bound.planId} has no usable preview for this site`);
  }
  const planned = bound.result.data;
  if (planned.fingerprint === reader.fingerprint() && planned.writesDigest === digest) return;
  const now = reader.perMenu();
  const changed = Object.keys({ ...planned.menus, ...now }).filter((m) => planned.menus[m] !== now[m]);
  throw new PlanStaleError(
    `plan_stale: the router changed since plan ${bound.planId} read it (${changed.length ? changed.join(', ') : 'the writes differ'}); nothing was written, make a new plan`,
  );
}

/**
 * A run-command made from a plan: before it is sent (first attempt only), the menu it writes
 * must read as the plan read it, or the job fails with `plan_stale` and nothing is sent.
 */
export async function checkCommandPlanBinding(ctx: JobContext<'run-command'>): Promise<void> {
  const bound = await planOf(ctx);
  if (!bound) return;
  const reader = new RecordingReader(ctx);
  let digest: string;
  try {
    digest = writesDigest((await planCommand(reader, ctx.payload.command, ctx.payload.attributes, READ_VERBS)).writes);
  } catch (err) {
    if (!(err instanceof ChangeRejectedError || err instanceof RouterCommandError)) throw err;
    digest = `unplannable: ${message(err)}`;
  }
  compareWithPlan(bound, reader, digest);
}
