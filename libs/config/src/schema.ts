import { z } from 'zod';

/**
 * One entry of the configuration reference. Every variable the product reads is
 * declared here once; the README's configuration table is generated from this list
 * (`npm run docs:config`) so it cannot drift from the code.
 */
export interface VarSpec<T extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly schema: T;
  readonly description: string;
  /** Secrets are redacted from logs and accept `NAME_FILE`. */
  readonly secret: boolean;
  /** Human-readable default for the docs; the schema holds the real default. */
  readonly defaultText?: string;
}

function defineVar<T extends z.ZodType>(spec: VarSpec<T>): VarSpec<T> {
  return spec;
}

/**
 * The README's "Default" cell: the default, else whether the product starts without it. Read
 * from the schema itself (does it accept an unset variable?), so an optional variable such as
 * BOOTSTRAP_OWNER_EMAIL or GEOIP_DATABASE is never listed as required (the description says
 * what happens when it is unset, e.g. a secret generated into secrets.json).
 */
export function defaultCell(v: VarSpec): string {
  if (v.defaultText) return `\`${v.defaultText}\``;
  return v.schema.safeParse(undefined).success ? 'optional' : 'required';
}

const port = z.coerce.number().int().min(1).max(65535);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const postgresUrl = z
  .url()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must start with postgres:// or postgresql://');
