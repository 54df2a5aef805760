import type { RealtimeSink } from '@backplane/contracts';
import type { Keyring } from '@backplane/crypto';
import {
  AuditRepository,
  GatewayLinkRepository,
  JobBatchesRepository,
  MaintenanceWindowsRepository,
  RolloutsRepository,
  SiteCredentialsRepository,
  TenantScope,
  type Database,
  type RolloutRow,
  type RolloutWaveRow,
  type TenantTx,
} from '@backplane/db';
import {
  gateResult,
  haltReason,
  holdsForWindows,
  JobQueue,
  jobsRepo,
  RolloutGates,
  rolloutProgress,
  TERMINAL_STATES,
  type GateFailure,
  type GateResult,
  type JobKind,
  type JobRef,
  type QueueConnection,
} from '@backplane/jobs';
import type { Logger } from 'pino';
import type { RouterChannel } from '../jobs/channel';

const LOCK = 'backplane:rollouts';
export const ROLLOUTS_LABEL = 'rollouts';
/** Rollouts one tick looks at, at most. */
const PER_TICK = 500;
/** Gate checks (tunnel, command) run at once per wave. */
const CHECK_CONCURRENCY = 16;

export interface RolloutAdvancerDeps {
  readonly db: Database;
  readonly queue: QueueConnection;
  readonly logger: Logger;
  readonly realtime: RealtimeSink;
  /** How gates reach routers (the tunnel registry and relay in production). */
  readonly channel: RouterChannel;
  /** Router logins for the check command (without it, a check gate fails). */
  readonly keyring?: Keyring;
}

/** What one tick did to one rollout. */
export interface RolloutStep {
  readonly rolloutId: string;
  readonly started?: number;
  readonly passed?: number;
  readonly halted?: string;
  readonly completed?: boolean;
}

/**
 * Advances rollouts (docs/adr/0096-rollouts-in-waves.md). Each tick of the `rollouts`
 * schedule, for every running or paused rollout:
 *
 * 1. a running wave whose jobs all ended (each site's latest job) and whose bake time is
 *    over has its health gates checked — job outcome, site online, tunnel up, the optional
 *    read-only check command; more failures than the threshold halt the rollout (`halted`,
 *    with the reason), else the wave passed; a wave whose jobs do not end within its timeout
 *    halts it too;
 * 2. a running rollout without a running wave starts its next pending wave: the wave's state,
 *    its batch and its jobs in one transaction (the conditional `pending → running` update is
 *    the guard: a wave starts once, whichever worker ticks, and a worker killed mid-start left
 *    nothing), then enqueued (the job runner's reconciler re-adds jobs whose enqueue was lost);
 *    no pending wave left: `completed`.
 *
 * All state is in PostgreSQL; a tick holds an advisory lock so two workers do not check the
 * same gates at once. A `rollout.progress` event per rollout per tick when something changed.
 */
export class RolloutAdvancer {
  private readonly repo = new RolloutsRepository();
  private readonly batches = new JobBatchesRepository();
  private readonly audit = new AuditRepository();
  private readonly link = new GatewayLinkRepository();
  private readonly windows = new MaintenanceWindowsRepository();
  private readonly credentials?: SiteCredentialsRepository;
  private readonly producer: JobQueue;

  constructor(private readonly deps: RolloutAdvancerDeps) {
    this.producer = new JobQueue(deps.queue);
    if (deps.keyring) this.credentials = new SiteCredentialsRepository(deps.keyring);
  }

  /** One pass over the active rollouts; null when another worker's tick holds the lock. */
  async tick(): Promise<RolloutStep[] | null> {
    const active = await this.deps.db.inPlatform(async (tx) => {
      if (!(await this.link.tryLock(tx, LOCK))) return null;
      return this.repo.active(tx, PER_TICK);
    });
    if (!active) return null;
    const out: RolloutStep[] = [];
    for (const r of active) {
      try {
        const step = await this.advance(r.tenant_id, r.id);
        if (step) out.push(step);
      } catch (err) {
        this.deps.logger.warn({ err: String(err), rolloutId: r.id }, 'rollout not advanced (next tick retries)');
      }
    }
    return out;
  }

