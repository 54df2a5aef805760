import fc from 'fast-check';
import type { TelemetrySample } from '@backplane/contracts';
import { LinkError } from '@backplane/gateway-link';
import { createLogger } from '@backplane/observability';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Relay } from './relay';
import type { TunnelManager } from './tunnels';
import {
  countInterfacesDown,
  MAX_RATE_BPS,
  parseCounter,
  parseInterfaceCounters,
  parseResources,
  parseRouterOsDuration,
  parseTemperature,
  ratesBetween,
  siteOffset,
  TelemetryPoller,
  type CounterReading,
} from './telemetry';

/** How RouterOS prints a duration: units from weeks down, zero parts left out (`0s` for nothing). */
function formatDuration(seconds: number): string {
  let rest = seconds;
  let out = '';
  for (const [unit, size] of [
    ['w', 604_800],
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) out += `${n}${unit}`;
  }
  return out || '0s';
}

describe('RouterOS duration parser', () => {
  it('reads every duration RouterOS prints back to its seconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 * 365 * 86_400 }), (s) => {
        expect(parseRouterOsDuration(formatDuration(s))).toBe(s);
      }),
    );
  });

  it('reads the clock-style tail of older versions and milliseconds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 59 }),
        (w, d, h, m, s) => {
          const pad = (n: number) => String(n).padStart(2, '0');
          const text = `${w ? `${w}w` : ''}${d ? `${d}d` : ''}${pad(h)}:${pad(m)}:${pad(s)}`;
          expect(parseRouterOsDuration(text)).toBe(w * 604_800 + d * 86_400 + h * 3600 + m * 60 + s);
        },
      ),
    );
    expect(parseRouterOsDuration('1s250ms')).toBeCloseTo(1.25);
    expect(parseRouterOsDuration('1w2d3h4m5s')).toBe(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5);
  });

  it('refuses text that is not a duration', () => {
    for (const bad of ['', 'abc', '5', '5x', '1h1h', 's5', '-5s', '1d 2h', '12:61:00', '1h:2:3', 'NaNs']) {
      expect(parseRouterOsDuration(bad), bad).toBeNull();
    }
    fc.assert(
      fc.property(fc.string(), (text) => {
        const v = parseRouterOsDuration(text);
        expect(v === null || (Number.isFinite(v) && v >= 0)).toBe(true);
      }),
    );
  });
});

describe('health and link state replies (ADR 0104)', () => {
  it('reads the temperature from RouterOS 7 sensor rows and the RouterOS 6 property row', () => {
    expect(
      parseTemperature([
        { name: 'voltage', value: '24.1', type: 'V' },
        { name: 'temperature', value: '43', type: 'C' },
      ]),
    ).toBe(43);
    expect(parseTemperature([{ name: 'cpu-temperature', value: '61.5', type: 'C' }])).toBe(61.5);
    expect(parseTemperature([{ voltage: '24.1', temperature: '39' }])).toBe(39);
    expect(parseTemperature([])).toBeNull(); // no sensor
    expect(parseTemperature([{ name: 'temperature', value: 'n/a' }])).toBeNull();
    expect(parseTemperature([{ temperature: '9999' }])).toBeNull();
  });

  it('counts enabled interfaces that are not running', () => {
    expect(
      countInterfacesDown([
        { name: 'ether1', running: 'true', disabled: 'false' },
        { name: 'ether2', running: 'false', disabled: 'false' },
        { name: 'ether3', running: 'false', disabled: 'true' },
        { name: 'ether4' },
      ]),
    ).toBe(1);
  });
});

