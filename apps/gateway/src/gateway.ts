import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayConfig } from '@backplane/config';
import {
  gatewayKey,
  GatewayLinkClient,
  LinkError,
  type GatewayIdentity,
  type GatewayLinkRecord,
} from '@backplane/gateway-link';
import { createHttpApp, type ReadinessCheck } from '@backplane/observability';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { GatewayModule } from './gateway.module';
import { GatewayPki, missingForRealOpenVpn, startOpenVpnRuntime, type OpenVpnRuntime } from './openvpn-runtime';
import { EventOutbox } from './outbox';
import { Relay } from './relay';
import { SiteDirectory } from './site-directory';
import { TelemetryPoller } from './telemetry';
import { TunnelManager } from './tunnels';

export const GATEWAY_VERSION = '0.1.0';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly redis: Redis;
  readonly registry: Registry;
  readonly checks?: readonly ReadinessCheck[];
  /** Where the router of a site answers its API (default: its tunnel address). Fake-mode benches point at simulators. */
  readonly routerEndpoint?: (siteId: string, address: string) => { host: string; port: number };
  /** Intervals (ms), shortened by tests. */
  readonly syncIntervalMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly bytecountSeconds?: number;
  readonly registryTtlSeconds?: number;
  readonly latencyIntervalMs?: number;
  /** Real openvpn: run it under this command prefix (e.g. `ip netns exec <ns>`; tests). */
  readonly openvpnPrefix?: readonly string[];
  /** Shutdown: how long relayed calls in flight may take to finish (default 5 s). */
  readonly shutdownGraceMs?: number;
}

export interface Gateway {
  readonly app: NestFastifyApplication;
  readonly identity: GatewayIdentity;
  readonly tunnels: TunnelManager;
  readonly relay: Relay;
  readonly telemetry: TelemetryPoller;
  readonly directory: SiteDirectory;
  readonly outbox: EventOutbox;
  readonly runtime: OpenVpnRuntime;
  readonly pki: GatewayPki;
  readonly linkUrl: string;
  /** Stops accepting, ends relayed streams and lets relayed calls finish within the grace (once). */
  drain(): Promise<void>;
  /** Orderly shutdown (drain, then connections, pool; openvpn is left running with its tunnels). */
  close(): Promise<void>;
  /**
   * SIGTERM/SIGINT for a process that runs a gateway without `runApp` (tests): the first
   * one runs `close` and exits 0 (1 if it fails or outlasts `limitMs`); later ones are ignored.
   */
  exitOnSignals(close: () => Promise<void>, limitMs?: number): void;
}

const EXIT_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** `identity.json` under DATA_DIR/gateway (0600): a broken file counts as none. */
const StoredIdentity = z.object({ gatewayId: z.string().min(1), credential: z.string().min(1) });

function readIdentity(file: string): GatewayIdentity | undefined {
  try {
    const v = StoredIdentity.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return v.success ? v.data : undefined;
  } catch {
    return undefined;
  }
}

function writeIdentity(file: string, id: GatewayIdentity): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(id), { mode: 0o600 });
  renameSync(tmp, file);
}

/** True when the gateway can know who it is (identity file, credential or enrollment token). */
export function canIdentify(config: GatewayConfig): boolean {
  return Boolean(
    config.GATEWAY_CREDENTIAL ||
    config.GATEWAY_ENROLLMENT_TOKEN ||
    readIdentity(join(config.DATA_DIR, 'gateway', 'identity.json')),
  );
}

/** Who this gateway is: identity file, GATEWAY_CREDENTIAL, or a first enrollment. */
async function resolveIdentity(config: GatewayConfig, link: GatewayLinkClient, dir: string, logger: Logger) {
  const file = join(dir, 'identity.json');
  const stored = readIdentity(file);
  if (config.GATEWAY_CREDENTIAL) {
    link.setCredential(config.GATEWAY_CREDENTIAL);
    if (stored?.credential === config.GATEWAY_CREDENTIAL) return stored;
    const hb = await link.heartbeat(GATEWAY_VERSION);
    const id = { gatewayId: hb.id, credential: config.GATEWAY_CREDENTIAL };
    writeIdentity(file, id);
    return id;
  }
  if (stored) {
    link.setCredential(stored.credential);
    return stored;
  }
  if (!config.GATEWAY_ENROLLMENT_TOKEN) {
    const err = new Error(
      'gateway is not enrolled: set GATEWAY_ENROLLMENT_TOKEN (from POST /api/v1/regions/{id}/enrollment-tokens) or GATEWAY_CREDENTIAL',
    );
    err.name = 'ConfigError';
    throw err;
  }
  const id = await link.enroll(config.GATEWAY_ENROLLMENT_TOKEN, config.GATEWAY_NAME);
  writeIdentity(file, id);
  logger.info({ gatewayId: id.gatewayId }, 'gateway enrolled');
  return id;
}