  /** One rollout, one step: check the running wave, then start the next one. */
  async advance(tenantId: string, rolloutId: string): Promise<RolloutStep | null> {
    const scope = TenantScope.authenticated(tenantId);
    const read = await this.deps.db.inTenant(scope, async (tx) => {
      const rollout = await this.repo.get(tx, rolloutId);
      return rollout ? { rollout, waves: await this.repo.waves(tx, rolloutId) } : null;
    });
    if (!read) return null;
    const { rollout } = read;
    const gates = RolloutGates.parse(rollout.gates);
    let changed = false;
    let step: RolloutStep = { rolloutId };
    const running = read.waves.find((w) => w.state === 'running');
    if (running) {
      const verdict = await this.checkWave(scope, rollout, running, gates);
      if (verdict === 'open') return null;
      changed = true;
      if (!verdict.passed) {
        const reason =
          'timeout' in verdict
            ? `wave ${running.wave + 1}: jobs still open after ${gates.waveTimeoutSeconds} s`
            : haltReason(running.wave, verdict);
        const halted = await this.deps.db.inTenant(scope, async (tx) => {
          if (!(await this.repo.finishWave(tx, rolloutId, running.wave, 'failed', verdict))) return null;
          const row = await this.repo.setState(tx, rolloutId, ['running', 'paused'], 'halted', reason);
          if (row) await this.record(tx, 'rollout.halted', rolloutId, { wave: running.wave, reason });
          return row;
        });
        if (halted) {
          this.deps.logger.warn({ rolloutId, wave: running.wave, reason }, 'rollout halted');
          await this.publish(scope, rolloutId);
        }
        return { rolloutId, halted: reason };
      }
      await this.deps.db.inTenant(scope, (tx) => this.repo.finishWave(tx, rolloutId, running.wave, 'passed', verdict));
      step = { ...step, passed: running.wave };
    }
    if (rollout.state === 'running') {
      const next = read.waves.find((w) => w.state === 'pending');
      if (next) {
        const started = await this.startWave(scope, rollout, next);
        if (started !== null) {
          changed = true;
          step = { ...step, started: next.wave };
        }
      } else if (!running || read.waves.every((w) => w.state === 'passed' || w.wave === running.wave)) {
        const done = await this.deps.db.inTenant(scope, async (tx) => {
          const row = await this.repo.setState(tx, rolloutId, ['running'], 'completed', null);
          if (row) await this.record(tx, 'rollout.completed', rolloutId, { sites: row.total });
          return row;
        });
        if (done) {
          changed = true;
          step = { ...step, completed: true };
        }
      }
    }
    if (changed) await this.publish(scope, rolloutId);
    return changed ? step : null;
  }

  /** 'open' while jobs run (or bake); a gate result otherwise (a timeout fails). */
  private async checkWave(
    scope: TenantScope,
    rollout: RolloutRow,
    wave: RolloutWaveRow,
    gates: RolloutGates,
  ): Promise<'open' | GateResult | (GateResult & { timeout: true })> {
    const jobs = await this.deps.db.inTenant(scope, (tx) => this.repo.latestJobs(tx, wave.batchId));
    const open = jobs.filter((j) => !TERMINAL_STATES.includes(j.state as (typeof TERMINAL_STATES)[number]));
    const now = Date.now();
    if (open.length) {
      const started = wave.startedAt?.getTime() ?? now;
      if (now - started < gates.waveTimeoutSeconds * 1000) return 'open';
      return {
        ...gateResult(
          jobs.length,
          open.map((j) => ({ siteId: j.siteId, reason: `timeout: job still ${j.state}` })),
          0,
        ),
        passed: false,
        timeout: true,
      };
    }
    if (gates.bakeSeconds > 0) {
      if (!wave.jobsEndedAt) {
        await this.deps.db.inTenant(scope, (tx) => this.repo.jobsEnded(tx, rollout.id, wave.wave));
        return 'open';
      }
      if (now - wave.jobsEndedAt.getTime() < gates.bakeSeconds * 1000) return 'open';
    }
    const failures: GateFailure[] = [];
    const healthy: string[] = [];
    for (const j of jobs) {
      if (j.state === 'succeeded') healthy.push(j.siteId);
      else failures.push({ siteId: j.siteId, reason: `job ${j.state}: ${(j.error ?? '').slice(0, 200)}` });
    }
    let candidates = healthy;
    if (gates.siteOnline && candidates.length) {
      const online = await this.deps.db.inTenant(scope, (tx) => this.repo.online(tx, candidates));
      const ok: string[] = [];
      for (const s of candidates) {
        if (online.get(s)) ok.push(s);
        else failures.push({ siteId: s, reason: 'offline: the site is not online' });
      }
      candidates = ok;
    }
    if (gates.tunnelUp && candidates.length) {
      const up = await this.eachSite(candidates, async (s) => Boolean(await this.deps.channel.connectedSince(s)));
      const ok: string[] = [];
      for (const [i, s] of candidates.entries()) {
        if (up[i] === true) ok.push(s);
        else failures.push({ siteId: s, reason: 'tunnel down: no management tunnel' });
      }
      candidates = ok;
    }
    const check = gates.check;
    if (check && candidates.length) {
      const errors = await this.eachSite(candidates, async (s) => {
        const creds = this.credentials;
        if (!creds) return 'no keyring to read router logins';
        const access = await this.deps.db.inTenant(scope, (tx) => creds.jobAccess(tx, s));
        if (!access.credentials) return 'the site has no router API credentials';
        await this.deps.channel.call(
          {
            siteId: s,
            credentials: access.credentials,
            ...(access.routerosVersion ? { knownVersion: access.routerosVersion } : {}),
          },
          check.command,
          check.attributes,
          30_000,
        );
        return null;
      });
      for (const [i, s] of candidates.entries()) {
        const e = errors[i];
        if (e !== null) failures.push({ siteId: s, reason: `check failed: ${String(e).slice(0, 200)}` });
      }
    }
    return gateResult(jobs.length, failures, gates.maxFailures);
  }

