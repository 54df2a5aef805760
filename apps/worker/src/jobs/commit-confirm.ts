/**
 * Commit-confirm and lockout prediction around every change (issue 18,
 * docs/adr/0085-commit-confirm.md). The runner calls three hooks around a change's handler:
 *
 * - `begin()`: the lockout check (refuse, unless an admin accepted the risk), then arming:
 *   the configuration as it is now goes to a revert file on the router (the restore script of
 *   ADR 0040: Backplane's management objects kept), and only then a scheduler entry that, when
 *   the confirm window runs out, removes itself and resets the router into that file. On a
 *   later attempt (the router stopped answering): whether the router reverted meanwhile.
 * - `confirm()`: after the handler, a NEW connection to the router (not the pooled one) and
 *   the tunnel up; then the scheduler and the file are removed (disarmed).
 * - `abandon(err)`: the handler failed while the router answers (apply-config has rolled back
 *   what it applied, ADR 0041): disarm. A router that stopped answering stays armed: it reverts.
 *
 * A revert is recognised by its trace: the scheduler entry and the revert file are both gone
 * (the file removes itself last) without this job having disarmed. The job then ends
 * `reverted`, with the reason and whether the router's export equals the one from before.
 */
import { BackupsRepository, ROLLBACK_STEPS, SiteCredentialsRepository, TenantsRepository } from '@backplane/db';
import {
  CONFIRM_WINDOW,
  exportBlocks,
  exportDifferences,
  jobsRepo,
  predictLockouts,
  touchesManagement,
  READ_VERBS,
  restoreScript,
  type JobKind,
  type JobPayload,
  type ManagementPath,
  type ProposedChange,
} from '@backplane/jobs';
import {
  commandWords,
  confirmNames,
  confirmSchedulerAttributes,
  confirmSchedulerScript,
  elevatedCredentials,
  GATEWAY_TUNNEL_ADDRESS,
  revertDoneMessage,
  revertHead,
  revertTail,
  type ConfirmNames,
} from '@backplane/routeros';
import { z } from 'zod';
import { RouterCommandError, SiteUnreachableError } from './channel';
import { LeaseLostError, OutcomeUnknownError, RetryLaterError, type JobContext } from './context';
import {
  CA_FILE,
  keptManagement,
  managementCaPem,
  requesterRole,
  uptimeSeconds,
  scriptParts,
  ScriptTooLargeError,
  writeFile,
  writeScriptParts,
} from './handlers/actions';
import { NamedError } from './named-error';

/** The change would obviously cut Backplane's way into the router: refused before anything is written. */
export class LockoutPredictedError extends NamedError {}

/** Two readings of one boot time differ by under this (uptime has 1 s steps). */
const BOOT_SLACK_MS = 1500;

export const STEP_LOCKOUT = 'lockout check';
export const STEP_ARM = ROLLBACK_STEPS.arm;
export const STEP_CONFIRM = 'confirm reachable';
export const STEP_DISARM = ROLLBACK_STEPS.disarm;
/** First seen: the scheduler gone, the revert file still there, the router answering. */
export const STEP_REVERT_PENDING = 'revert pending';

/** The rollback was taken off the router (or never finished) and the job ends without it. */
export const STEP_ROLLBACK_LOST = ROLLBACK_STEPS.lost;

/** The commit-confirm steps (around the handler's own). */
const OWN_STEPS = new Set([STEP_LOCKOUT, STEP_ARM, STEP_CONFIRM, STEP_DISARM, STEP_REVERT_PENDING, STEP_ROLLBACK_LOST]);

const LostDecision = z.object({ outcome: z.enum(['failed', 'unknown']), message: z.string() });
type LostDecision = z.infer<typeof LostDecision>;

function lostError(d: LostDecision): Error {
  return d.outcome === 'unknown' ? new OutcomeUnknownError(d.message) : new Error(d.message);
}

/**
 * The scheduler entry cannot have fired while more than this of the window is left, counted
 * from when the router's clock was asked for (the entry starts at that clock reading, in whole
 * seconds, so it fires at the earliest a window after the request went out, less 1 s).
 */
const FIRE_SLACK_MS = 5000;

const ArmRecord = z.object({
  scheduler: z.string(),
  file: z.string(),
  windowSeconds: z.number().int(),
  armedAt: z.string(),
  /** When the router's clock (the entry's start time) was asked for: it fires a window after, or later. */
  clockReadAt: z.string().optional(),
});
type ArmRecord = z.infer<typeof ArmRecord>;

