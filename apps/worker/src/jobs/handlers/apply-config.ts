import type { DesiredState, RouterWrite } from '@backplane/jobs';
import { SiteUnreachableError } from '../channel';
import { JobCancelledError, LeaseLostError, RetryLaterError, type JobContext } from '../context';
import { enforceJobPolicy } from './actions';

type Row = Record<string, string>;
const list = (v: string | undefined) => (v ?? '').split(',').filter(Boolean);
const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
const bool = (v: string | undefined) => v === 'true' || v === 'yes';
const yesNo = (b: boolean) => (b ? 'yes' : 'no');
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** A change that cannot be applied to this router as asked (found before anything is written). */
export class ChangeRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChangeRejectedError';
  }
}

/**
 * What one desired state needs on this router: the writes, how to undo them (`undo[i]` takes
 * back `writes[i]`), what they mean.
 */
export interface ChangePlan {
  readonly writes: readonly RouterWrite[];
  readonly undo: readonly RouterWrite[];
  readonly summary: readonly string[];
}

const write = (command: string, attributes: Row, find?: RouterWrite['find']): RouterWrite => ({
  command,
  attributes,
  ...(find ? { find } : {}),
});

/**
 * Reads the menu and plans find-then-set: only what differs is written. Throws
 * ChangeRejectedError when the router cannot hold the desired state, and the router's own
 * error when it lacks the menu, so a check of every change before the first write finds both.
 */