/** The verifier cache: loaded from disk, synced once (a failure is survivable with a cache), then polled. */
async function startDirectory(dir: string, link: GatewayLinkClient, log: Logger, syncIntervalMs: number) {
  const directory = new SiteDirectory(join(dir, 'sites.json'), link, log.child({ component: 'sites' }));
  const cached = directory.load();
  try {
    await directory.sync();
  } catch (err) {
    if (!cached)
      log.error(
        { err },
        'no site cache and the control plane is unreachable: every tunnel is refused until a sync succeeds',
      );
  }
  directory.startPolling(syncIntervalMs);
  return directory;
}

/** Real openvpn when asked for (or when this machine can run it), else the fake management server. */
function openVpnMode(config: GatewayConfig, log: Logger): 'real' | 'fake' {
  // openvpn runs elsewhere (its own unit or container): this process needs none of it
  if (config.GATEWAY_OPENVPN_PROCESS === 'external' && config.GATEWAY_OPENVPN !== 'fake') return 'real';
  const missing = missingForRealOpenVpn();
  if (config.GATEWAY_OPENVPN === 'real') {
    if (missing.length) throw new Error(`GATEWAY_OPENVPN=real but this machine lacks ${missing.join(', ')}`);
    return 'real';
  }
  if (config.GATEWAY_OPENVPN === 'fake') return 'fake';
  if (missing.length) log.warn({ missing }, 'openvpn cannot run here: falling back to the FAKE management server');
  return missing.length ? 'fake' : 'real';
}

/**
 * The server certificate (from the control plane's CA), openvpn (or the fake) and its
 * management interface attached to the tunnel manager; on failure nothing is left running.
 */
async function startOpenVpn(
  o: GatewayOptions,
  identity: GatewayIdentity,
  link: GatewayLinkClient,
  tunnels: TunnelManager,
  log: Logger,
): Promise<{ runtime: OpenVpnRuntime; pki: GatewayPki }> {
  const { config } = o;
  const mode = openVpnMode(config, log);
  // The server certificate comes from the control plane's CA (CSR with the gateway credential).
  const pki = new GatewayPki({
    dataDir: config.DATA_DIR,
    commonName: `gw-${identity.gatewayId}`,
    source: link,
    logger: log.child({ component: 'pki' }),
  });
  try {
    await pki.ensure();
  } catch (err) {
    if (mode === 'real' && !pki.current()) throw err;
    log.warn({ err }, 'could not get a server certificate from the control plane; using the stored one (if any)');
  }
  const runtime = await startOpenVpnRuntime({
    dataDir: config.DATA_DIR,
    pki,
    name: config.GATEWAY_NAME,
    port: config.GATEWAY_OPENVPN_PORT,
    tls: { versionMin: config.GATEWAY_OPENVPN_TLS_MIN, dh: config.GATEWAY_OPENVPN_DH },
    logger: log.child({ component: 'openvpn' }),
    mode,
    ...(o.openvpnPrefix ? { prefix: o.openvpnPrefix } : {}),
    // the registry is rewritten every 30 s: fresher byte counts would be read by nobody
    bytecountSeconds: o.bytecountSeconds ?? config.GATEWAY_BYTECOUNT_INTERVAL,
    process: config.GATEWAY_OPENVPN_PROCESS,
    renegSeconds: config.GATEWAY_OPENVPN_RENEG,
    keepalive: [config.GATEWAY_OPENVPN_KEEPALIVE, config.GATEWAY_OPENVPN_KEEPALIVE_TIMEOUT],
    handWindow: config.GATEWAY_OPENVPN_HAND_WINDOW,
    restartMinIntervalMs: config.GATEWAY_OPENVPN_RESTART_MIN_INTERVAL * 1000,
    watchIntervalMs: config.GATEWAY_OPENVPN_WATCH_INTERVAL * 1000,
  });
  runtime.management.on('error', (err) => log.debug({ err: err.message }, 'management'));
  runtime.management.on('disconnected', (reason) => log.warn({ reason }, 'management interface lost; reattaching'));
  tunnels.attach(runtime.management);
  const attachTimeoutMs = 30_000;
  let attachTimer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      runtime.management.start(),
      new Promise<never>((_, reject) => {
        attachTimer = setTimeout(
          () => reject(new Error(`openvpn management interface not reachable after ${attachTimeoutMs} ms`)),
          attachTimeoutMs,
        );
      }),
    ]);
  } catch (err) {
    log.error({ openvpnLog: runtime.supervisor?.recentLines.slice(-20) }, 'openvpn did not come up');
    await runtime.stop();
    throw err;
  } finally {
    clearTimeout(attachTimer);
  }
  log.info({ mode, origin: runtime.origin, pid: runtime.pid() }, 'openvpn attached, hold released');
  return { runtime, pki };
}

