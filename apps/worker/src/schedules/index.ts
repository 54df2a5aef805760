import type { WorkerConfig } from '@backplane/config';
import { BackupScheduler } from './backups';
import { GatewaySweep } from './gateway-sweep';
import { IDEMPOTENCY_CLEANUP_EVERY_SECONDS, IdempotencyCleanup } from './idempotency-cleanup';
import { RelayChannel } from '../jobs/channel';
import { RolloutAdvancer, type RolloutAdvancerDeps } from './rollouts';
import { Schedules } from './schedules';
import { SelfHeal, type SelfHealDeps } from './self-heal';
import { TelemetryMaintenance } from './telemetry-maintenance';

export { BackupScheduler } from './backups';
export { GatewaySweep, type RegionHealth, type SweepResult } from './gateway-sweep';
export { IDEMPOTENCY_CLEANUP_EVERY_SECONDS, IdempotencyCleanup } from './idempotency-cleanup';
export { SelfHeal, SELF_HEAL_LABEL, type SelfHealResult } from './self-heal';
export { RolloutAdvancer, ROLLOUTS_LABEL, type RolloutStep } from './rollouts';
export { Schedules, SCHEDULES_QUEUE, type Schedule, type ScheduleRepeat } from './schedules';
export { TelemetryMaintenance, type MaintenanceResult } from './telemetry-maintenance';

export type ScheduleConfig = Pick<
  WorkerConfig,
  | 'BACKUP_CRON'
  | 'GATEWAY_DOWN_AFTER'
  | 'GATEWAY_SWEEP_INTERVAL'
  | 'REGION_HEALTH_INTERVAL'
  | 'SELF_HEAL_AFTER'
  | 'SELF_HEAL_INTERVAL'
  | 'SELF_HEAL_SITE_COOLDOWN'
  | 'SELF_HEAL_PER_MINUTE'
  | 'FLAP_DISCONNECTS'
  | 'FLAP_WINDOW'
  | 'SCHEDULE_RECONCILE_INTERVAL'
  | 'TELEMETRY_ROLLUP_INTERVAL'
  | 'TELEMETRY_RAW_RETENTION_HOURS'
  | 'TELEMETRY_5M_RETENTION_DAYS'
  | 'TELEMETRY_1H_RETENTION_DAYS'
  | 'ROLLOUT_INTERVAL'
>;

/** What self-heal needs (database, Redis, queue, logger, realtime), with every schedule's settings. */
export interface WorkerScheduleDeps extends Omit<SelfHealDeps, 'config'> {
  readonly config: ScheduleConfig;
  /** Rollout health gates reach routers through it (tunnel up, check command). */
  readonly channel?: RolloutAdvancerDeps['channel'];
  readonly keyring?: RolloutAdvancerDeps['keyring'];
}

export interface WorkerSchedules {
  readonly schedules: Schedules;
  readonly sweep: GatewaySweep;
  readonly maintenance: TelemetryMaintenance;
  readonly backups: BackupScheduler;
  readonly idempotency: IdempotencyCleanup;
  readonly selfHeal: SelfHeal;
  readonly rollouts: RolloutAdvancer;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Everything the control plane does on a clock: scheduled backups (BACKUP_CRON), the
 * offline sweep (GATEWAY_SWEEP_INTERVAL), region health (REGION_HEALTH_INTERVAL) and
 * telemetry downsampling/retention (TELEMETRY_ROLLUP_INTERVAL), self-healing of tunnels
 * (SELF_HEAL_INTERVAL) and expired idempotency records (hourly).
 */
export function workerSchedules(deps: WorkerScheduleDeps): WorkerSchedules {
  const { config, logger } = deps;
  const sweep = new GatewaySweep(
    {
      db: deps.db,
      redis: deps.redis,
      redisPrefix: deps.redisPrefix,
      logger: logger.child({ component: 'sweep' }),
      config,
    },
    deps.realtime,
  );
  const maintenance = new TelemetryMaintenance({
    db: deps.db,
    logger: logger.child({ component: 'telemetry' }),
    config,
  });
  const backups = new BackupScheduler(deps.db, deps.queue, logger.child({ component: 'backups' }), deps.realtime);
  const idempotency = new IdempotencyCleanup(deps.db, logger.child({ component: 'idempotency' }));
  const selfHeal = new SelfHeal({
    db: deps.db,
    redis: deps.redis,
    redisPrefix: deps.redisPrefix,
    queue: deps.queue,
    logger: logger.child({ component: 'self-heal' }),
    realtime: deps.realtime,
    config,
  });
  const ownChannel = deps.channel ? undefined : new RelayChannel(deps.redis, deps.redisPrefix);
  const rollouts = new RolloutAdvancer({
    db: deps.db,
    queue: deps.queue,
    logger: logger.child({ component: 'rollouts' }),
    realtime: deps.realtime,
    channel: deps.channel ?? ownChannel!,
    ...(deps.keyring ? { keyring: deps.keyring } : {}),
  });
  const schedules = new Schedules(
    [
      {
        name: 'scheduled-backups',
        repeat: config.BACKUP_CRON === 'off' ? 'off' : { cron: config.BACKUP_CRON },
        run: (at) => backups.tick(at),
      },
      { name: 'gateway-sweep', repeat: { everySeconds: config.GATEWAY_SWEEP_INTERVAL }, run: () => sweep.sweepSites() },
      {
        name: 'region-health',
        repeat: { everySeconds: config.REGION_HEALTH_INTERVAL },
        run: () => sweep.checkRegions(),
      },
      {
        name: 'telemetry-maintenance',
        repeat: { everySeconds: config.TELEMETRY_ROLLUP_INTERVAL },
        run: () => maintenance.runOnce(),
      },
      {
        name: 'idempotency-cleanup',
        repeat: { everySeconds: IDEMPOTENCY_CLEANUP_EVERY_SECONDS },
        run: () => idempotency.runOnce(),
      },
      { name: 'self-heal', repeat: { everySeconds: config.SELF_HEAL_INTERVAL }, run: () => selfHeal.tick() },
      { name: 'rollouts', repeat: { everySeconds: config.ROLLOUT_INTERVAL }, run: () => rollouts.tick() },
    ],
    { queue: deps.queue, logger, reconcileEveryMs: config.SCHEDULE_RECONCILE_INTERVAL * 1000 },
  );
  return {
    schedules,
    sweep,
    maintenance,
    backups,
    idempotency,
    selfHeal,
    rollouts,
    start: () => schedules.start(),
    async stop() {
      await schedules.stop();
      await backups.close();
      await selfHeal.close();
      await rollouts.close();
      await ownChannel?.close();
    },
  };
}