/** How a job ends when the router took the change back by itself. */
export interface Reverted {
  readonly reason: string;
  readonly result: {
    readonly reverted: true;
    readonly windowSeconds: number;
    readonly exportEqualsBefore: boolean | null;
    readonly differences: readonly string[];
  };
  /** The export after the revert (the job's after-record). */
  readonly after?: string;
}

type Row = Record<string, string>;
const verbOf = (command: string) => command.slice(command.lastIndexOf('/') + 1);
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** How the router's configuration compares with the one from before the change ('' unknown). */
function verdictOf(equal: boolean | null, differences: readonly string[]): string {
  if (equal === null) return '';
  return equal
    ? '; its configuration equals the one from before the change'
    : `; its configuration still differs from before the change in ${differences.length} line(s)`;
}

/** Commands that reboot rather than change configuration (like the reboot and upgrade kinds). */
const NOT_CONFIGURATION = new Set([
  '/system/reboot',
  '/system/shutdown',
  '/system/package/update/install',
  '/system/routerboard/upgrade',
]);

/** Whether a job changes the configuration (commit-confirm applies): not reboot/upgrade, not a read. */
export function isMutating(kind: JobKind, payload: unknown): boolean {
  if (kind === 'apply-config' || kind === 'restore') return true;
  if (kind !== 'run-command') return false;
  const { command } = payload as JobPayload<'run-command'>;
  return !READ_VERBS.includes(verbOf(command)) && !NOT_CONFIGURATION.has(command);
}

/**
 * Whether a job must not touch a router on which another job's rollback is armed (ADR 0100):
 * every kind that writes to the router — a change (its revert would undo this job's, or this
 * job's own arming would stack on it), reboot, upgrade, recreate-tunnel (a new tunnel secret
 * that the revert would take back). Not the reads: a plan, a backup, a read-only run-command.
 */
export function waitsForArmedRollback(kind: JobKind, payload: unknown): boolean {
  if (kind === 'plan' || kind === 'backup') return false;
  if (kind !== 'run-command') return true;
  return !READ_VERBS.includes(verbOf((payload as JobPayload<'run-command'>).command));
}

/** The script that re-arms the revert first thing after a reset (restore), or '' when not armed. */
export function rearmAfterReset(ctx: JobContext): string {
  const arm = armRecord(ctx);
  return arm ? confirmSchedulerScript(arm, arm.windowSeconds) : '';
}

function armRecord(ctx: JobContext): ArmRecord | undefined {
  const s = ctx.stepState(STEP_ARM);
  if (s?.state !== 'done' || !s.detail) return undefined;
  return ArmRecord.parse(JSON.parse(s.detail));
}

/** `key=value` words of an export command (values unquoted). */
function exportAttributes(command: string): Row {
  const out: Row = {};
  for (const w of commandWords(command).slice(1)) {
    const i = w.indexOf('=');
    if (i <= 0) continue;
    const v = w.slice(i + 1);
    out[w.slice(0, i)] = v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
  }
  return out;
}

export class CommitConfirm {
  readonly names: ConfirmNames;

  private constructor(
    private readonly ctx: JobContext,
    /** The job's before/after record (the same scope as the runner's export before). */
    private readonly record?: () => Promise<string>,
  ) {
    this.names = confirmNames(ctx.job.id);
  }

  /** The commit-confirm of this job, or undefined when the job does not change the router. */
  static of(ctx: JobContext, record?: () => Promise<string>): CommitConfirm | undefined {
    return isMutating(ctx.job.kind, ctx.payload) ? new CommitConfirm(ctx, record) : undefined;
  }

  private get payload(): { confirmSeconds?: number; allowLockoutRisk?: boolean } {
    return this.ctx.payload as { confirmSeconds?: number; allowLockoutRisk?: boolean };
  }

  private done(step: string): boolean {
    return this.ctx.stepState(step)?.state === 'done';
  }