function registerGauges(registry: Registry, tunnels: TunnelManager, directory: SiteDirectory): void {
  new Gauge({
    name: 'gateway_tunnels_online',
    help: 'Tunnels established on this gateway',
    registers: [registry],
    collect() {
      this.set(tunnels.online);
    },
  });
  new Gauge({
    name: 'gateway_sites_cached',
    help: 'Sites in the verifier cache',
    registers: [registry],
    collect() {
      this.set(directory.size);
    },
  });
}

function openVpnCheck(runtime: OpenVpnRuntime): ReadinessCheck {
  return {
    name: 'openvpn',
    check: () =>
      runtime.management.state === 'ready'
        ? Promise.resolve()
        : Promise.reject(new Error(`management interface ${runtime.management.state}`)),
  };
}

/**
 * Every heartbeat interval: the link record the api and the worker find this gateway by,
 * the heartbeat to the control plane, and the certificate/CRL refresh. Returns the stop.
 */
function startHeartbeat(p: {
  readonly o: GatewayOptions;
  readonly identity: GatewayIdentity;
  readonly link: GatewayLinkClient;
  readonly pki: GatewayPki;
  readonly runtime: OpenVpnRuntime;
  readonly linkUrl: string;
  readonly token: string;
  readonly log: Logger;
}): { first: Promise<void>; stop: () => void } {
  const { o, identity, link, pki, runtime, log } = p;
  const publishLink = async (): Promise<void> => {
    const rec: GatewayLinkRecord = {
      gatewayId: identity.gatewayId,
      url: p.linkUrl,
      token: p.token,
      updatedAt: new Date().toISOString(),
    };
    await o.redis.set(gatewayKey(o.config.GATEWAY_REDIS_PREFIX, identity.gatewayId), JSON.stringify(rec), 'EX', 90);
  };
  const heartbeat = async (): Promise<void> => {
    await publishLink().catch((err: unknown) => log.warn({ err }, 'gateway link record write failed'));
    await link.heartbeat(GATEWAY_VERSION).catch((err: unknown) => {
      if (err instanceof LinkError && err.status === 401)
        log.error('the control plane refused this gateway credential (revoked?)');
      else log.debug({ err }, 'heartbeat failed');
    });
    await pki
      .refresh()
      .then(async (renewed) => {
        // openvpn reads its certificate at start: a deliberate (logged, rate-limited) SIGHUP restart picks up the renewed one
        if (renewed && runtime.mode === 'real') await runtime.restart('server certificate renewed');
      })
      .catch((err: unknown) => log.warn({ err }, 'certificate/CRL refresh failed'));
  };
  const first = heartbeat();
  const timer = setInterval(
    () => void heartbeat(),
    o.heartbeatIntervalMs ?? o.config.GATEWAY_HEARTBEAT_INTERVAL * 1000,
  );
  return { first, stop: () => clearInterval(timer) };
}

/** Stop accepting, end relayed streams, let calls finish within the grace, close connections. */
function httpDrainer(app: NestFastifyApplication, relay: Relay, log: Logger, graceMs: number): () => Promise<void> {
  const server = app.getHttpAdapter().getInstance().server;
  let draining: Promise<void> | undefined;
  const drain = async (): Promise<void> => {
    if (server.listening) server.close(); // Fastify's own close later ignores ERR_SERVER_NOT_RUNNING
    const finished = await relay.drain(graceMs);
    if (finished) server.closeIdleConnections();
    else {
      log.warn({ graceMs }, 'relayed calls still running after the shutdown grace: closing their connections');
      server.closeAllConnections();
    }
    // keep-alive connections that finish a response from now on
    server.closeIdleConnections();
  };
  return () => (draining ??= drain());
}

/**
 * Starts every part of a gateway and its HTTP server (health, metrics, internal relay), in
 * order: identity, site directory, event outbox, tunnels, openvpn, relay and telemetry, the
 * HTTP app, heartbeat. `drain` ends relayed work; `close` stops everything.
 */