describe('resource and interface replies', () => {
  it('turns a resource row into load, memory used/total and uptime; implausible fields become null', () => {
    expect(parseResources({ 'cpu-load': '12', 'free-memory': '1000', 'total-memory': '4000', uptime: '1d2h' })).toEqual(
      { cpuLoad: 12, memoryUsed: 3000, memoryTotal: 4000, uptimeSeconds: 93_600 },
    );
    expect(
      parseResources({ 'cpu-load': '140', 'free-memory': '5000', 'total-memory': '4000', uptime: 'soon' }),
    ).toEqual({ cpuLoad: null, memoryUsed: null, memoryTotal: null, uptimeSeconds: null });
    expect(parseResources(undefined).cpuLoad).toBeNull();
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('cpu-load', 'free-memory', 'total-memory', 'uptime'), fc.string()),
        (row) => {
          const r = parseResources(row);
          if (r.cpuLoad !== null) expect(r.cpuLoad >= 0 && r.cpuLoad <= 100).toBe(true);
          if (r.memoryUsed !== null) expect(r.memoryUsed >= 0 && r.memoryUsed <= r.memoryTotal!).toBe(true);
          if (r.uptimeSeconds !== null) expect(r.uptimeSeconds >= 0).toBe(true);
        },
      ),
    );
  });

  it('keeps interfaces with a name and both counters, once each', () => {
    expect(
      parseInterfaceCounters([
        { name: 'ether1', 'rx-byte': '100', 'tx-byte': '50' },
        { name: 'ether1', 'rx-byte': '1', 'tx-byte': '1' },
        { name: 'ether2', 'rx-byte': '-1', 'tx-byte': '5' },
        { 'rx-byte': '1', 'tx-byte': '1' },
        { name: 'wlan1', 'rx-byte': '7', 'tx-byte': '8' },
      ]),
    ).toEqual([
      { name: 'ether1', rxByte: 100, txByte: 50 },
      { name: 'wlan1', rxByte: 7, txByte: 8 },
    ]);
    expect(parseCounter('18446744073709551615')).toBe(2 ** 64);
    expect(parseCounter('1e5')).toBeNull();
  });
});

describe('rates from successive counters', () => {
  const reading = (atMs: number, uptime: number | null, rx: number, tx: number): CounterReading => ({
    atMs,
    uptimeSeconds: uptime,
    interfaces: [{ name: 'ether1', rxByte: rx, txByte: tx }],
  });

  it('is bits per second over the elapsed time', () => {
    expect(ratesBetween(reading(0, 100, 1000, 0), reading(2000, 102, 3000, 500))).toEqual([
      { name: 'ether1', rxBps: 8000, txBps: 2000 },
    ]);
    expect(ratesBetween(undefined, reading(0, 1, 1, 1))).toEqual([]);
  });

  it('has no rate after a reboot or a counter reset, and unwraps a 32-bit counter', () => {
    expect(ratesBetween(reading(0, 5000, 10_000, 10_000), reading(1000, 3, 200, 100))).toEqual([]);
    expect(ratesBetween(reading(0, 100, 10_000, 10_000), reading(1000, 101, 200, 10_100))).toEqual([]);
    const near = 2 ** 32 - 1000;
    expect(ratesBetween(reading(0, 100, near, 0), reading(1000, 101, 1000, 0))).toEqual([
      { name: 'ether1', rxBps: 2000 * 8, txBps: 0 },
    ]);
  });

  it('never yields a negative or absurd rate, whatever the counters do', () => {
    const counter = fc.oneof(fc.nat(), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constant(2 ** 32 - 1));
    fc.assert(
      fc.property(
        fc.nat({ max: 100_000 }),
        fc.integer({ min: -1000, max: 100_000 }),
        fc.option(fc.nat(), { nil: null }),
        fc.option(fc.nat(), { nil: null }),
        counter,
        counter,
        counter,
        counter,
        (t0, dt, u0, u1, rx0, tx0, rx1, tx1) => {
          const rates = ratesBetween(reading(t0, u0, rx0, tx0), reading(t0 + dt, u1, rx1, tx1));
          for (const r of rates) {
            expect(r.rxBps).toBeGreaterThanOrEqual(0);
            expect(r.txBps).toBeGreaterThanOrEqual(0);
            expect(r.rxBps).toBeLessThanOrEqual(MAX_RATE_BPS);
            expect(r.txBps).toBeLessThanOrEqual(MAX_RATE_BPS);
          }
          if (dt <= 0 || (u0 !== null && u1 !== null && u1 < u0)) expect(rates).toEqual([]);
        },
      ),
    );
  });
});