  /** Lockout check and arming; on a later attempt, whether the router reverted meanwhile. */
  async begin(): Promise<Reverted | undefined> {
    const { ctx } = this;
    const lost = ctx.stepState(STEP_ROLLBACK_LOST);
    if (lost?.state === 'done') throw lostError(LostDecision.parse(JSON.parse(lost.detail ?? '{}')));
    if (this.done(STEP_DISARM)) return undefined;
    if (this.done(STEP_ARM)) return this.checkReverted();
    await ctx.step(STEP_LOCKOUT, 2, () => this.lockoutCheck(), { idempotent: true, readOnly: true });
    // No arm record from an earlier attempt: nothing named after this job is on the router yet.
    const first = ctx.stepState(STEP_ARM) === undefined;
    // Its `done` travels with the next write (ADR 0117): lost, the next attempt arms again,
    // removing what this one left (its `started` record is what makes the job hold the site).
    await ctx.step(STEP_ARM, 3, () => this.arm(first), { idempotent: true, deferDone: true });
    return undefined;
  }

  /** After the handler: reachable over a new connection and the tunnel up, then disarm. */
  async confirm(): Promise<void> {
    const { ctx } = this;
    const arm = armRecord(ctx);
    if (!arm) return;
    await ctx.step(
      STEP_CONFIRM,
      98,
      async () => {
        await this.reachable();
        return `reached over a new connection${ctx.services.channel.tunnels ? ', tunnel up' : ''}`;
      },
      // Its `started` record says the handler finished (see revertPending); its `done` goes with the disarm's start.
      { idempotent: true, deferDone: true },
    );
    await ctx.step(
      STEP_DISARM,
      99,
      async () => {
        const phase = await this.disarm();
        if (phase !== 'disarmed') {
          // The window ran out between the probe and now (the probe may even have passed only
          // because the revert undid the change): the next attempt finds the revert's trace.
          const why =
            phase === 'reverted'
              ? 'the router reverted before it could be disarmed'
              : 'the confirm window ran out before disarming: the router is reverting';
          await ctx.failed(STEP_DISARM, why);
          throw new SiteUnreachableError('reverting', why);
        }
        return `disarmed: removed ${arm.scheduler} and ${arm.file}`;
      },
      // Its `done` goes with the job's end (ADR 0117); lost, the next attempt disarms again (finds it clear).
      { idempotent: true, deferDone: true },
    );
  }

  /** The handler failed: disarm while the router answers; keep armed when it does not. */
  async abandon(err: unknown): Promise<string | undefined> {
    if (!armRecord(this.ctx) || this.done(STEP_DISARM)) return undefined;
    if (err instanceof SiteUnreachableError || err instanceof RetryLaterError || err instanceof LeaseLostError) {
      return undefined;
    }
    try {
      const phase = await this.disarm();
      return phase === 'disarmed' ? undefined : `the router ${phase} by itself (the confirm window ran out)`;
    } catch (e) {
      if (e instanceof LeaseLostError) throw e;
      this.ctx.log.warn({ jobId: this.ctx.job.id, err: message(e) }, 'disarming after a failure failed');
      return `the rollback stays armed on the router (disarming failed: ${message(e)}): it reverts when the window runs out`;
    }
  }

  /**
   * Where the router is, read from it: `armed` (entry enabled), `disarming` (entry disabled by
   * this job: it can no longer run), `reverting` (entry gone, revert file still there: the
   * reset is under way), `reverted` (the revert logged that it is done, after its reboot),
   * `clear` (nothing left: this job disarmed).
   */
  private async phase(): Promise<{ phase: 'armed' | 'disarming' | 'reverting' | 'reverted' | 'clear'; id?: string }> {
    const { ctx, names } = this;
    const entry = (await ctx.callElevated('/system/scheduler/print')).rows.find((r) => r['name'] === names.scheduler);
    if (entry?.['.id']) {
      const off = entry['disabled'] === 'true' || entry['disabled'] === 'yes';
      return { phase: off ? 'disarming' : 'armed', id: entry['.id'] };
    }
    const marker = revertDoneMessage(names);
    if ((await ctx.print('/log')).some((r) => (r['message'] ?? '').includes(marker))) return { phase: 'reverted' };
    if ((await ctx.print('/file')).some((f) => f['name'] === names.file)) return { phase: 'reverting' };
    // Logs in memory may not outlive the revert's reboot: a reboot this job did not cause says it too.
    if (await this.rebootedSinceArmed()) return { phase: 'reverted' };
    return { phase: 'clear' };
  }

