/**
 * Realtime messages between the api (socket.io, Redis adapter) and portal clients.
 *
 * Connection: socket.io at path `/realtime`, `auth: { token }` with the same access token
 * (or API key) the REST API takes, plus `tenantId` to pick the tenant room. The server
 * joins the socket to `tenant:<tenantId>` after checking the membership.
 *
 * Tenant events ({@link TenantEvent}) carry a per-tenant sequence number. A client keeps
 * the highest `seq` it has applied and sends it as `auth.lastSeq` (or with `resume`) when
 * it reconnects: the server replays what it missed from a bounded backlog, or answers
 * `resync` when the backlog no longer reaches back that far (then the client reloads over
 * REST). So no status change is lost to a reconnect.
 *
 * Site streams (traffic, logs, telemetry) are ephemeral: no sequence numbers, room
 * `site:<siteId>:<stream>`; the api starts the underlying RouterOS stream with the first
 * subscriber and stops it after the last one leaves.
 */

/** Socket.io path the api serves realtime on. */
/**
 * `unknown`: a command was sent, the run was interrupted, and its effect could not be
 * verified on the router (never reported as `succeeded`; docs/adr/0057). `reverted`: the change
 * cut the router off and the router took it back by itself (commit-confirm, docs/adr/0085).
 */
export const JOB_STATES = [
  'queued',
  'waiting',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'expired',
  'unknown',
  'reverted',
] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = [
  'succeeded',
  'failed',
  'cancelled',
  'expired',
  'unknown',
  'reverted',
];

export const REALTIME_PATH = '/realtime';

export const tenantRoom = (tenantId: string): string => `tenant:${tenantId}`;
/**
 * Per-job detail (`job` socket event, every state and step change) goes only to sockets that
 * watch the job or its site (`watch`). The rooms are under the tenant, so a socket can only
 * ever join its own tenant's (docs/adr/0079-coalesced-job-events.md).
 */
export const jobWatchRoom = (tenantId: string, jobId: string): string => `tenant:${tenantId}:job:${jobId}`;
export const siteJobsWatchRoom = (tenantId: string, siteId: string): string => `tenant:${tenantId}:site:${siteId}:jobs`;
export const siteStreamRoom = (siteId: string, stream: SiteStreamKind): string => `site:${siteId}:${stream}`;

/** What a site's tunnel and router look like now, as the fleet list shows it. */
export interface SiteStatusData {
  readonly siteId: string;
  readonly online: boolean;
  /** `online`, `degraded` (polls but no tunnel), `offline`, `pending` (never seen). */
  readonly health?: 'online' | 'degraded' | 'offline' | 'pending';
  readonly address?: string;
  readonly gatewayId?: string;
  readonly sourceIp?: string;
  readonly connectedSince?: string | null;
  /** Why it went offline (tunnel teardown reason, gateway lost…). */
  readonly reason?: string;
}

export interface JobProgressData {
  readonly jobId: string;
  readonly siteId: string;
  readonly batchId?: string | null;
  readonly kind: string;
  /** queued | waiting | running | succeeded | failed | cancelled | expired */
  readonly state: string;
  /** Name of the step running or just finished. */
  readonly step?: string;
  /**
   * Per-job detail only (`job` socket event, coalesced per interval; ADR 0079): every step
   * recorded since the previous detail of this job, in order.
   */
  readonly steps?: readonly string[];
  /** 0..1 when known. */
  readonly progress?: number;
  readonly error?: string;
}

/**
 * `job.batch`: what the jobs of one batch did in the last interval (ADR 0079): one event per
 * batch per interval instead of a `job.progress` per job per step to every socket.
 */
export interface JobBatchProgressData {
  readonly batchId: string;
  readonly kind: string;
  /** How many of the batch's jobs changed state in the interval. */
  readonly changed: number;
  /** The states those jobs reached in the interval, counted (a job counts once, its last state). */
  readonly states: Readonly<Partial<Record<JobState, number>>>;
}

export interface SiteChangedData {
  readonly siteId: string;
  /** `created`, `updated` (name, tags, router facts), `deleted`. */
  readonly change: 'created' | 'updated' | 'deleted';
}

export interface BackupCreatedData {
  readonly siteId: string;
  readonly backupId: string;
  /** False when the export equalled the previous one (deduplicated). */
  readonly changed: boolean;
}

/** Every sequenced tenant event type and its payload. */
export interface TenantEventMap {
  'site.status': SiteStatusData;
  'site.changed': SiteChangedData;
  'job.progress': JobProgressData;
  'job.batch': JobBatchProgressData;
  'backup.created': BackupCreatedData;
  'rollout.progress': RolloutProgressData;
  'alert.changed': AlertChangedData;
}

/**
 * `alert.changed`: an alert opened, fired, resolved or was muted (worker's alert engine, after
 * its transaction commits; docs/adr/0093). The portal's alerts page and fleet badges refetch.
 */
export interface AlertChangedData {
  readonly alertId: string;
  readonly state: 'pending' | 'firing' | 'resolved';
  readonly siteId?: string | null;
  readonly severity?: string;
}

/**
 * `rollout.progress`: a rollout's state and per-wave counts, at most once per rollout per
 * tick of the worker's `rollouts` schedule, and on every pause, resume and abort (ADR 0096).
 */
export interface RolloutProgressData {
  readonly rolloutId: string;
  readonly state: string;
  /** 0-based index of the wave started last (-1 before the first). */
  readonly wave: number;
  readonly waves: number;
  readonly total: number;
  /** Sites whose job succeeded, failed (any other end), or is still open. */
  readonly succeeded: number;
  readonly failed: number;
  readonly open: number;
  readonly reason?: string | null;
}

export type TenantEventType = keyof TenantEventMap;