describe('spreading sites over the interval', () => {
  it('gives each site a stable offset, spread roughly evenly', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    expect(siteOffset(ids[0]!)).toBe(siteOffset(ids[0]!));
    const buckets = new Array<number>(10).fill(0);
    for (const id of ids) buckets[Math.floor(siteOffset(id) * 10)]!++;
    for (const b of buckets) expect(b).toBeGreaterThan(60); // 100 expected per tenth
  });
});

describe('sending samples to the control plane', () => {
  afterEach(() => vi.unstubAllGlobals());

  /** A poller on a fake relay and tunnel registry; POSTs wait until `answer(status)` is called. */
  function setup(maxBuffered: number, batchSize: number) {
    const received: string[][] = [];
    const pending: ((status: number) => void)[] = [];
    // the control-plane link: a POST waits until `answer(status)`; a non-2xx answer is a LinkError like the real client's
    const link = {
      telemetryTargets: () => Promise.resolve({ targets: [] }),
      telemetry: (samples: TelemetrySample[]) =>
        new Promise<{ stored: number; ignored: number }>((resolve, reject) =>
          pending.push((status) => {
            if (status === 200) {
              received.push(samples.map((x) => x.siteId));
              resolve({ stored: samples.length, ignored: 0 });
            } else reject(new LinkError(`POST /api/v1/gateway/telemetry: ${status}`, status));
          }),
        ),
    };
    const relay = { inFlight: () => Promise.resolve(0), call: () => Promise.resolve({ rows: [{}] }) };
    const tunnels = { tunnelOf: () => ({ address: '100.64.0.9', bytesIn: 1, bytesOut: 2, latencyMs: 1 }) };
    const poller = new TelemetryPoller({
      relay: relay as unknown as Relay,
      tunnels: tunnels as unknown as TunnelManager,
      link,
      logger: createLogger({ app: 'telemetry-unit', level: 'silent' }),
      intervalMs: 1000,
      maxBuffered,
      batchSize,
    });
    const poll = (id: string) => poller.pollOne({ siteId: id, credentials: { username: 'u', password: 'p' } });
    const answer = async (status: number) => {
      const end = Date.now() + 2000;
      while (pending.length === 0) {
        if (Date.now() > end) throw new Error('the poller sent no batch');
        await new Promise((r) => setTimeout(r, 1));
      }
      pending.shift()!(status);
    };
    return { poller, poll, answer, received };
  }

  it('loses no sample that arrives while a batch is in flight, even with the buffer at its limit', async () => {
    const { poller, poll, answer, received } = setup(3, 2);
    for (const id of ['s1', 's2', 's3']) await poll(id);
    const flushed = poller.flush(); // POST [s1, s2] hangs
    await poll('s4');
    await poll('s5');
    await answer(200);
    await answer(200);
    await answer(200);
    await flushed;
    expect(received.flat()).toEqual(['s1', 's2', 's3', 's4', 's5']);
    expect(poller.counters).toMatchObject({ samples: 5, sent: 5, dropped: 0 });
  });

  it('keeps a batch the control plane did not take (unreachable, rate limited) and drops the oldest beyond the limit', async () => {
    const { poller, poll, answer, received } = setup(3, 2);
    for (const id of ['s1', 's2', 's3']) await poll(id);
    const failed = poller.flush();
    await poll('s4'); // [s1, s2] in flight, s3 and s4 waiting
    await answer(503);
    await failed;
    // s1..s4 are kept up to the limit: the oldest goes, counted
    expect(poller.counters).toMatchObject({ sent: 0, dropped: 1 });
    const limited = poller.flush();
    await answer(429);
    await limited;
    expect(poller.counters).toMatchObject({ sent: 0, dropped: 1 });
    const ok = poller.flush();
    await answer(200);
    await answer(200);
    await ok;
    expect(received.flat()).toEqual(['s2', 's3', 's4']);
    expect(poller.counters).toMatchObject({ sent: 3, dropped: 1 });
  });
});