export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const { config, logger, redis } = o;
  const dir = join(config.DATA_DIR, 'gateway');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const link = new GatewayLinkClient(config.GATEWAY_API_URL, undefined);
  const identity = await resolveIdentity(config, link, dir, logger);
  const log = logger.child({ gatewayId: identity.gatewayId, region: config.GATEWAY_REGION });

  const directory = await startDirectory(dir, link, log, o.syncIntervalMs ?? config.GATEWAY_SYNC_INTERVAL * 1000);
  const outbox = new EventOutbox(
    (events) => link.events(events),
    log.child({ component: 'events' }),
    config.GATEWAY_OUTBOX_MAX,
  );
  outbox.start(config.GATEWAY_OUTBOX_FLUSH_INTERVAL * 1000);

  const tunnels = new TunnelManager({
    gatewayId: identity.gatewayId,
    regionSlug: config.GATEWAY_REGION,
    redis,
    redisPrefix: config.GATEWAY_REDIS_PREFIX,
    directory,
    logger: log.child({ component: 'tunnels' }),
    onEvent: (e) => outbox.push(e),
    ...(o.routerEndpoint ? { routerEndpoint: o.routerEndpoint } : {}),
    registryTtlSeconds: o.registryTtlSeconds ?? config.GATEWAY_REGISTRY_TTL,
    latencyIntervalMs: o.latencyIntervalMs ?? config.GATEWAY_LATENCY_INTERVAL * 1000,
  });

  let openvpn: { runtime: OpenVpnRuntime; pki: GatewayPki };
  try {
    openvpn = await startOpenVpn(o, identity, link, tunnels, log);
  } catch (err) {
    outbox.stop().catch(() => undefined);
    directory.stop();
    throw err;
  }
  const { runtime, pki } = openvpn;

  const token = randomBytes(32).toString('base64url');
  const linkUrl = config.GATEWAY_LINK_URL ?? `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`;
  const relay = new Relay({
    tunnels,
    logger: log.child({ component: 'relay' }),
    token,
    registry: o.registry,
    ...(o.routerEndpoint ? { routerEndpoint: o.routerEndpoint } : {}),
  });

  const telemetry = new TelemetryPoller({
    relay,
    tunnels,
    link,
    intervalMs: config.TELEMETRY_INTERVAL * 1000,
    logger: log.child({ component: 'telemetry' }),
  });

  // a deliberate openvpn restart (config change, renewed certificate) drains first
  const restartDrainMs = config.GATEWAY_OPENVPN_RESTART_DRAIN * 1000;
  runtime.onRestart(async (reason) => {
    tunnels.beginRestart(reason);
    const finished = await relay.pause(reason, restartDrainMs);
    log.warn(
      { reason, drainMs: restartDrainMs, relayedCallsFinished: finished },
      finished
        ? 'openvpn restart: drained (no relayed call in flight)'
        : 'openvpn restart: relayed calls still running after the drain; restarting anyway',
    );
    return () => {
      relay.resume();
      tunnels.endRestart();
    };
  });

  registerGauges(o.registry, tunnels, directory);
  let stopParts: () => Promise<void> = () => Promise.resolve();
  const app = await createHttpApp(
    GatewayModule.register({
      checks: [...(o.checks ?? []), openVpnCheck(runtime)],
      registry: o.registry,
      shutdown: () => stopParts(),
    }),
    { logger: log, requestLogLevel: o.config.LOG_REQUEST_LEVEL },
  );
  relay.register(app.getHttpAdapter().getInstance());
  await app.init();

  const heartbeat = startHeartbeat({ o, identity, link, pki, runtime, linkUrl, token, log });
  await heartbeat.first;
  telemetry.start();

  const drain = httpDrainer(app, relay, log, o.shutdownGraceMs ?? config.GATEWAY_SHUTDOWN_GRACE * 1000);
  let stopping: Promise<void> | undefined;
  const doStop = async (): Promise<void> => {
    log.info('gateway stopping: relayed streams end, calls in flight get a grace period');
    await drain();
    heartbeat.stop();
    directory.stop();
    tunnels.stop();
    await telemetry.stop();
    await relay.close();
    await outbox.stop();
    await link.close();
    // openvpn keeps running with every tunnel; the next gateway attaches to it (ADR 0062)
    await runtime.detach();
    await redis.del(gatewayKey(config.GATEWAY_REDIS_PREFIX, identity.gatewayId)).catch(() => undefined);
    log.info('gateway stopped');
  };
  // Nest calls this on app.close().
  stopParts = () => (stopping ??= doStop());
  return {
    app,
    identity,
    tunnels,
    relay,
    telemetry,
    directory,
    outbox,
    runtime,
    pki,
    linkUrl,
    drain,
    close: () => app.close(),
    exitOnSignals(close, limitMs = 9000) {
      let received = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (received) {
          log.warn({ signal }, 'already stopping');
          return;
        }
        received = true;
        log.info({ signal }, 'signal received: stopping the gateway');
        setTimeout(() => {
          log.error({ limitMs }, 'the gateway did not stop in time: exiting');
          process.exit(1);
        }, limitMs).unref();
        close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'gateway shutdown failed');
            process.exit(1);
          },
        );
      };
      for (const s of EXIT_SIGNALS) process.on(s, onSignal);
    },
  };
}