  /** `fn` for every site, CHECK_CONCURRENCY at a time; an error becomes its message. */
  private async eachSite<T>(sites: readonly string[], fn: (siteId: string) => Promise<T>): Promise<(T | string)[]> {
    const out: (T | string)[] = new Array<T | string>(sites.length);
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < sites.length; i = next++) {
        try {
          out[i] = await fn(sites[i]!);
        } catch (err) {
          out[i] = err instanceof Error ? err.message : String(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, sites.length) }, lane));
    return out;
  }

  /** Starts wave `w` once: state, batch and jobs in one transaction, then enqueued. */
  private async startWave(scope: TenantScope, rollout: RolloutRow, w: RolloutWaveRow): Promise<number | null> {
    const gates = RolloutGates.parse(rollout.gates);
    const held = new Set<string>();
    const made = await this.deps.db.inTenant(scope, async (tx): Promise<JobRef[] | null> => {
      const wave = await this.repo.startWave(tx, rollout.id, w.wave);
      if (!wave) return null;
      const sites = await this.repo.sitesToRun(tx, rollout.id, w.wave);
      if (!(await this.batches.exists(tx, wave.batchId))) {
        await this.batches.create(tx, {
          id: wave.batchId,
          kind: rollout.kind,
          total: sites.length,
          requestedBy: rollout.requestedBy,
          idempotencyKey: null,
        });
      }
      const rows = sites.length
        ? await jobsRepo.createMany(tx, {
            siteIds: sites,
            kind: rollout.kind as JobKind,
            payload: rollout.payload,
            requestedBy: rollout.requestedBy as unknown as Parameters<typeof jobsRepo.createMany>[1]['requestedBy'],
            idempotencyKey: `rollout:${rollout.id}:${wave.attempt}`,
            batchId: wave.batchId,
            // A job that cannot start within the wave's timeout ends (expired) rather than linger.
            ttlSeconds: gates.waveTimeoutSeconds,
          })
        : [];
      // Maintenance windows (ADR 0090) bind a wave's jobs like a bulk job's: a site outside
      // its window gets its job held (`waiting` until the next opening; the reconciler
      // releases it). A tenant without windows pays one query.
      if (rows.length && holdsForWindows(rollout.kind, rollout.payload) && (await this.windows.any(tx))) {
        for (const j of rows) {
          if (j.state !== 'queued') continue;
          if (await this.windows.holdAgainIfClosed(tx, j.id, j.siteId)) held.add(j.id);
        }
      }
      await this.record(tx, 'rollout.wave_started', rollout.id, {
        wave: w.wave,
        attempt: wave.attempt,
        sites: sites.length,
        batchId: wave.batchId,
        ...(held.size ? { heldForWindows: held.size } : {}),
      });
      return rows;
    });
    if (!made) return null;
    const tenantId = rollout.tenantId;
    await this.producer.addBulk(
      made
        .filter((j) => (j.state === 'queued' || j.state === 'waiting') && !held.has(j.id))
        .map((j) => ({ jobId: j.id, tenantId, siteId: j.siteId, kind: j.kind })),
    );
    if (made.length) {
      await this.deps.realtime
        .publish(tenantId, {
          type: 'job.batch',
          data: { batchId: w.batchId, kind: rollout.kind, changed: made.length, states: { queued: made.length } },
        })
        .catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'realtime publish failed'));
    }
    this.deps.logger.info({ rolloutId: rollout.id, wave: w.wave, jobs: made.length }, 'rollout wave started');
    return made.length;
  }

  private record(tx: TenantTx, action: string, rolloutId: string, after: Record<string, unknown>): Promise<void> {
    return this.audit.append(tx, {
      actorType: 'system',
      actorId: null,
      actorLabel: ROLLOUTS_LABEL,
      sourceIp: null,
      requestId: null,
      action,
      targetType: 'rollout',
      targetId: rolloutId,
      after,
    });
  }

  /** `rollout.progress` with the counts as they are now (never fails the tick). */
  private async publish(scope: TenantScope, rolloutId: string): Promise<void> {
    try {
      const data = await this.deps.db.inTenant(scope, async (tx) => {
        const r = await this.repo.get(tx, rolloutId);
        if (!r) return null;
        return rolloutProgress(r, await this.repo.waves(tx, rolloutId), await this.repo.jobCounts(tx, rolloutId))
          .summary;
      });
      if (data) await this.deps.realtime.publish(scope.tenantId, { type: 'rollout.progress', data });
    } catch (err) {
      this.deps.logger.warn({ err: String(err) }, 'realtime publish failed');
    }
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}