  /** Whether the router booted after arming (for a restore: after the reboot of its own reset). */
  private async rebootedSinceArmed(): Promise<boolean> {
    const { ctx } = this;
    const arm = armRecord(ctx);
    if (!arm) return false;
    let since = Date.parse(arm.armedAt);
    if (ctx.job.kind === 'restore') {
      const back = ctx.stepState('back online');
      // before its own reboot was seen, a restore never disarms: an empty router reverted
      if (back?.state !== 'done') return true;
      since = Date.parse(back.at);
    }
    const bootedAt = Date.now() - (await uptimeSeconds(ctx)) * 1000;
    return bootedAt > since + BOOT_SLACK_MS;
  }

  /**
   * Disarms in an order that a crash or the firing scheduler cannot confuse: disable the entry
   * (from then on the revert cannot start), read again (it may have fired meanwhile), remove
   * the file, then the entry.
   */
  private async disarm(): Promise<'disarmed' | 'reverting' | 'reverted'> {
    const { ctx } = this;
    let p = await this.phase();
    if (p.phase === 'armed') {
      try {
        await ctx.callElevated('/system/scheduler/set', { '.id': p.id!, disabled: 'yes' });
      } catch (err) {
        // gone meanwhile (it fired): read below
        if (!(err instanceof RouterCommandError)) throw err;
      }
      p = await this.phase();
    }
    if (p.phase === 'reverting' || p.phase === 'reverted') return p.phase;
    if (p.phase === 'armed') throw new RetryLaterError('the confirm scheduler could not be disabled', 1000);
    await this.removeFile();
    if (p.phase === 'disarming') await ctx.callElevated('/system/scheduler/remove', { '.id': p.id! });
    return 'disarmed';
  }

  /** The confirm window: the job's, else the tenant's, else 120 s. */
  private async window(): Promise<number> {
    if (this.payload.confirmSeconds !== undefined) return this.payload.confirmSeconds;
    // read with the job's start (one round trip fewer, issue 19)
    const known = this.ctx.known.tenantConfirmSeconds;
    if (known !== undefined) return known ?? CONFIRM_WINDOW.default;
    const { db } = this.ctx.services;
    const tenant = await db.inTenant(this.ctx.scope, (tx) => new TenantsRepository().commitConfirmSeconds(tx));
    return tenant ?? CONFIRM_WINDOW.default;
  }

  /** How Backplane reaches this router, read from it. */
  private async managementPath(): Promise<ManagementPath> {
    const { ctx } = this;
    const siteId = ctx.siteId;
    const ids: Row = {};
    const note = (rows: readonly Row[], keep: (r: Row) => boolean, as: (r: Row) => string) => {
      for (const r of rows) if (r['.id'] && keep(r)) ids[r['.id']] = as(r);
    };
    const bySite = (r: Row) => r['name'] === siteId;
    note(await ctx.print('/interface'), bySite, () => siteId);
    note(await ctx.print('/interface/ovpn-client'), bySite, () => siteId);
    note(await ctx.print('/ppp/profile'), bySite, () => siteId);
    const services = await ctx.print('/ip/service');
    note(
      services,
      () => true,
      (r) => r['name'] ?? '',
    );
    note(
      await ctx.print('/user'),
      () => true,
      (r) => r['name'] ?? '',
    );
    const api = services.find((r) => r['name'] === 'api');
    const users = [ctx.target.credentials.username, elevatedCredentials(siteId, ctx.target.credentials).username];
    return {
      siteId,
      gatewayAddress: ctx.services.apiAllowedFrom ?? GATEWAY_TUNNEL_ADDRESS,
      apiPort: Number(api?.['port'] ?? 8728) || 8728,
      users: [...new Set(users)],
      ids,
    };
  }

