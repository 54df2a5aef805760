import { processEnv, parseVars, type Env } from './load';
import { loadSecrets, type Secrets } from './secrets';

const COMMON = [
  'NODE_ENV',
  'LOG_LEVEL',
  'LOG_REQUEST_LEVEL',
  'DATA_DIR',
  'DATABASE_URL',
  'DATABASE_APP_URL',
  'DATABASE_POOL_SIZE',
  'REDIS_URL',
] as const;
const EDGE = ['NODE_ENV', 'LOG_LEVEL', 'LOG_REQUEST_LEVEL', 'DATA_DIR', 'REDIS_URL'] as const;

export function loadApiConfig(env: Env = processEnv()) {
  return parseVars(
    [
      ...COMMON,
      'JWT_SIGNING_KEY',
      'ENCRYPTION_KEYS',
      'API_HOST',
      'API_PORT',
      'API_BODY_LIMIT',
      'TRUST_PROXY',
      'METRICS_TOKEN',
      'MIGRATIONS_RUN',
      'API_CORS_ORIGINS',
      'API_RATE_LIMIT',
      'API_ACCESS_TOKEN_TTL',
      'GATEWAY_DOWN_AFTER',
      'TUNNEL_VERIFIER_KEY',
      'GEOIP_DATABASE',
      'BOOTSTRAP_OWNER_EMAIL',
      'BOOTSTRAP_OWNER_PASSWORD',
      'BOOTSTRAP_TENANT_NAME',
      'CONTROLLER_PUBLIC_URL',
      'ONBOARDING_TOKEN_TTL',
      'POLL_INTERVAL',
      'REDIS_PREFIX',
      'JOB_TTL',
      'TELEMETRY_RAW_RETENTION_HOURS',
    ],
    env,
  );
}
export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadGatewayConfig(env: Env = processEnv()) {
  return parseVars(
    [
      ...EDGE,
      'GATEWAY_HOST',
      'GATEWAY_PORT',
      'GATEWAY_REGION',
      'GATEWAY_API_URL',
      'GATEWAY_NAME',
      'GATEWAY_ENROLLMENT_TOKEN',
      'GATEWAY_CREDENTIAL',
      'GATEWAY_LINK_URL',
      'GATEWAY_OPENVPN',
      'GATEWAY_OPENVPN_PORT',
      'GATEWAY_OPENVPN_TLS_MIN',
      'GATEWAY_OPENVPN_DH',
      'GATEWAY_REDIS_PREFIX',
      'GATEWAY_OPENVPN_PROCESS',
      'GATEWAY_OPENVPN_RESTART_MIN_INTERVAL',
      'GATEWAY_OPENVPN_RESTART_DRAIN',
      'GATEWAY_OPENVPN_RENEG',
      'GATEWAY_OPENVPN_KEEPALIVE',
      'GATEWAY_OPENVPN_KEEPALIVE_TIMEOUT',
      'GATEWAY_OPENVPN_HAND_WINDOW',
      'GATEWAY_OPENVPN_WATCH_INTERVAL',
      'GATEWAY_SYNC_INTERVAL',
      'GATEWAY_HEARTBEAT_INTERVAL',
      'GATEWAY_REGISTRY_TTL',
      'GATEWAY_LATENCY_INTERVAL',
      'GATEWAY_BYTECOUNT_INTERVAL',
      'GATEWAY_OUTBOX_MAX',
      'GATEWAY_OUTBOX_FLUSH_INTERVAL',
      'GATEWAY_SHUTDOWN_GRACE',
      'TELEMETRY_INTERVAL',
    ],
    env,
  );
}
export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadWorkerConfig(env: Env = processEnv()) {
  return parseVars(
    [
      ...COMMON,
      'JWT_SIGNING_KEY',
      'ENCRYPTION_KEYS',
      'WORKER_HOST',
      'WORKER_PORT',
      'WORKER_CONCURRENCY',
      'WORKER_DRAIN_TIMEOUT',
      'TUNNEL_VERIFIER_KEY',
      'CONTROLLER_PUBLIC_URL',
      'POLL_INTERVAL',
      'BACKUP_CRON',
      'REDIS_PREFIX',
      'GATEWAY_DOWN_AFTER',
      'GATEWAY_SWEEP_INTERVAL',
      'REGION_HEALTH_INTERVAL',
      'SELF_HEAL_AFTER',
      'SELF_HEAL_INTERVAL',
      'SELF_HEAL_SITE_COOLDOWN',
      'SELF_HEAL_PER_MINUTE',
      'FLAP_DISCONNECTS',
      'FLAP_WINDOW',
      'SCHEDULE_RECONCILE_INTERVAL',
      'TELEMETRY_ROLLUP_INTERVAL',
      'TELEMETRY_RAW_RETENTION_HOURS',
      'TELEMETRY_5M_RETENTION_DAYS',
      'TELEMETRY_1H_RETENTION_DAYS',
      'SMTP_URL',
      'SMTP_FROM',
      'OUTBOUND_ALLOW_NETWORKS',
      'NOTIFY_POLL_INTERVAL',
      'NOTIFY_RETRY_BASE',
      'NOTIFY_LEASE',
      'ROLLOUT_INTERVAL',
    ],
    env,
  );
}
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

/** Secrets for an app whose config carries the secret variables. */
export function secretsFor(config: ApiConfig | WorkerConfig): Secrets {
  return loadSecrets({
    dataDir: config.DATA_DIR,
    jwtSigningKey: config.JWT_SIGNING_KEY,
    encryptionKeys: config.ENCRYPTION_KEYS,
  });
}
