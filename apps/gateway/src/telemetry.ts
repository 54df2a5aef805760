import { createHash } from 'node:crypto';
import type { TelemetrySample } from '@backplane/contracts';
import { LinkError, type GatewayLinkClient, type RelayRequest, type TelemetryTarget } from '@backplane/gateway-link';
import type { Logger } from 'pino';
import { toFailure, type Relay } from './relay';
import type { TunnelManager } from './tunnels';

// ---------------------------------------------------------------------------------------
// Parsers for what the router replies (strings); anything implausible becomes null.
// ---------------------------------------------------------------------------------------

const UNIT_SECONDS: Record<string, number> = { w: 604_800, d: 86_400, h: 3600, m: 60, s: 1, ms: 0.001 };

/**
 * A RouterOS duration in seconds: `1w2d3h4m5s`, `4m5s`, `5s`, `1s250ms`, also the
 * clock-style tail older versions print (`1w2d03:04:05`, `03:04:05`). Null when the text
 * is not a duration.
 */
export function parseRouterOsDuration(text: string): number | null {
  const t = text.trim();
  if (t === '' || t.length > 64) return null;
  const clock = /^((?:\d+[wd])*)(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(t);
  let rest = t;
  let total = 0;
  if (clock) {
    const [, prefix, hh, mm, ss, frac] = clock;
    if (Number(mm) > 59 || Number(ss) > 59) return null;
    total = Number(hh) * 3600 + Number(mm) * 60 + Number(ss) + (frac ? Number(`0.${frac}`) : 0);
    rest = prefix ?? '';
    if (rest === '') return total;
  }
  const re = /(\d+)(ms|w|d|h|m|s)/y;
  let pos = 0;
  const seen = new Set<string>();
  while (pos < rest.length) {
    re.lastIndex = pos;
    const m = re.exec(rest);
    if (!m) return null;
    const unit = m[2]!;
    if (seen.has(unit)) return null;
    seen.add(unit);
    total += Number(m[1]) * UNIT_SECONDS[unit]!;
    pos = re.lastIndex;
  }
  return Number.isFinite(total) ? total : null;
}

/** A non-negative integer counter from its decimal text (RouterOS counters are 64-bit). */
export function parseCounter(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,20}$/.test(text)) return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

export interface Resources {
  readonly cpuLoad: number | null;
  readonly memoryUsed: number | null;
  readonly memoryTotal: number | null;
  readonly uptimeSeconds: number | null;
}

/** `/system/resource/print` row -> resources; each field null when missing or implausible. */
export function parseResources(row: Readonly<Record<string, string>> | undefined): Resources {
  const cpu = parseCounter(row?.['cpu-load']);
  const free = parseCounter(row?.['free-memory']);
  const total = parseCounter(row?.['total-memory']);
  const uptime = row?.['uptime'] === undefined ? null : parseRouterOsDuration(row['uptime']);
  const memoryOk = free !== null && total !== null && total > 0 && free <= total;
  return {
    cpuLoad: cpu !== null && cpu <= 100 ? cpu : null,
    memoryUsed: memoryOk ? total - free : null,
    memoryTotal: memoryOk ? total : null,
    uptimeSeconds: uptime === null ? null : Math.floor(uptime),
  };
}

export interface InterfaceCounters {
  readonly name: string;
  readonly rxByte: number;
  readonly txByte: number;
}

/** `/interface/print stats` rows -> byte counters (rows without a name or counters are skipped). */
export function parseInterfaceCounters(rows: readonly Readonly<Record<string, string>>[]): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  const names = new Set<string>();
  for (const r of rows) {
    const name = r['name'];
    const rx = parseCounter(r['rx-byte']);
    const tx = parseCounter(r['tx-byte']);
    if (!name || name.length > 128 || rx === null || tx === null || names.has(name)) continue;
    names.add(name);
    out.push({ name, rxByte: rx, txByte: tx });
  }
  return out;
}

/** Enabled interfaces whose `running` flag is false in `/interface/print` rows. */
export function countInterfacesDown(rows: readonly Readonly<Record<string, string>>[]): number {
  return rows.filter((r) => r['running'] === 'false' && r['disabled'] !== 'true').length;
}