  /** The job's changes as the prediction reads them. */
  private async proposed(): Promise<ProposedChange[]> {
    const { ctx } = this;
    switch (ctx.job.kind) {
      case 'apply-config':
        return (ctx.payload as JobPayload<'apply-config'>).changes.map((state) => ({ kind: 'desired', state }));
      case 'run-command': {
        const p = ctx.payload as JobPayload<'run-command'>;
        const verb = verbOf(p.command);
        const menu = p.command.slice(0, p.command.lastIndexOf('/'));
        let current: Row | undefined;
        const target = p.attributes['.id'] ?? p.attributes['numbers'];
        if (/^\/ip\/firewall\/(filter|raw)$/.test(menu) && (verb === 'set' || verb === 'enable') && target) {
          current = (await ctx.print(menu)).find((r) => r['.id'] === target);
        }
        return [{ kind: 'command', command: p.command, attributes: p.attributes, ...(current ? { current } : {}) }];
      }
      case 'restore': {
        const { db, keyring } = ctx.services;
        const backupId = (ctx.payload as JobPayload<'restore'>).backupId;
        const text = await db.inTenant(ctx.scope, (tx) =>
          new BackupsRepository(keyring).content(tx, backupId, ctx.siteId),
        );
        const out: ProposedChange[] = [];
        for (const b of exportBlocks(text ?? '')) {
          const m = /^ip firewall (filter|raw)$/.exec(b.section);
          if (!m || !b.command?.startsWith('add ')) continue;
          out.push({ kind: 'command', command: `/ip/firewall/${m[1]}/add`, attributes: exportAttributes(b.command) });
        }
        return out;
      }
      default:
        return [];
    }
  }

  private async lockoutCheck(): Promise<string> {
    const proposed = await this.proposed();
    // Changes to no menu the rules judge cannot be an obvious lockout: no reads needed.
    if (!touchesManagement(proposed)) return 'no change cuts the management path';
    const risks = predictLockouts(proposed, await this.managementPath());
    if (risks.length === 0) return 'no change cuts the management path';
    const what = risks.map((r) => `${r.rule}: ${r.message}`).join('; ');
    const role = requesterRole(this.ctx.job);
    if (this.payload.allowLockoutRisk === true && (role === 'admin' || role === 'owner')) {
      return `lockout risk accepted by an admin (the router reverts by itself if it becomes unreachable): ${what}`;
    }
    throw new LockoutPredictedError(
      `lockout_predicted: ${what}. Nothing was changed; an admin may request the job with allowLockoutRisk: true (the router then reverts by itself if it becomes unreachable)`,
    );
  }

  /**
   * Revert file first (checked on the router), then the scheduler: a revert never lacks its
   * file. `first`: no earlier attempt began arming (the file and the entry carry this job's id,
   * and its `started` record precedes every write), so there are no leftovers to look for.
   */
  private async arm(first: boolean): Promise<string> {
    const { ctx, names } = this;
    const windowSeconds = await this.window();
    const keep = await keptManagement(ctx);
    if (keep.caFile) {
      const pem = await managementCaPem(ctx);
      if (pem) await writeFile(ctx, CA_FILE, pem);
    }
    const script = revertHead(keep.apiAddress) + restoreScript(await ctx.exportConfig(), keep);
    // Larger configurations go in parts that the revert file imports in order.
    let parts: string[];
    try {
      parts = scriptParts(script);
    } catch (err) {
      if (!(err instanceof ScriptTooLargeError)) throw err;
      throw new Error(`cannot arm the rollback: ${err.message}; nothing was changed`, { cause: err });
    }
    if (!first) await this.removeFile();
    const expected = await writeScriptParts(ctx, names.file, parts, {
      comment: 'Backplane commit-confirm revert: the configuration from before the change, in parts',
      tail: revertTail(names),
      // none there: never written, or just removed with every part
      fresh: true,
    });
    const files = new Set((await ctx.print('/file')).map((f) => f['name']));
    const missing = expected.filter((f) => !files.has(f));
    if (missing.length > 0) {
      throw new Error(`the revert file(s) ${missing.join(', ')} could not be written: nothing was changed`);
    }
    const clockReadAt = new Date().toISOString();
    const [clock] = await ctx.print('/system/clock');
    if (!first) await this.removeScheduler();
    await ctx.callElevated(
      '/system/scheduler/add',
      confirmSchedulerAttributes(names, windowSeconds, { time: clock?.['time'], date: clock?.['date'] }),
    );
    const record: ArmRecord = {
      scheduler: names.scheduler,
      file: names.file,
      windowSeconds,
      armedAt: new Date().toISOString(),
      clockReadAt,
    };
    return JSON.stringify(record);
  }

