import type { RelayResponse } from '@backplane/gateway-link';
import type { Keyring } from '@backplane/crypto';
import type { RealtimeSink } from '@backplane/contracts';
import type { Database, TenantScope } from '@backplane/db';
import {
  READ_VERBS,
  jobProgressEvent,
  jobsRepo,
  type DesiredState,
  type JobKind,
  type JobPayload,
  type JobRow,
  type JobStep,
  type RouterWrite,
} from '@backplane/jobs';
import type { Logger } from 'pino';
import { elevatedCredentials } from '@backplane/routeros';
import { RouterCommandError, SiteUnreachableError, type RouterChannel, type SiteTarget } from './channel';
import { NamedError } from './named-error';

/** Ask the runner to run the job again later (e.g. waiting for the router to come back). */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly delayMs = 5000,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/** The job was cancelled while it ran: stop before the next step. */
export class JobCancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelledError';
  }
}

/**
 * This run no longer owns the job (another worker took it over, or it ended): stop now,
 * write nothing more (docs/adr/0056-job-lease-fencing.md).
 */
export class LeaseLostError extends Error {
  constructor(jobId: string) {
    super(`job ${jobId}: this run lost its lease (another worker took the job over, or it ended)`);
    this.name = 'LeaseLostError';
  }
}

/**
 * The run's site lock was lost while it ran (another execution held the site since: a pause
 * or a Redis stall past the lock TTL). Like a lost lease, the run touches the router no more
 * (every handler treats it as resumable); unlike it, the job still belongs to this run, which
 * puts it back to wait for the site and resumes it from its recorded steps.
 */
export class SiteLockLostError extends LeaseLostError {
  constructor(jobId: string) {
    super(jobId);
    this.message = `job ${jobId}: the site lock was lost while it ran (another job held the site since)`;
    this.name = 'SiteLockLostError';
  }
}

/**
 * A command was sent (or may have been) and its effect could not be verified: the job ends
 * `unknown`, never `succeeded` (docs/adr/0057-verified-effects-unknown-outcome.md).
 */
export class OutcomeUnknownError extends NamedError {}

/** The lease of one run of a job: its epoch, and a check that it still holds it (before each router call). */
export interface JobLease {
  readonly owner: string;
  readonly epoch: number;
  /**
   * Throws LeaseLostError when the run no longer owns the job. `readOnly`: the call cannot
   * change the router, and a confirmation less than a second old is enough (ADR 0099); a
   * call that can change the router always confirms anew.
   */
  check(readOnly?: boolean): Promise<void>;
}

/** Whether a router command only reads (its verb is one of the read verbs). */
export function readsOnly(command: string): boolean {
  return READ_VERBS.includes(command.slice(command.lastIndexOf('/') + 1));
}

export interface WorkerServices {
  readonly db: Database;
  readonly keyring: Keyring;
  readonly channel: RouterChannel;
  readonly logger: Logger;
  readonly verifierKey: Buffer;
  readonly controllerUrl: string;
  readonly pollInterval: number;
  /** Tests on loopback: who may reach the router's API service after a recovery script. */
  readonly apiAllowedFrom?: string;
  /** Where `job.progress` / `backup.created` tenant events go (the portal's live view). */
  readonly events?: RealtimeSink;
  /**
   * Before/after record of apply-config: `menu` exports only the menus the change touches
   * (default), `full` the whole configuration (backup and restore always export in full).
   */
  readonly applyExport?: 'menu' | 'full';
  /**
   * How long a reboot, reset or upgrade may take to show on the router (boot time, running
   * version) once the router answers again (ms, default 90 s); past it, the effect is taken
   * as not made.
   */
  readonly effectWaitMs?: number;
}

/** The export path of each desired-state menu (its section of `/export`). */
export const MENU_EXPORT_PATH: Readonly<Record<DesiredState['menu'], string>> = {
  dns: '/ip/dns',
  ntp: '/system/ntp/client',
  identity: '/system/identity',
  'address-list': '/ip/firewall/address-list',
  user: '/user',
};

/** Publishes a tenant event; a failure is logged, never fails the job (the row is the truth). */
export async function publishEvent(
  services: WorkerServices,
  tenantId: string,
  event: Parameters<RealtimeSink['publish']>[1],
): Promise<void> {
  if (!services.events) return;
  try {
    await services.events.publish(tenantId, event);
  } catch (err) {
    services.logger.warn({ err: String(err), type: event.type }, 'realtime publish failed');
  }
}

/**
 * What a handler gets: the site's router, and `step()` which records each step and makes
 * a job that runs again (worker died, router went offline) skip steps already done.
 */
export class JobContext<K extends JobKind = JobKind> {
  private steps: JobStep[];