/** What a publisher hands over; the sequence number and time are assigned on publish. */
export type TenantEventInput = {
  [K in TenantEventType]: { readonly type: K; readonly data: TenantEventMap[K] };
}[TenantEventType];

/** Socket.io event `event`, sent to `tenant:<tenantId>`. */
export type TenantEvent = TenantEventInput & {
  readonly tenantId: string;
  /** Per-tenant, strictly increasing, starting at 1. */
  readonly seq: number;
  readonly at: string;
};

/** Publishes tenant events (api, worker); implemented over Redis so every replica delivers. */
export interface RealtimeSink {
  publish(tenantId: string, event: TenantEventInput): Promise<void>;
}

export type SiteStreamKind = 'traffic' | 'logs' | 'telemetry';

/** One `monitor-traffic` reading of one interface, bits per second. */
export interface TrafficSample {
  readonly interface: string;
  readonly rxBps: number;
  readonly txBps: number;
  readonly rxPps?: number;
  readonly txPps?: number;
}

/** One log line as `/log listen` gives it. */
export interface LogLine {
  readonly time: string;
  readonly topics: string;
  readonly message: string;
}

/** One telemetry poll of a site by its gateway (also stored; see the telemetry endpoints). */
export interface TelemetrySample {
  readonly siteId: string;
  readonly at: string;
  /** Percent 0..100. */
  readonly cpuLoad: number | null;
  readonly memoryUsed: number | null;
  readonly memoryTotal: number | null;
  readonly uptimeSeconds: number | null;
  /** Tunnel byte counters from OpenVPN (`bytecount`). */
  readonly tunnelBytesIn: number | null;
  readonly tunnelBytesOut: number | null;
  readonly latencyMs: number | null;
  /** `/system/health` temperature, °C (absent from gateways before ADR 0104, null without a sensor). */
  readonly temperatureC?: number | null;
  /** Enabled interfaces whose `running` flag is false (absent from gateways before ADR 0104). */
  readonly interfacesDown?: number | null;
  /** Rates computed from successive interface counters, bits per second. */
  readonly interfaces: readonly { readonly name: string; readonly rxBps: number; readonly txBps: number }[];
}

// The gateway <-> api telemetry messages (batches, targets) are in @backplane/gateway-link.

/** Server -> client socket.io events. */
export interface RealtimeServerEvents {
  event: (e: TenantEvent) => void;
  /** The backlog does not reach back to the client's `lastSeq`: reload over REST, then continue from `seq`. */
  resync: (r: { readonly tenantId: string; readonly seq: number }) => void;
  /** Rows of a site stream the client subscribed to. */
  traffic: (s: { readonly siteId: string; readonly at: string; readonly samples: readonly TrafficSample[] }) => void;
  logs: (s: { readonly siteId: string; readonly lines: readonly LogLine[] }) => void;
  telemetry: (s: TelemetrySample) => void;
  /** Detail of one job (state, step, progress), to sockets that `watch` the job or its site; not sequenced. */
  job: (d: JobProgressData) => void;
  /** A stream could not start or ended (site offline, router error, permission). */
  'stream.error': (e: { readonly siteId: string; readonly stream: SiteStreamKind; readonly message: string }) => void;
}

export type Ack<T> = (
  reply: { readonly ok: true; readonly data: T } | { readonly ok: false; readonly error: string },
) => void;

/** Client -> server socket.io events (all acknowledged). */
export interface RealtimeClientEvents {
  resume: (req: { readonly lastSeq: number }, ack: Ack<{ readonly replayed: number }>) => void;
  subscribe: (
    req: { readonly siteId: string; readonly stream: SiteStreamKind; readonly interface?: string },
    ack: Ack<null>,
  ) => void;
  unsubscribe: (req: { readonly siteId: string; readonly stream: SiteStreamKind }, ack: Ack<null>) => void;
  /** Per-job detail (`job` events) of one job or of every job of one site. */
  watch: (req: JobWatch, ack: Ack<null>) => void;
  unwatch: (req: JobWatch, ack: Ack<null>) => void;
}

/** What a socket watches for per-job detail: one job, or every job of one site. */
export type JobWatch = { readonly jobId: string } | { readonly siteId: string };

/** `auth` object of the socket.io handshake. */
export interface RealtimeAuth {
  readonly token: string;
  readonly tenantId: string;
  /** Highest `seq` the client applied; 0 or absent on a first connect. */
  readonly lastSeq?: number;
}

/** `GET /api/v1/sites/{id}/telemetry?range=1h|24h|7d`: stored samples, downsampled to `stepSeconds`. */
export type TelemetryRange = '1h' | '24h' | '7d';

export interface TelemetryPoint {
  readonly at: string;
  readonly cpuLoad: number | null;
  readonly memoryUsed: number | null;
  readonly memoryTotal: number | null;
  readonly latencyMs: number | null;
  /** Sum over the site's interfaces, bits per second. */
  readonly rxBps: number | null;
  readonly txBps: number | null;
  readonly tunnelBytesIn: number | null;
  readonly tunnelBytesOut: number | null;
  /** Highest value inside the bucket (rollups keep avg and max). */
  readonly cpuLoadMax?: number | null;
  readonly rxBpsMax?: number | null;
  readonly txBpsMax?: number | null;
  /** Raw samples in the bucket. */
  readonly samples?: number;
}

export interface TelemetryHistory {
  readonly siteId: string;
  readonly range: TelemetryRange;
  readonly stepSeconds: number;
  readonly points: readonly TelemetryPoint[];
  /** Per-interface rates over the same buckets. */
  readonly interfaces: Readonly<
    Record<string, readonly { readonly at: string; readonly rxBps: number; readonly txBps: number }[]>
  >;
}