  /** A command over a connection opened now, and the tunnel up (the router's ovpn-client running). */
  private async reachable(failureStep: string = STEP_CONFIRM): Promise<void> {
    const { ctx } = this;
    const { channel } = ctx.services;
    try {
      await ctx.lease?.check();
      if (channel.probe) await channel.probe(ctx.target, 5000);
      else {
        // The relay keeps one pooled connection per site and login: a call as the other user
        // replaces it, so the routine call after it runs over a connection opened after the change.
        await ctx.callElevated('/system/identity/print', {}, 5000);
        await ctx.call('/system/identity/print', {}, 5000);
      }
      // Through a tunnel: it is up at the gateway and on the router (a direct channel has none).
      if (channel.tunnels) {
        if (!(await channel.connectedSince(ctx.siteId))) {
          throw new SiteUnreachableError('site_offline', 'the management tunnel is down');
        }
        const ovpn = (await ctx.print('/interface/ovpn-client')).find((r) => r['name'] === ctx.siteId);
        if (ovpn && ovpn['running'] !== 'true') {
          throw new SiteUnreachableError('tunnel_down', `the router's ovpn-client ${ctx.siteId} is not running`);
        }
      }
    } catch (err) {
      if (err instanceof SiteUnreachableError) {
        await ctx.failed(failureStep, `not reachable after the change: ${err.message}`);
      }
      throw err;
    }
  }

  /** Removes the revert file and its parts (parts first: the main file's absence means "gone"). */
  private async removeFile(): Promise<void> {
    const stem = this.names.file.replace(/\.rsc$/, '-');
    const files = (await this.ctx.print('/file')).filter(
      (x) => x['name']?.startsWith(stem) || x['name'] === this.names.file,
    );
    files.sort((a, b) => (a['name'] === this.names.file ? 1 : 0) - (b['name'] === this.names.file ? 1 : 0));
    for (const f of files) if (f['.id']) await this.ctx.call('/file/remove', { '.id': f['.id'] });
  }

  private async removeScheduler(): Promise<boolean> {
    const rows = (await this.ctx.callElevated('/system/scheduler/print')).rows;
    const hit = rows.find((r) => r['name'] === this.names.scheduler);
    if (hit?.['.id']) await this.ctx.callElevated('/system/scheduler/remove', { '.id': hit['.id'] });
    return hit !== undefined;
  }

  /** The router's export now against the job's record from before the change. */
  private async compareWithBefore(): Promise<{ equal: boolean | null; differences: string[]; after?: string }> {
    const { ctx } = this;
    const row = await ctx.services.db.inTenant(ctx.scope, (tx) => jobsRepo.get(tx, ctx.job.id));
    if (!this.record || !row?.exportBeforeEnc) return { equal: null, differences: [] };
    const before = new SiteCredentialsRepository(ctx.services.keyring).decryptJobExport(
      ctx.job.id,
      row.exportBeforeEnc,
    );
    const after = await this.record();
    const keep = await keptManagement(ctx);
    const differences = exportDifferences(before, after, keep.names);
    return { equal: differences.length === 0, differences, after };
  }