  constructor(
    readonly services: WorkerServices,
    readonly scope: TenantScope,
    readonly job: JobRow,
    readonly payload: JobPayload<K>,
    readonly target: SiteTarget,
    /** The run's lease: checked before each router call, presented with each step write. */
    readonly lease?: JobLease,
    /** What the run read with its start: the tenant's commit-confirm window (undefined: not read). */
    readonly known: { readonly tenantConfirmSeconds?: number | null } = {},
  ) {
    this.steps = [...job.steps];
    this.progress = job.progress;
  }

  get siteId(): string {
    return this.job.siteId;
  }

  get log(): Logger {
    return this.services.logger;
  }

  /** One router command; a run that lost its lease stops here, before the router sees anything. */
  async call(
    command: string,
    attributes?: Readonly<Record<string, string>>,
    timeoutMs?: number,
  ): Promise<RelayResponse> {
    await this.lease?.check(readsOnly(command));
    return this.services.channel.call(this.target, command, attributes, timeoutMs);
  }

  /**
   * A call as the elevated Backplane user (ADR 0053): only the export with secrets (backups
   * and the before/after records) and restore's reset use it; everything else runs as the
   * routine user, which the router stops from touching users or reading secrets.
   */
  async callElevated(
    command: string,
    attributes?: Readonly<Record<string, string>>,
    timeoutMs?: number,
  ): Promise<RelayResponse> {
    const credentials = elevatedCredentials(this.siteId, this.target.credentials);
    if (this.noElevatedUser || credentials === this.target.credentials)
      return this.call(command, attributes, timeoutMs);
    try {
      await this.lease?.check(readsOnly(command));
      return await this.services.channel.call({ ...this.target, credentials }, command, attributes, timeoutMs);
    } catch (err) {
      // Routers onboarded before the split (ADR 0053) have only the routine user, with the
      // old wide rights: used as it is until the router is onboarded again.
      if (!(err instanceof SiteUnreachableError && err.reason === 'router_login_failed')) throw err;
      this.noElevatedUser = true;
      this.log.warn({ siteId: this.siteId }, 'no elevated Backplane user on the router; onboard it again');
      return this.call(command, attributes, timeoutMs);
    }
  }

  private noElevatedUser = false;

  async print(menu: string): Promise<Record<string, string>[]> {
    return [...(await this.call(`${menu}/print`)).rows];
  }

  /** The last record of a step (`done`, `started`...), from this or an earlier attempt. */
  stepState(name: string): JobStep | undefined {
    return [...this.steps].reverse().find((s) => s.name === name);
  }

  private progress: number;

  /**
   * `done` records of read-only steps not written yet (ADR 0117): they travel with the next
   * write (the next step, or the job's end), so a read-only step costs no round trip of its
   * own. Lost in a crash, the step only runs again: it changed nothing.
   */
  private deferred: JobStep[] = [];

  /** The deferred records, taken: the caller writes them (the job's end writes them with it). */
  takeDeferred(): JobStep[] {
    const out = this.deferred;
    this.deferred = [];
    return out;
  }

  /** Records a step (and announces it); `unlessCancelled`: a requested cancel stops the job here. */
  private async record(step: JobStep, at?: number, unlessCancelled = false): Promise<void> {
    // Progress never goes back (steps around a handler, e.g. commit-confirm's, come after its 100).
    const progress = at === undefined ? undefined : Math.max(at, this.progress);
    const records = [...this.deferred, step];
    const epoch = this.lease ? { leaseEpoch: this.lease.epoch } : {};
    const written = await this.services.db.inTenantOneTrip(this.scope, (tx) =>
      jobsRepo.step(tx, this.job.id, records, progress ?? (this.deferred.length > 0 ? this.progress : undefined), {
        unlessCancelled,
        ...epoch,
      }),
    );
    if (written === 'refused') {
      const why = await this.services.db.inTenant(this.scope, (tx) =>
        jobsRepo.whyRefused(tx, this.job.id, this.lease?.epoch),
      );
      if (why === 'lease_lost') throw new LeaseLostError(this.job.id);
      throw new JobCancelledError();
    }
    this.deferred = [];
    this.steps.push(step);
    if (progress !== undefined) this.progress = progress;
    // Announced once written, each in order (the deferred ones first).
    for (const r of records) {
      await publishEvent(
        this.services,
        this.scope.tenantId,
        jobProgressEvent(this.job, 'running', { step: r.name, progressPercent: this.progress }),
      );
    }
  }

  /** Records that a step failed this time (it runs again on the next attempt); `detail` says why. */
  async failed(name: string, detail: string): Promise<void> {
    await this.record({ name, state: 'failed', at: new Date().toISOString(), detail });
  }