const redisUrl = z.url().refine((v) => /^rediss?:\/\//.test(v), 'must start with redis:// or rediss://');

export const VARS = {
  NODE_ENV: defineVar({
    name: 'NODE_ENV',
    schema: z.enum(['development', 'production', 'test']).default('development'),
    description: 'Runtime mode. `production` turns off pretty logs and dev conveniences.',
    secret: false,
    defaultText: 'development',
  }),
  LOG_LEVEL: defineVar({
    name: 'LOG_LEVEL',
    schema: logLevel.default('info'),
    description: 'pino log level.',
    secret: false,
    defaultText: 'info',
  }),
  LOG_REQUEST_LEVEL: defineVar({
    name: 'LOG_REQUEST_LEVEL',
    schema: logLevel.default('info'),
    description:
      "Level of the one log line written per HTTP request (method, route, status, time). Below LOG_LEVEL it is not written; `npm start` uses `debug`, so the demo routers' polling stays out of the logs.",
    secret: false,
    defaultText: 'info',
  }),
  DATA_DIR: defineVar({
    name: 'DATA_DIR',
    schema: z.string().min(1).default('.data'),
    description:
      'Directory for generated secrets (`secrets.json`), the embedded database and Redis, and gateway state.',
    secret: false,
    defaultText: '.data',
  }),
  DATABASE_URL: defineVar({
    name: 'DATABASE_URL',
    schema: postgresUrl,
    description:
      'PostgreSQL connection URL of the table owner, used only for migrations (the apps query through DATABASE_APP_URL). `npm start` starts an embedded database when unset.',
    secret: true,
  }),
  DATABASE_APP_URL: defineVar({
    name: 'DATABASE_APP_URL',
    schema: postgresUrl.optional(),
    description:
      'Login of the api and worker: `backplane_app` (no superuser, BYPASSRLS or ownership; refused otherwise, ADR 0044). Unset: DATABASE_URL with user `backplane_app` and no password.',
    secret: true,
    defaultText: 'derived from DATABASE_URL',
  }),
  DATABASE_POOL_SIZE: defineVar({
    name: 'DATABASE_POOL_SIZE',
    schema: z.coerce.number().int().min(1).max(200).default(10),
    description: 'Maximum connections in each process pool.',
    secret: false,
    defaultText: '10',
  }),
  REDIS_URL: defineVar({
    name: 'REDIS_URL',
    schema: redisUrl,
    description: 'Redis URL for queues, pub/sub and rate limits. `npm start` starts a private redis-server when unset.',
    secret: true,
  }),
  JWT_SIGNING_KEY: defineVar({
    name: 'JWT_SIGNING_KEY',
    schema: z.string().min(32, 'must be at least 32 characters of random data').optional(),
    description: 'Key that signs access tokens. Generated into `<DATA_DIR>/secrets.json` on first start when unset.',
    secret: true,
    defaultText: 'generated',
  }),
  ENCRYPTION_KEYS: defineVar({
    name: 'ENCRYPTION_KEYS',
    schema: z
      .string()
      .regex(
        /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/=_-]{43,44}(,[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/=_-]{43,44})*$/,
        'must be a comma-separated list of keyId:base64(32 random bytes); the first key encrypts',
      )
      .optional(),
    description:
      'Data-encryption keys as `id:base64key,...`; the first encrypts, all decrypt. Generated into `secrets.json` when unset.',
    secret: true,
    defaultText: 'generated',
  }),
  API_HOST: defineVar({
    name: 'API_HOST',
    schema: z.string().min(1).default('127.0.0.1'),
    description: 'Address the control plane listens on (use 0.0.0.0 in containers).',
    secret: false,
    defaultText: '127.0.0.1',
  }),
  API_PORT: defineVar({
    name: 'API_PORT',
    schema: port.default(3000),
    description: 'Control plane HTTP port (REST API, portal, websockets, health and metrics).',
    secret: false,
    defaultText: '3000',
  }),
  API_BODY_LIMIT: defineVar({
    name: 'API_BODY_LIMIT',
    schema: z.coerce
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    description: 'Largest accepted request body in bytes.',
    secret: false,
    defaultText: '1048576',
  }),
  API_CORS_ORIGINS: defineVar({
    name: 'API_CORS_ORIGINS',
    schema: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((o) => o.trim())
          .filter((o) => o.length > 0),
      )
      .pipe(z.array(z.url({ message: 'each origin must be a URL like https://portal.example.com' }))),
    description: 'Comma-separated browser origins allowed by CORS. Empty (the default) turns CORS off.',
    secret: false,
    defaultText: '(off)',
  }),
  API_RATE_LIMIT: defineVar({
    name: 'API_RATE_LIMIT',
    schema: z.coerce.number().int().min(1).max(1_000_000).default(600),
    description: 'Requests per minute per client (credential, or source IP when anonymous), counted in Redis.',
    secret: false,
    defaultText: '600',
  }),
  API_ACCESS_TOKEN_TTL: defineVar({
    name: 'API_ACCESS_TOKEN_TTL',
    schema: z.coerce.number().int().min(30).max(900).default(900),
    description: 'Lifetime of access tokens in seconds (at most 15 minutes; refresh tokens rotate).',
    secret: false,
    defaultText: '900',
  }),
  GATEWAY_DOWN_AFTER: defineVar({
    name: 'GATEWAY_DOWN_AFTER',
    schema: z.coerce.number().int().min(10).max(3600).default(90),
    description: 'Seconds without a heartbeat after which the control plane reports a gateway as down.',
    secret: false,
    defaultText: '90',
  }),
  GATEWAY_SWEEP_INTERVAL: defineVar({
    name: 'GATEWAY_SWEEP_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
    description:
      'Worker: seconds between offline sweeps (a BullMQ job scheduler, one worker per tick): a site marked online whose tunnel registry entry expired or whose gateway stopped heartbeating goes offline (`gateway-lost`).',
    secret: false,
    defaultText: '30',
  }),
  REGION_HEALTH_INTERVAL: defineVar({
    name: 'REGION_HEALTH_INTERVAL',
    schema: z.coerce.number().int().min(1).max(86_400).default(300),
    description:
      'Worker: seconds between region health checks (a BullMQ job scheduler; healthy = an unrevoked gateway heartbeating within GATEWAY_DOWN_AFTER); the result is recorded on the region and changes are audited.',
    secret: false,
    defaultText: '300',
  }),
  SELF_HEAL_AFTER: defineVar({
    name: 'SELF_HEAL_AFTER',
    schema: z.coerce.number().int().min(0).max(86_400).default(120),
    description:
      'Worker: seconds a site may poll without a tunnel before its tunnel is repaired automatically (a recreate-tunnel job whose script the router gets on its next poll); 0 turns self-healing off.',
    secret: false,
    defaultText: '120',
  }),
  SELF_HEAL_INTERVAL: defineVar({
    name: 'SELF_HEAL_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
    description: 'Worker: seconds between self-heal checks (a BullMQ job scheduler, one worker per tick).',
    secret: false,
    defaultText: '30',
  }),
  ROLLOUT_INTERVAL: defineVar({
    name: 'ROLLOUT_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(5),
    description: 'Worker: seconds between rollout checks (gates of finished waves, start of the next wave).',
    secret: false,
    defaultText: '5',
  }),
  SELF_HEAL_SITE_COOLDOWN: defineVar({
    name: 'SELF_HEAL_SITE_COOLDOWN',
    schema: z.coerce.number().int().min(0).max(604_800).default(1800),
    description:
      'Worker: per-site rate limit of self-healing: no automatic repair within this many seconds of the site’s last recreate-tunnel job.',
    secret: false,
    defaultText: '1800',
  }),
  SELF_HEAL_PER_MINUTE: defineVar({
    name: 'SELF_HEAL_PER_MINUTE',
    schema: z.coerce.number().int().min(0).max(100_000).default(20),
    description: 'Worker: global rate limit of self-healing: at most this many automatic repairs per minute.',
    secret: false,
    defaultText: '20',
  }),
  FLAP_DISCONNECTS: defineVar({
    name: 'FLAP_DISCONNECTS',
    schema: z.coerce.number().int().min(2).max(10_000).default(5),
    description:
      'Tunnel disconnects within FLAP_WINDOW that mark a site as flapping (shown in its health, alerted, and never repaired automatically while it flaps).',
    secret: false,
    defaultText: '5',
  }),
  FLAP_WINDOW: defineVar({
    name: 'FLAP_WINDOW',
    schema: z.coerce.number().int().min(10).max(86_400).default(600),
    description: 'Seconds over which FLAP_DISCONNECTS are counted.',
    secret: false,
    defaultText: '600',
  }),
  BOOTSTRAP_OWNER_EMAIL: defineVar({
    name: 'BOOTSTRAP_OWNER_EMAIL',
    schema: z.email().optional(),
    description:
      'With BOOTSTRAP_OWNER_PASSWORD: creates the first owner (and platform operator) on an empty database instead of printing a one-time setup token.',
    secret: false,
  }),
  BOOTSTRAP_OWNER_PASSWORD: defineVar({
    name: 'BOOTSTRAP_OWNER_PASSWORD',
    schema: z.string().min(12, 'must be at least 12 characters').max(256).optional(),
    description: 'Password of the first owner (see BOOTSTRAP_OWNER_EMAIL). Used only when no user exists yet.',
    secret: true,
  }),
  BOOTSTRAP_TENANT_NAME: defineVar({
    name: 'BOOTSTRAP_TENANT_NAME',
    schema: z.string().min(1).max(200).default('Default'),
    description: 'Name of the first tenant created with the first owner.',
    secret: false,
    defaultText: 'Default',
  }),
  TRUST_PROXY: defineVar({
    name: 'TRUST_PROXY',
    schema: z
      .string()
      .regex(
        /^(|\d{1,2}|[0-9a-fA-F:.]+(\/\d{1,3})?(,[0-9a-fA-F:.]+(\/\d{1,3})?)*)$/,
        'must be empty (off), a hop count, or a comma-separated list of proxy addresses/CIDRs',
      )
      .default(''),
    description:
      'Proxies whose `X-Forwarded-For` is believed (so rate limits and audit see the client address): a hop count or addresses/CIDRs of your load balancers. Empty: the peer address is the client.',
    secret: false,
    defaultText: '(off)',
  }),
  METRICS_TOKEN: defineVar({
    name: 'METRICS_TOKEN',
    schema: z.string().min(24, 'at least 24 characters').optional(),
    description:
      "Bearer token a scraper sends for the api's `/metrics` (`Authorization: Bearer <token>`). Unset: `/metrics` answers only to loopback peers (issue 14 finding 8).",
    secret: true,
    defaultText: '(loopback only)',
  }),
  MIGRATIONS_RUN: defineVar({
    name: 'MIGRATIONS_RUN',
    schema: bool.default(true),
    description: 'Run pending migrations at api start (under an advisory lock, so replicas do not race).',
    secret: false,
    defaultText: 'true',
  }),
  GATEWAY_HOST: defineVar({
    name: 'GATEWAY_HOST',
    schema: z.string().min(1).default('127.0.0.1'),
    description: 'Address of the gateway health/metrics endpoint.',
    secret: false,
    defaultText: '127.0.0.1',
  }),
  GATEWAY_PORT: defineVar({
    name: 'GATEWAY_PORT',
    schema: port.default(3001),
    description: 'Gateway HTTP port (health, readiness, metrics).',
    secret: false,
    defaultText: '3001',
  }),
  GATEWAY_REGION: defineVar({
    name: 'GATEWAY_REGION',
    schema: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lower-case slug like eu-central')
      .default('local'),
    description: 'Region this gateway serves.',
    secret: false,
    defaultText: 'local',
  }),
  GATEWAY_API_URL: defineVar({
    name: 'GATEWAY_API_URL',
    schema: z.url().default('http://127.0.0.1:3000'),
    description: 'Control plane base URL the gateway enrolls with, heartbeats to and pulls site credentials from.',
    secret: false,
    defaultText: 'http://127.0.0.1:3000',
  }),
  GATEWAY_NAME: defineVar({
    name: 'GATEWAY_NAME',
    schema: z.string().min(1).max(200).default('gateway'),
    description: 'Name this gateway enrolls under.',
    secret: false,
    defaultText: 'gateway',
  }),
  GATEWAY_ENROLLMENT_TOKEN: defineVar({
    name: 'GATEWAY_ENROLLMENT_TOKEN',
    schema: z.string().min(10).optional(),
    description:
      'One-time token (`POST /api/v1/regions/{id}/enrollment-tokens`) traded for a credential on first start; the identity is then kept in `<DATA_DIR>/gateway/identity.json`.',
    secret: true,
  }),
  GATEWAY_CREDENTIAL: defineVar({
    name: 'GATEWAY_CREDENTIAL',
    schema: z.string().startsWith('bpg_').optional(),
    description: 'The gateway credential (`bpg_...`) if enrolled elsewhere; overrides the identity file.',
    secret: true,
  }),
  GATEWAY_LINK_URL: defineVar({
    name: 'GATEWAY_LINK_URL',
    schema: z.url().optional(),
    description:
      'URL api replicas use to reach this gateway for relayed router calls. Default `http://GATEWAY_HOST:GATEWAY_PORT`.',
    secret: false,
    defaultText: '(from GATEWAY_HOST/PORT)',
  }),
  GATEWAY_OPENVPN: defineVar({
    name: 'GATEWAY_OPENVPN',
    schema: z.enum(['auto', 'real', 'fake']).default('auto'),
    description:
      '`real` runs openvpn (needs root, /dev/net/tun, openvpn); `fake` runs an in-process fake management server (development, benchmarks); `auto` picks real when possible.',
    secret: false,
    defaultText: 'auto',
  }),
  GATEWAY_OPENVPN_PORT: defineVar({
    name: 'GATEWAY_OPENVPN_PORT',
    schema: port.default(8443),
    description: 'TCP port routers dial (OpenVPN).',
    secret: false,
    defaultText: '8443',
  }),
  GATEWAY_OPENVPN_TLS_MIN: defineVar({
    name: 'GATEWAY_OPENVPN_TLS_MIN',
    schema: z.enum(['1.0', '1.1', '1.2', '1.3']).default('1.2'),
    description:
      "Lowest TLS version the gateway's openvpn accepts (`tls-version-min`; one gateway = one region). 1.2 is what RouterOS 6.4x and later offer (docs/adr/0064-routeros6-tls.md); lower it only for a region of older routers.",
    secret: false,
    defaultText: '1.2',
  }),
  GATEWAY_OPENVPN_DH: defineVar({
    name: 'GATEWAY_OPENVPN_DH',
    schema: z.enum(['ffdhe2048', 'none']).default('ffdhe2048'),
    description:
      "Key exchange of the gateway's openvpn: `ffdhe2048` offers DHE (RFC 7919 group) next to ECDHE, for RouterOS 6 clients that offer only DHE suites; `none` offers ECDHE only.",
    secret: false,
    defaultText: 'ffdhe2048',
  }),
  GATEWAY_OPENVPN_PROCESS: defineVar({
    name: 'GATEWAY_OPENVPN_PROCESS',
    schema: z.enum(['managed', 'external']).default('managed'),
    description:
      '`managed`: the gateway starts openvpn detached (its own session) and leaves it running when it stops or crashes; the next gateway attaches to it (same config generation, live management socket) and adopts its tunnels. `external`: openvpn is started by someone else (a systemd unit, a second container) from the config the gateway writes to `<DATA_DIR>/gateway/openvpn/server.conf`; the gateway only attaches to its management socket.',
    secret: false,
    defaultText: 'managed',
  }),
  GATEWAY_OPENVPN_RESTART_MIN_INTERVAL: defineVar({
    name: 'GATEWAY_OPENVPN_RESTART_MIN_INTERVAL',
    schema: z.coerce.number().int().min(0).max(86400).default(300),
    description:
      'Seconds between two deliberate openvpn restarts (config change at start, server certificate renewal); a restart asked for sooner is deferred and logged. Every tunnel reconnects on such a restart.',
    secret: false,
    defaultText: '300',
  }),
  GATEWAY_OPENVPN_RESTART_DRAIN: defineVar({
    name: 'GATEWAY_OPENVPN_RESTART_DRAIN',
    schema: z.coerce.number().int().min(0).max(600).default(10),
    description:
      'Seconds a deliberate openvpn restart drains first: new tunnels are refused (they retry), new relayed calls get 503 gateway_stopping, calls in flight get this long to finish; then openvpn restarts and every tunnel reconnects.',
    secret: false,
    defaultText: '10',
  }),
  GATEWAY_OPENVPN_RENEG: defineVar({
    name: 'GATEWAY_OPENVPN_RENEG',
    schema: z.coerce.number().int().min(0).max(604800).default(3600),
    description:
      'openvpn `reneg-sec` on the server: seconds between TLS renegotiations of each tunnel (0 = never from the server side).',
    secret: false,
    defaultText: '3600',
  }),
  GATEWAY_OPENVPN_KEEPALIVE: defineVar({
    name: 'GATEWAY_OPENVPN_KEEPALIVE',
    schema: z.coerce.number().int().min(1).max(3600).default(10),
    description:
      'openvpn `keepalive` interval (s): pings on an idle tunnel; a tunnel is dropped after GATEWAY_OPENVPN_KEEPALIVE_TIMEOUT seconds without traffic.',
    secret: false,
    defaultText: '10',
  }),
  GATEWAY_OPENVPN_KEEPALIVE_TIMEOUT: defineVar({
    name: 'GATEWAY_OPENVPN_KEEPALIVE_TIMEOUT',
    schema: z.coerce.number().int().min(2).max(7200).default(60),
    description: 'openvpn `keepalive` timeout (s), see GATEWAY_OPENVPN_KEEPALIVE.',
    secret: false,
    defaultText: '60',
  }),
  GATEWAY_OPENVPN_HAND_WINDOW: defineVar({
    name: 'GATEWAY_OPENVPN_HAND_WINDOW',
    schema: z.coerce.number().int().min(5).max(600).default(30),
    description: 'openvpn `hand-window` (s): how long a connecting router may wait for its authorisation.',
    secret: false,
    defaultText: '30',
  }),
  GATEWAY_OPENVPN_WATCH_INTERVAL: defineVar({
    name: 'GATEWAY_OPENVPN_WATCH_INTERVAL',
    schema: z.coerce.number().int().min(1).max(60).default(2),
    description:
      'Seconds between liveness checks of an adopted openvpn (one this gateway did not start); when it is gone a new one is started.',
    secret: false,
    defaultText: '2',
  }),
  GATEWAY_SYNC_INTERVAL: defineVar({
    name: 'GATEWAY_SYNC_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(5),
    description: 'Seconds between pulls of site credentials (deltas) from the control plane into the verifier cache.',
    secret: false,
    defaultText: '5',
  }),
  GATEWAY_HEARTBEAT_INTERVAL: defineVar({
    name: 'GATEWAY_HEARTBEAT_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
    description:
      'Seconds between heartbeats (link record in Redis, heartbeat to the control plane, certificate/CRL refresh).',
    secret: false,
    defaultText: '30',
  }),
  GATEWAY_REGISTRY_TTL: defineVar({
    name: 'GATEWAY_REGISTRY_TTL',
    schema: z.coerce.number().int().min(3).max(3600).default(90),
    description:
      'TTL (s) of each tunnel record in the Redis registry; the gateway rewrites them every TTL/3 in small batches.',
    secret: false,
    defaultText: '90',
  }),
  GATEWAY_LATENCY_INTERVAL: defineVar({
    name: 'GATEWAY_LATENCY_INTERVAL',
    schema: z.coerce.number().int().min(1).max(86400).default(60),
    description: 'Seconds in which every tunnel gets one latency probe (spread evenly).',
    secret: false,
    defaultText: '60',
  }),
  GATEWAY_BYTECOUNT_INTERVAL: defineVar({
    name: 'GATEWAY_BYTECOUNT_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
    description: 'Seconds between openvpn byte counts per tunnel (management `bytecount`).',
    secret: false,
    defaultText: '30',
  }),
  GATEWAY_OUTBOX_MAX: defineVar({
    name: 'GATEWAY_OUTBOX_MAX',
    schema: z.coerce.number().int().min(100).max(10_000_000).default(100_000),
    description:
      'Tunnel events kept for the control plane while it is unreachable (a ring buffer: beyond it the oldest are dropped and counted).',
    secret: false,
    defaultText: '100000',
  }),
  GATEWAY_OUTBOX_FLUSH_INTERVAL: defineVar({
    name: 'GATEWAY_OUTBOX_FLUSH_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(1),
    description: 'Seconds between uploads of queued tunnel events to the control plane.',
    secret: false,
    defaultText: '1',
  }),
  GATEWAY_SHUTDOWN_GRACE: defineVar({
    name: 'GATEWAY_SHUTDOWN_GRACE',
    schema: z.coerce.number().int().min(0).max(300).default(5),
    description: 'On SIGTERM: seconds relayed calls in flight get to finish.',
    secret: false,
    defaultText: '5',
  }),
  GATEWAY_REDIS_PREFIX: defineVar({
    name: 'GATEWAY_REDIS_PREFIX',
    schema: z.string().min(1).max(64).default('bp:'),
    description: 'Prefix of the tunnel registry keys in Redis; must match the api (`bp:`).',
    secret: false,
    defaultText: 'bp:',
  }),
  TUNNEL_VERIFIER_KEY: defineVar({
    name: 'TUNNEL_VERIFIER_KEY',
    schema: z.string().min(32, 'must be at least 32 characters of random data').optional(),
    description:
      'HMAC key of the tunnel-secret verifiers gateways check. Generated into `<DATA_DIR>/tunnel-verifier.key` when unset; every api replica needs the same value.',
    secret: true,
    defaultText: 'generated',
  }),
  GEOIP_DATABASE: defineVar({
    name: 'GEOIP_DATABASE',
    schema: z.string().min(1).optional(),
    description:
      'Path to a MaxMind GeoLite2/GeoIP2 City database (.mmdb): new sites get the nearest healthy region by the address they onboard from. Without it the first healthy region is used.',
    secret: false,
  }),
  WORKER_HOST: defineVar({
    name: 'WORKER_HOST',
    schema: z.string().min(1).default('127.0.0.1'),
    description: 'Address of the worker health/metrics endpoint.',
    secret: false,
    defaultText: '127.0.0.1',
  }),
  WORKER_PORT: defineVar({
    name: 'WORKER_PORT',
    schema: port.default(3002),
    description: 'Worker HTTP port (health, readiness, metrics).',
    secret: false,
    defaultText: '3002',
  }),
  WORKER_CONCURRENCY: defineVar({
    name: 'WORKER_CONCURRENCY',
    schema: z.coerce.number().int().min(1).max(1000).default(16),
    description: 'Jobs one worker process runs at once (still one job at a time per site).',
    secret: false,
    defaultText: '16',
  }),
  WORKER_DRAIN_TIMEOUT: defineVar({
    name: 'WORKER_DRAIN_TIMEOUT',
    schema: z.coerce.number().int().min(0).max(3600).default(25),
    description:
      'Seconds a stopping worker (SIGTERM/SIGINT) lets its running jobs finish: it takes no new work, waits for them, releases their site locks and exits 0. Jobs still running then are handed over (another worker resumes them at their next step).',
    secret: false,
    defaultText: '25',
  }),
  SCHEDULE_RECONCILE_INTERVAL: defineVar({
    name: 'SCHEDULE_RECONCILE_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(60),
    description:
      'Worker: seconds between re-creations of its job schedulers (backups, offline sweep, region health, telemetry maintenance), so a Redis that lost them gets them back.',
    secret: false,
    defaultText: '60',
  }),
  REDIS_PREFIX: defineVar({
    name: 'REDIS_PREFIX',
    schema: z.string().min(1).max(64).default('bp:'),
    description:
      'Prefix of the Redis keys the api and the worker share (job queue, job locks, realtime events); must be the same in both and match `GATEWAY_REDIS_PREFIX`.',
    secret: false,
    defaultText: 'bp:',
  }),
  CONTROLLER_PUBLIC_URL: defineVar({
    name: 'CONTROLLER_PUBLIC_URL',
    schema: z.url().optional(),
    description:
      'Base URL routers use to reach the control plane (onboarding script, CA, poll), e.g. `https://backplane.example.com`. Default: `http://API_HOST:API_PORT`.',
    secret: false,
    defaultText: 'http://API_HOST:API_PORT',
  }),
  ONBOARDING_TOKEN_TTL: defineVar({
    name: 'ONBOARDING_TOKEN_TTL',
    schema: z.coerce
      .number()
      .int()
      .min(60)
      .max(30 * 86400)
      .default(86400),
    description: 'Seconds a one-time onboarding command stays valid.',
    secret: false,
    defaultText: '86400',
  }),
  POLL_INTERVAL: defineVar({
    name: 'POLL_INTERVAL',
    schema: z.coerce.number().int().min(5).max(3600).default(30),
    description:
      "Seconds between a router's HTTPS polls (set in the onboarding script); ~10 missed polls mean offline.",
    secret: false,
    defaultText: '30',
  }),
  BACKUP_CRON: defineVar({
    name: 'BACKUP_CRON',
    schema: z.string().min(1).default('0 3 * * *'),
    description:
      'When the worker backs up every onboarded site (cron, UTC; a BullMQ job scheduler). `off` disables scheduled backups.',
    secret: false,
    defaultText: '0 3 * * *',
  }),
  JOB_TTL: defineVar({
    name: 'JOB_TTL',
    schema: z.coerce
      .number()
      .int()
      .min(1)
      .max(30 * 24 * 3600)
      .default(24 * 3600),
    description: 'Seconds a job may wait for its site (offline, busy) before it ends as `expired`.',
    secret: false,
    defaultText: '86400',
  }),
  TELEMETRY_INTERVAL: defineVar({
    name: 'TELEMETRY_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
    description:
      'Gateway: seconds between two telemetry polls of each online site (resources, interface rates, tunnel bytes); sites are spread over the interval.',
    secret: false,
    defaultText: '30',
  }),
  TELEMETRY_ROLLUP_INTERVAL: defineVar({
    name: 'TELEMETRY_ROLLUP_INTERVAL',
    schema: z.coerce.number().int().min(1).max(3600).default(60),
    description:
      'Worker: seconds between runs of the telemetry downsampling and retention job (a BullMQ job scheduler, one worker per tick).',
    secret: false,
    defaultText: '60',
  }),
  TELEMETRY_RAW_RETENTION_HOURS: defineVar({
    name: 'TELEMETRY_RAW_RETENTION_HOURS',
    schema: z.coerce
      .number()
      .int()
      .min(2)
      .max(24 * 90)
      .default(48),
    description: 'Hours raw telemetry samples are kept (the 1 h chart reads them).',
    secret: false,
    defaultText: '48',
  }),
  TELEMETRY_5M_RETENTION_DAYS: defineVar({
    name: 'TELEMETRY_5M_RETENTION_DAYS',
    schema: z.coerce.number().int().min(1).max(365).default(8),
    description: 'Days 5-minute telemetry rollups (avg/max) are kept (the 24 h chart reads them).',
    secret: false,
    defaultText: '8',
  }),
  TELEMETRY_1H_RETENTION_DAYS: defineVar({
    name: 'TELEMETRY_1H_RETENTION_DAYS',
    schema: z.coerce.number().int().min(7).max(3650).default(90),
    description: 'Days 1-hour telemetry rollups (avg/max) are kept (the 7 d chart reads them).',
    secret: false,
    defaultText: '90',
  }),
  DEV_POSTGRES_PORT: defineVar({
    name: 'DEV_POSTGRES_PORT',
    schema: port.default(54329),
    description: '`npm start` only: port of the embedded PostgreSQL cluster (used when DATABASE_URL is unset).',
    secret: false,
    defaultText: '54329',
  }),
  DEV_REDIS_PORT: defineVar({
    name: 'DEV_REDIS_PORT',
    schema: port.default(63799),
    description: '`npm start` only: port of the private redis-server (used when REDIS_URL is unset).',
    secret: false,
    defaultText: '63799',
  }),
  SMTP_URL: defineVar({
    name: 'SMTP_URL',
    schema: z.url({ protocol: /^smtps?$/, message: 'must be smtp://[user:pass@]host[:port] or smtps://…' }).optional(),
    description:
      'Worker: SMTP server for e-mail notification channels (`smtp://user:pass@host:587` uses STARTTLS when offered, `smtps://…:465` implicit TLS). Unset: e-mail channels fail with "SMTP is not configured".',
    secret: true,
  }),
  SMTP_FROM: defineVar({
    name: 'SMTP_FROM',
    schema: z.string().min(3).default('Backplane <alerts@backplane.invalid>'),
    description: 'Worker: the From address of notification e-mails.',
    secret: false,
    defaultText: 'Backplane <alerts@backplane.invalid>',
  }),
  OUTBOUND_ALLOW_NETWORKS: defineVar({
    name: 'OUTBOUND_ALLOW_NETWORKS',
    schema: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((o) => o.trim())
          .filter((o) => o.length > 0),
      )
      .pipe(z.array(z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()]))),
    description:
      'Worker: comma-separated networks (CIDR) notification webhooks may reach although they are loopback, private, link-local, CGNAT or metadata addresses (refused by default: SSRF guard), e.g. `10.20.0.0/16` for an on-premises chat server.',
    secret: false,
    defaultText: '(none)',
  }),
  NOTIFY_POLL_INTERVAL: defineVar({
    name: 'NOTIFY_POLL_INTERVAL',
    schema: z.coerce.number().int().min(50).max(60_000).default(1000),
    description:
      'Worker: milliseconds the notification dispatcher waits between rounds when idle (events, due alerts, due deliveries).',
    secret: false,
    defaultText: '1000',
  }),
  NOTIFY_RETRY_BASE: defineVar({
    name: 'NOTIFY_RETRY_BASE',
    schema: z.coerce.number().int().min(10).max(600_000).default(10_000),
    description:
      'Worker: milliseconds before the first retry of a failed notification; each retry doubles it (±20 % jitter) up to an hour, for 24 hours. A channel failing 5 times in a row pauses for 3× this (circuit breaker, doubling up to 15 min); one failing 20 times in a row for 24 hours is disabled.',
    secret: false,
    defaultText: '10000',
  }),
  NOTIFY_LEASE: defineVar({
    name: 'NOTIFY_LEASE',
    schema: z.coerce.number().int().min(1000).max(3_600_000).default(60_000),
    description:
      'Worker: milliseconds a worker holds a notification it is sending; if it dies, another worker sends it again after this (at least once; receivers deduplicate on the event id).',
    secret: false,
    defaultText: '60000',
  }),
  TEST_DATABASE_URL: defineVar({
    name: 'TEST_DATABASE_URL',
    schema: postgresUrl.default('postgres://postgres@127.0.0.1:5432/postgres'),
    description:
      'Tests only: a PostgreSQL superuser connection; each test file gets its own database cloned from a migrated template.',
    secret: true,
    defaultText: 'postgres://postgres@127.0.0.1:5432/postgres',
  }),
  TEST_REDIS_URL: defineVar({
    name: 'TEST_REDIS_URL',
    schema: redisUrl.default('redis://127.0.0.1:6379'),
    description: 'Tests only: Redis for integration tests (each test file uses its own key prefix).',
    secret: true,
    defaultText: 'redis://127.0.0.1:6379',
  }),
} as const;

export type VarName = keyof typeof VARS;
export type VarValue<N extends VarName> = z.output<(typeof VARS)[N]['schema']>;