  /**
   * The router answers, its scheduler entry is gone and the revert file is still there, and no
   * revert has logged that it is done. A revert under way looks like this for a moment (the
   * entry removes itself first, the file last). So does a rollback that something else took
   * away: another job's reset-configuration (a restore) wipes every scheduler entry and keeps
   * files; a revert that failed half-way never removes its file. Waiting for those never ends
   * (seed 15 episode 10: a run-command waited, retrying every 3 s, until the campaign gave up),
   * so the wait is bounded:
   *
   * - the window cannot have run out yet (the entry was removed, it did not fire; not for a
   *   restore, whose own reset removes the entry until its script arms it again): no revert
   *   ran. The leftover file is removed (the disarm finished) and the job carries on: a
   *   handler that had finished is confirmed as usual; one that had not is not continued
   *   without its rollback (failed when it had not begun, else unknown);
   * - otherwise the router may have begun a revert: waited for while the router answers, for
   *   one effect window (`effectWaitMs`, 90 s) from the first sighting. Then the revert file is
   *   removed (it must not run later) and the job ends `unknown`, saying how the configuration
   *   compares with the one before the change.
   */
  private async revertPending(arm: ArmRecord): Promise<undefined> {
    const { ctx } = this;
    const left = Date.parse(arm.clockReadAt ?? arm.armedAt) + arm.windowSeconds * 1000 - Date.now();
    if (left > FIRE_SLACK_MS && ctx.job.kind !== 'restore') {
      const detail = `the confirm scheduler ${arm.scheduler} was removed by something else ${Math.round(left / 1000)} s before its ${arm.windowSeconds} s window ran out (e.g. a reset-configuration by another job); the revert never ran; removed the leftover ${arm.file}`;
      if (ctx.stepState(STEP_CONFIRM)) {
        // the handler had finished: the disarm is done, the confirm follows as usual
        await ctx.step(STEP_DISARM, 99, async () => {
          await this.clearLeftovers();
          return detail;
        });
        return undefined;
      }
      const begun = ctx.job.steps.some((s) => !OWN_STEPS.has(s.name));
      const msg = `the change's rollback was taken off the router before the change was complete (${detail}); the change is not continued without it`;
      return this.rollbackLost(
        begun
          ? { outcome: 'unknown', message: `${msg}; what it had applied so far was not verified` }
          : { outcome: 'failed', message: `${msg}; nothing was changed` },
      );
    }
    const waitMs = ctx.services.effectWaitMs ?? 90_000;
    const seen = ctx.stepState(STEP_REVERT_PENDING);
    if (!seen) {
      const note = `the confirm scheduler ${arm.scheduler} is gone and ${arm.file} is still there: waiting up to ${Math.round(waitMs / 1000)} s for the revert to finish`;
      await ctx.step(STEP_REVERT_PENDING, 99, () => Promise.resolve(note));
    }
    const since = seen ? Date.parse(seen.at) : Date.now();
    if (Date.now() - since < waitMs) {
      throw new RetryLaterError(
        `the confirm scheduler ${arm.scheduler} is gone and the revert file is still there: waiting for the revert to finish`,
        3000,
      );
    }
    const { equal, differences } = await this.compareWithBefore();
    return this.rollbackLost({
      outcome: 'unknown',
      message: `the router's rollback did not complete: the confirm scheduler ${arm.scheduler} is gone but ${arm.file} was still there ${Math.round((Date.now() - since) / 1000)} s later while the router answered (the revert failed, or something else removed the scheduler); removed the leftover file; whether the change is in effect was not verified${verdictOf(equal, differences)}`,
    });
  }

  /** Removes what is left of the rollback: the revert file (and parts), the entry should it be back. */
  private async clearLeftovers(): Promise<void> {
    await this.removeFile();
    await this.removeScheduler();
  }

  /**
   * The job ends without its rollback: the leftovers removed and the decision recorded in one
   * step (a later attempt, e.g. after a crash right here, ends the job the same way).
   */
  private async rollbackLost(decision: LostDecision): Promise<never> {
    await this.ctx.step(STEP_ROLLBACK_LOST, 99, async () => {
      await this.clearLeftovers();
      return JSON.stringify(decision);
    });
    throw lostError(decision);
  }

  /**
   * A later attempt of an armed job: unreachable → wait (the router reverts by itself);
   * scheduler still there → not reverted (the handler resumes); scheduler and file gone → the
   * router reverted: verified against the export from before.
   */
  private async checkReverted(): Promise<Reverted | undefined> {
    const { ctx } = this;
    const arm = armRecord(ctx)!;
    const lastFailure = [...ctx.job.steps]
      .reverse()
      .find((s) => (s.name === STEP_CONFIRM || s.name === STEP_DISARM) && s.state === 'failed');
    // Once confirmed, a later blip (while disarming) is the disarm's failure: the confirmation
    // stands (reachability after the change was proven) and is not repeated — this attempt
    // proves the router answers again before it reads the phase.
    await this.reachable(this.done(STEP_CONFIRM) ? STEP_DISARM : STEP_CONFIRM);
    const { phase } = await this.phase();
    // still armed (the handler resumes), or disarmed by this job (the confirm finishes it)
    if (phase === 'armed' || phase === 'disarming' || phase === 'clear') return undefined;
    if (phase === 'reverting') return this.revertPending(arm);
    const why = lastFailure?.detail ?? ctx.job.error ?? 'the router stopped answering after the change';
    const { equal, differences, after } = await this.compareWithBefore();
    const verdict = verdictOf(equal, differences);
    return {
      reason: `reverted: ${why}; when the ${arm.windowSeconds} s confirm window ran out the router restored its configuration from before the change by itself and came back${verdict}`,
      result: {
        reverted: true,
        windowSeconds: arm.windowSeconds,
        exportEqualsBefore: equal,
        differences: differences.slice(0, 20),
      },
      ...(after !== undefined ? { after } : {}),
    };
  }
}