/**
 * `/system/health/print` -> temperature in °C: RouterOS 7 prints one row per sensor (`name`
 * `temperature` or `cpu-temperature`, `value`), RouterOS 6 one row of properties. Null
 * without a sensor (many models have none) or for an implausible value.
 */
export function parseTemperature(rows: readonly Readonly<Record<string, string>>[]): number | null {
  const pick = (v: string | undefined): number | null => {
    if (v === undefined || !/^-?\d{1,3}(\.\d+)?$/.test(v)) return null;
    const n = Number(v);
    return n >= -100 && n <= 300 ? n : null;
  };
  for (const name of ['temperature', 'cpu-temperature']) {
    const sensor = rows.find((r) => r['name'] === name);
    const v = sensor ? pick(sensor['value']) : pick(rows.find((r) => r[name] !== undefined)?.[name]);
    if (v !== null) return v;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Rates from successive counters.
// ---------------------------------------------------------------------------------------

/** Above this a computed rate is a glitch, not traffic (400 Gbit/s). */
export const MAX_RATE_BPS = 400e9;
const WRAP32 = 2 ** 32;

/** One reading of a site's counters: gateway time (ms), router uptime and byte counters. */
export interface CounterReading {
  readonly atMs: number;
  readonly uptimeSeconds: number | null;
  readonly interfaces: readonly InterfaceCounters[];
}

function delta(prev: number, cur: number): number | null {
  if (cur >= prev) return cur - prev;
  // a 32-bit counter that wrapped (older devices); a 64-bit one never does in practice
  if (prev < WRAP32 && cur < WRAP32 && prev >= WRAP32 / 2) return cur + WRAP32 - prev;
  return null; // reset (counters cleared, interface re-created)
}

/**
 * Bits per second per interface between two readings. No rate for an interface that is new,
 * whose counter went backwards (reset) or whose rate is absurd; none at all after a reboot
 * (uptime went backwards) or when time did not advance.
 */
export function ratesBetween(
  prev: CounterReading | undefined,
  cur: CounterReading,
): { name: string; rxBps: number; txBps: number }[] {
  if (!prev) return [];
  const seconds = (cur.atMs - prev.atMs) / 1000;
  if (!(seconds > 0.05)) return [];
  if (prev.uptimeSeconds !== null && cur.uptimeSeconds !== null && cur.uptimeSeconds < prev.uptimeSeconds) return [];
  const before = new Map(prev.interfaces.map((i) => [i.name, i]));
  const out: { name: string; rxBps: number; txBps: number }[] = [];
  for (const i of cur.interfaces) {
    const p = before.get(i.name);
    if (!p) continue;
    const rx = delta(p.rxByte, i.rxByte);
    const tx = delta(p.txByte, i.txByte);
    if (rx === null || tx === null) continue;
    const rxBps = Math.round((rx * 8) / seconds);
    const txBps = Math.round((tx * 8) / seconds);
    if (rxBps > MAX_RATE_BPS || txBps > MAX_RATE_BPS) continue;
    out.push({ name: i.name, rxBps, txBps });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The poller.
// ---------------------------------------------------------------------------------------

export interface TelemetryPollerOptions {
  readonly relay: Relay;
  readonly tunnels: TunnelManager;
  /** The control-plane link (targets and samples), with this gateway's credential. */
  readonly link: Pick<GatewayLinkClient, 'telemetryTargets' | 'telemetry'>;
  readonly logger: Logger;
  /** One poll of every online site per interval. */
  readonly intervalMs: number;
  /** Polls in flight at once on this gateway (default 32). */
  readonly concurrency?: number;
  /** Samples per POST (default 500, the api's limit). */
  readonly batchSize?: number;
  /** Samples kept while the control plane is unreachable (default 20,000; oldest dropped). */
  readonly maxBuffered?: number;
  /** Per command (default: half the interval, at least 2 s, at most 15 s). */
  readonly timeoutMs?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

const RESOURCE_PROPS = ['cpu-load', 'free-memory', 'total-memory', 'uptime'];
const INTERFACE_PROPS = ['name', 'rx-byte', 'tx-byte', 'running', 'disabled'];
const HEALTH_PROPS = ['name', 'value', 'temperature', 'cpu-temperature'];

/** Stable offset of a site inside the interval (0..1), so sites are spread, not bunched. */
export function siteOffset(siteId: string): number {
  return createHash('sha1').update(siteId).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * Polls every online site on this gateway once per interval: `/system/resource/print`,
 * `/interface/print stats` and `/system/health/print` (temperature; ADR 0104) over the relay's pooled connection (so its per-site concurrency
 * and rate limits apply, and a site whose connection is busy with user calls is skipped
 * this round), tunnel bytes and latency from the tunnel registry. Sites are spread over the
 * interval by a hash of their id; at most `concurrency` polls run at once. Samples go to the
 * control plane in batches. The list of sites and their router credentials comes from the
 * control plane (`GET /api/v1/gateway/telemetry/targets`) and is kept in memory only.
 */
export class TelemetryPoller {
  private targets = new Map<string, TelemetryTarget>();
  private targetsAt = 0;
  private readonly last = new Map<string, CounterReading>();
  private readonly inFlight = new Set<string>();
  private buffer: TelemetrySample[] = [];
  private active = 0;
  private readonly slots: (() => void)[] = [];
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private flushing: Promise<void> | undefined;
  readonly counters = { rounds: 0, polls: 0, samples: 0, skippedBusy: 0, errors: 0, sent: 0, dropped: 0 };
  private readonly now: () => number;

  constructor(private readonly o: TelemetryPollerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    while (this.active > 0) await this.sleep(20);
    await this.flush().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    let flushAt = this.now();
    while (!this.stopped) {
      const start = this.now();
      this.counters.rounds++;
      await this.refreshTargets();
      const sites = [...this.targets.values()]
        .filter((t) => this.o.tunnels.tunnelOf(t.siteId))
        .map((t) => ({ t, at: start + siteOffset(t.siteId) * this.o.intervalMs }))
        .sort((a, b) => a.at - b.at);
      for (const { t, at } of sites) {
        if (this.stopped) break;
        // sites due within the next 50 ms start together: one timer per slice, not per site
        const wait = at - this.now();
        if (wait > 50) await this.sleep(wait);
        if (this.now() - flushAt >= Math.min(this.o.intervalMs, 5000)) {
          flushAt = this.now();
          void this.flush();
        }
        if (this.inFlight.has(t.siteId)) continue; // last round's poll still running
        await this.slot();
        this.inFlight.add(t.siteId);
        void this.pollOne(t)
          .catch((err: unknown) => this.o.logger.warn({ err, siteId: t.siteId }, 'telemetry poll crashed'))
          .finally(() => {
            this.inFlight.delete(t.siteId);
            this.release();
          });
      }
      const rest = start + this.o.intervalMs - this.now();
      if (rest > 0 && !this.stopped) await this.sleep(rest);
      flushAt = this.now();
      void this.flush();
    }
  }

  private slot(): Promise<void> {
    if (this.active < (this.o.concurrency ?? 32)) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.slots.push(() => {
        this.active++;
        resolve();
      }),
    );
  }

  private release(): void {
    this.active--;
    this.slots.shift()?.();
  }

  /** New list every round; on failure the previous one serves for up to 10 intervals. */
  private async refreshTargets(): Promise<void> {
    try {
      const body = await this.o.link.telemetryTargets();
      const next = new Map<string, TelemetryTarget>();
      for (const t of body.targets) next.set(t.siteId, t);
      this.targets = next;
      this.targetsAt = this.now();
      for (const siteId of this.last.keys()) if (!next.has(siteId)) this.last.delete(siteId);
    } catch (err) {
      this.o.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'telemetry targets not refreshed');
      if (this.now() - this.targetsAt > 10 * this.o.intervalMs) this.targets.clear();
    }
  }

  private timeoutMs(): number {
    return this.o.timeoutMs ?? Math.min(15_000, Math.max(2000, this.o.intervalMs / 2));
  }

  /** One site: resources and counters (when the router answers), tunnel bytes and latency. */
  async pollOne(target: TelemetryTarget): Promise<TelemetrySample | undefined> {
    const { siteId, credentials } = target;
    if (!this.o.tunnels.tunnelOf(siteId)) return undefined;
    this.counters.polls++;
    let resources: Resources = { cpuLoad: null, memoryUsed: null, memoryTotal: null, uptimeSeconds: null };
    let interfaces: { name: string; rxBps: number; txBps: number }[] = [];
    let temperatureC: number | null = null;
    let interfacesDown: number | null = null;
    // Leave the pooled connection to user calls when they keep it busy.
    // (a connect still pending or failed counts as not busy: the calls below report it)
    if ((await this.o.relay.inFlight(siteId).catch(() => 0)) >= 4) {
      this.counters.skippedBusy++;
      return undefined;
    }
    const call = (command: string, proplist: string[], attributes?: Record<string, string>): RelayRequest => ({
      credentials,
      command,
      proplist,
      timeoutMs: this.timeoutMs(),
      ...(attributes ? { attributes } : {}),
    });
    try {
      const [res, ifs, health] = await Promise.all([
        this.o.relay.call(siteId, call('/system/resource/print', RESOURCE_PROPS)),
        this.o.relay.call(siteId, call('/interface/print', INTERFACE_PROPS, { stats: '' })),
        // No health menu (CHR, old models) is no temperature, not a failed poll.
        this.o.relay.call(siteId, call('/system/health/print', HEALTH_PROPS)).catch(() => ({ rows: [] })),
      ]);
      const atMs = this.now();
      resources = parseResources(res.rows[0]);
      temperatureC = parseTemperature(health.rows);
      interfacesDown = countInterfacesDown(ifs.rows);
      const reading: CounterReading = {
        atMs,
        uptimeSeconds: resources.uptimeSeconds,
        interfaces: parseInterfaceCounters(ifs.rows),
      };
      interfaces = ratesBetween(this.last.get(siteId), reading);
      this.last.set(siteId, reading);
    } catch (err) {
      const f = toFailure(err);
      if (f.code === 'site_offline') return undefined;
      this.counters.errors++;
      this.last.delete(siteId);
      if (f.code === 'rate_limited') return undefined;
      this.o.logger.debug({ siteId, code: f.code, err: f.message }, 'telemetry poll failed');
    }
    const tunnel = this.o.tunnels.tunnelOf(siteId);
    if (!tunnel) return undefined;
    const sample: TelemetrySample = {
      siteId,
      at: new Date(this.now()).toISOString(),
      ...resources,
      tunnelBytesIn: tunnel.bytesIn,
      tunnelBytesOut: tunnel.bytesOut,
      latencyMs: tunnel.latencyMs === null ? null : Math.round(tunnel.latencyMs * 100) / 100,
      temperatureC,
      interfacesDown,
      interfaces,
    };
    this.counters.samples++;
    this.buffer.push(sample);
    this.trim();
    if (this.buffer.length >= (this.o.batchSize ?? 500)) void this.flush();
    return sample;
  }

  /** Drops the oldest samples beyond `maxBuffered` (counted). */
  private trim(): void {
    const over = this.buffer.length - (this.o.maxBuffered ?? 20_000);
    if (over <= 0) return;
    this.counters.dropped += over;
    this.buffer.splice(0, over);
  }

  /**
   * Sends what is buffered, batch by batch. The batch in flight is out of the buffer (so
   * samples polled meanwhile, and the oldest-first trimming, never touch it); it goes back
   * to the front when the control plane did not take it (unreachable, 5xx, 408, 429) and is
   * dropped when it was refused (other 4xx: retrying cannot help).
   */
  flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    const size = this.o.batchSize ?? 500;
    while (this.buffer.length) {
      const batch = this.buffer.splice(0, size);
      try {
        await this.o.link.telemetry(batch);
        this.counters.sent += batch.length;
      } catch (err) {
        const status = err instanceof LinkError ? err.status : undefined;
        if (status !== undefined && status >= 200 && status < 300) {
          // taken, but the answer did not parse: counted as sent (resending would duplicate nothing useful)
          this.counters.sent += batch.length;
          this.o.logger.warn({ err: (err as Error).message }, 'telemetry batch taken; its answer did not parse');
        } else if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
          this.counters.dropped += batch.length;
          this.o.logger.error({ status, err: (err as Error).message }, 'telemetry batch refused: dropped');
        } else {
          this.buffer.unshift(...batch);
          this.trim();
          this.o.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'telemetry batch not sent');
          return;
        }
      }
    }
  }
}