  /**
   * Runs one step once. A step already `done` in an earlier attempt is skipped (its detail
   * returned). A step that `started` but never finished (the worker died in it) is re-run
   * only if `idempotent` (find-then-set); otherwise `onInterrupted` decides (default: the
   * job ends `unknown`: the command may or may not have run).
   */
  async step(
    name: string,
    progress: number,
    fn: () => Promise<string | undefined>,
    opts: {
      idempotent: boolean;
      onInterrupted?: () => Promise<string | undefined>;
      /** Recorded with the `done` step: how to take back what `fn` wrote (read after `fn`). */
      undo?: () => readonly RouterWrite[];
      /**
       * `fn` only reads (it can run again at no risk): no `started` record, and its `done`
       * record travels with the next write (ADR 0117). A requested cancel is seen there.
       */
      readOnly?: boolean;
      /** Only the `done` record is deferred (the `started` one is written as usual). */
      deferDone?: boolean;
    } = { idempotent: true },
  ): Promise<string | undefined> {
    const prior = this.stepState(name);
    if (prior?.state === 'done' || prior?.state === 'skipped') return prior.detail;
    // Each step first checks for a requested cancel (in the same write that records it).
    const at = () => new Date().toISOString();
    if (prior?.state === 'started' && !opts.idempotent) {
      if (!opts.onInterrupted) {
        throw new OutcomeUnknownError(
          `step "${name}" was interrupted after it may have been sent; it is not safe to repeat and its effect cannot be verified`,
        );
      }
      // This run starts the step too (recorded), so that a step's `started` directly followed
      // by its `done` always spans one run — never the wait or takeover before it.
      await this.record({ name, state: 'started', at: at() }, undefined, true);
      const detail = await opts.onInterrupted();
      await this.record(
        { name, state: 'done', at: at(), detail: detail ?? 'recovered after interruption' },
        progress,
        true,
      );
      return detail;
    }
    if (!opts.readOnly) await this.record({ name, state: 'started', at: at() }, undefined, true);
    const detail = await fn();
    const undo = opts.undo?.() ?? [];
    const done: JobStep = {
      name,
      state: 'done',
      at: at(),
      ...(detail !== undefined ? { detail } : {}),
      ...(undo.length > 0 ? { undo } : {}),
    };
    if ((opts.readOnly || opts.deferDone) && undo.length === 0) {
      this.deferred.push(done);
      this.steps.push(done);
      this.progress = Math.max(progress, this.progress);
      return detail;
    }
    await this.record(done, progress);
    return detail;
  }

  private exportFlags?: Readonly<Record<string, string>>;
  /** The version `routerVersion` read once this attempt (its dialect does not change within one). */
  private readVersion?: string;

  /** `/export` with secrets (so that a restore is complete); `menu` exports only that section. */
  async exportConfig(menu = ''): Promise<string> {
    // v6 exports secrets by default and has no show-sensitive flag. The dialect comes from
    // the site record when it knows the version (no router read per job, issue 19); a
    // refusal with flags from the record asks the router itself once.
    const fromRecord = this.exportFlags === undefined && this.target.knownVersion !== undefined;
    this.exportFlags ??= (await this.routerVersion()).startsWith('6.') ? {} : { 'show-sensitive': '' };
    try {
      return (await this.callElevated(`${menu}/export`, this.exportFlags, 120_000)).ret ?? '';
    } catch (err) {
      if (!(fromRecord && err instanceof RouterCommandError)) throw err;
      this.exportFlags = (await this.version()).startsWith('6.') ? {} : { 'show-sensitive': '' };
      return (await this.callElevated(`${menu}/export`, this.exportFlags, 120_000)).ret ?? '';
    }
  }

  /**
   * The RouterOS version for choosing a dialect (6 or 7): the site record's when it knows
   * one, else the router's. Never for verifying an effect (an upgrade): that is `version()`.
   */
  async routerVersion(): Promise<string> {
    this.readVersion ??= this.target.knownVersion ?? (await this.version());
    return this.readVersion;
  }

  /**
   * The before/after record of a change to these menus: their sections of `/export` (one
   * call each), or the full export when told to or when the router cannot export a section.
   */
  async exportMenus(menus: readonly string[]): Promise<string> {
    if (this.services.applyExport === 'full' || menus.length === 0) return this.exportConfig();
    const parts: string[] = [];
    try {
      for (const m of [...new Set(menus)].sort()) parts.push(await this.exportConfig(m));
    } catch (err) {
      if (!(err instanceof RouterCommandError)) throw err;
      return this.exportConfig();
    }
    return parts.join('\n');
  }

  async version(): Promise<string> {
    const [r] = await this.print('/system/resource');
    return (r?.['version'] ?? '').split(' ')[0] ?? '';
  }
}