export async function planDesired(ctx: JobContext, d: DesiredState, v6: boolean): Promise<ChangePlan> {
  switch (d.menu) {
    case 'dns': {
      const [cur] = await ctx.print('/ip/dns');
      if (sameSet(list(cur?.['servers']), d.servers)) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/ip/dns/set', { servers: d.servers.join(',') })],
        undo: [write('/ip/dns/set', { servers: cur?.['servers'] ?? '' })],
        summary: [`dns servers ${d.servers.join(',')}`],
      };
    }
    case 'identity': {
      const [cur] = await ctx.print('/system/identity');
      if (cur?.['name'] === d.name) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/system/identity/set', { name: d.name })],
        undo: [write('/system/identity/set', { name: cur?.['name'] ?? 'MikroTik' })],
        summary: ['identity'],
      };
    }
    case 'ntp': {
      const [cur] = await ctx.print('/system/ntp/client');
      // RouterOS 6: two address slots (primary-ntp, secondary-ntp) and host names in
      // server-dns-names; RouterOS 7: one `servers` list of addresses and names.
      let want: Row;
      if (v6) {
        const ips = d.servers.filter((s) => IPV4.test(s));
        const names = d.servers.filter((s) => !IPV4.test(s));
        if (ips.length > 2) {
          throw new ChangeRejectedError(
            `ntp: RouterOS 6 holds at most two NTP server addresses (primary-ntp, secondary-ntp), ${ips.length} given`,
          );
        }
        want = {
          enabled: yesNo(d.enabled),
          'primary-ntp': ips[0] ?? '0.0.0.0',
          'secondary-ntp': ips[1] ?? '0.0.0.0',
          'server-dns-names': names.join(','),
        };
      } else {
        want = { enabled: yesNo(d.enabled), servers: d.servers.join(',') };
      }
      const differs =
        bool(cur?.['enabled']) !== d.enabled ||
        (v6
          ? (cur?.['primary-ntp'] ?? '0.0.0.0') !== want['primary-ntp'] ||
            (cur?.['secondary-ntp'] ?? '0.0.0.0') !== want['secondary-ntp'] ||
            !sameSet(list(cur?.['server-dns-names']), list(want['server-dns-names']))
          : !sameSet(list(cur?.['servers']), d.servers));
      if (!differs) return { writes: [], undo: [], summary: [] };
      const before: Row = Object.fromEntries(
        Object.keys(want).map((k) => [k, k === 'enabled' ? yesNo(bool(cur?.[k])) : (cur?.[k] ?? '')]),
      );
      return {
        writes: [write('/system/ntp/client/set', want)],
        undo: [write('/system/ntp/client/set', before)],
        summary: ['ntp client'],
      };
    }
    case 'address-list': {
      const menu = '/ip/firewall/address-list';
      const rows = (await ctx.print(menu)).filter((r) => r['list'] === d.list);
      const have = new Set(rows.map((r) => r['address']));
      const writes: RouterWrite[] = [];
      const undo: RouterWrite[] = [];
      const summary: string[] = [];
      for (const a of d.addresses) {
        if (have.has(a)) continue;
        writes.push(write(`${menu}/add`, { list: d.list, address: a }));
        undo.push(write(`${menu}/remove`, {}, { menu, match: { list: d.list, address: a } }));
        summary.push(`+${d.list} ${a}`);
      }
      if (d.exclusive) {
        const want = new Set(d.addresses);
        for (const r of rows) {
          if (want.has(r['address'] ?? '') || !r['.id'] || bool(r['dynamic'])) continue;
          writes.push(write(`${menu}/remove`, { '.id': r['.id'] }));
          undo.push(
            write(`${menu}/add`, {
              list: d.list,
              address: r['address'] ?? '',
              ...(r['comment'] ? { comment: r['comment'] } : {}),
              ...(bool(r['disabled']) ? { disabled: 'yes' } : {}),
            }),
          );
          summary.push(`-${d.list} ${r['address']}`);
        }
      }
      return { writes, undo, summary };
    }
    case 'user': {
      const cur = (await ctx.print('/user')).find((u) => u['name'] === d.name);
      const find = { menu: '/user', match: { name: d.name } };
      if (!cur) {
        return {
          writes: [
            write('/user/add', {
              name: d.name,
              group: d.group,
              disabled: yesNo(d.disabled),
              ...(d.password ? { password: d.password } : {}),
            }),
          ],
          undo: [write('/user/remove', {}, find)],
          summary: [`user ${d.name} added`],
        };
      }
      const set: Row = {};
      const back: Row = {};
      if (cur['group'] !== d.group) {
        set['group'] = d.group;
        back['group'] = cur['group'] ?? '';
      }
      if (bool(cur['disabled']) !== d.disabled) {
        set['disabled'] = yesNo(d.disabled);
        back['disabled'] = yesNo(bool(cur['disabled']));
      }
      if (Object.keys(set).length === 0 || !cur['.id']) return { writes: [], undo: [], summary: [] };
      return {
        writes: [write('/user/set', { '.id': cur['.id'], ...set })],
        undo: [write('/user/set', back, find)],
        summary: [`user ${d.name} ${Object.keys(set).join(',')}`],
      };
    }
  }
}

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
export async function applyDesired(ctx: JobContext, d: DesiredState, v6: boolean): Promise<ChangePlan> {
  const plan = await planDesired(ctx, d, v6);
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
  const v6 = (await ctx.version()).startsWith('6.');
  const names = changes.map((d, i) => `apply ${i + 1}/${n} ${d.menu}`);
  await ctx.step('check every change', 5, async () => {
    let writes = 0;
    for (const [i, d] of changes.entries()) {
      if (ctx.stepState(names[i]!)?.state === 'done') continue;
      try {
        writes += (await planDesired(ctx, d, v6)).writes.length;
      } catch (err) {
        if (resumable(err)) throw err;
        throw new ChangeRejectedError(
          `change ${i + 1}/${n} (${d.menu}) cannot be applied, nothing was changed: ${message(err)}`,
        );
      }
    }
    return `${n} change(s) checked, ${writes} write(s) needed`;
  });
  const all: string[] = [];
  for (const [i, d] of changes.entries()) {
    let undo: readonly RouterWrite[] = [];
    try {
      const detail = await ctx.step(
        names[i]!,
        10 + Math.floor((80 * (i + 1)) / n),
        async () => {
          const plan = await applyDesired(ctx, d, v6);
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
