/**
 * Telemetry cost. (1) The gateway's poller against 1,000 simulated routers (fleet in a child
 * process, a stub control plane in another, so this process holds only the poller, the relay's
 * pooled connections and the rate computation): CPU ms per poll round of 1,000 sites, next to
 * the bare protocol work (the same two commands per site over plain pooled RouterOS clients)
 * in the same run. (2) Ingest: samples and interface rows per second through
 * `POST /api/v1/gateway/telemetry` (zod, RLS'd PostgreSQL via the SECURITY DEFINER function),
 * next to calling that function directly with the same batches.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TelemetrySample } from '@backplane/contracts';
import { TelemetryRepository } from '@backplane/db';
import { GatewayLinkClient } from '@backplane/gateway-link';
import { createLogger } from '@backplane/observability';
import { RouterOsClient } from '@backplane/routeros';
import { Relay } from '../../apps/gateway/src/relay';
import { TelemetryPoller } from '../../apps/gateway/src/telemetry';
import type { TunnelManager } from '../../apps/gateway/src/tunnels';
import { fleetAddress } from '../../apps/routeros-sim/src';
import { startBenchApi } from './api-app';
import type { BenchSection } from './types';

const SITES = Number(process.argv.find((a) => a.startsWith('--sites='))?.slice(8) ?? 1000);
const ROUNDS = 3;
const INTERVAL_MS = 6000;
const FLEET_PORT = 18_728;
const USER = { username: 'bp-api', password: 'bench-router-secret' };

function child(args: string[], ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (b: Buffer): void => {
      out += b.toString();
      const m = ready.exec(out);
      if (m) {
        p.stdout.off('data', onData);
        p.stdout.resume();
        resolve({ proc: p, match: m });
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    p.once('exit', (code) => reject(new Error(`child exited ${code}: ${out.slice(-500)}`)));
  });
}

const STUB_API = `
const http = require('node:http');
const ids = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
const creds = ${JSON.stringify(USER)};
const targets = JSON.stringify({ targets: ids.map((siteId) => ({ siteId, credentials: creds })) });
let samples = 0, withRates = 0;
http.createServer((req, res) => {
  if (req.url === '/api/v1/gateway/telemetry/targets') return res.end(targets);
  if (req.url === '/count') return res.end(JSON.stringify({ samples, withRates }));
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const b = JSON.parse(body);
    samples += b.samples.length;
    withRates += b.samples.filter((s) => s.interfaces.length > 0).length;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ stored: b.samples.length, ignored: 0 }));
  });
}).listen(0, '127.0.0.1', function () { console.log('stub listening ' + this.address().port); });
`;

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function pollerCost(): Promise<{ pollerMs: number; directMs: number; samples: number; withRates: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bp-bench-telemetry-'));
  const ids: string[] = Array.from({ length: SITES }, () => randomUUID());
  writeFileSync(join(dir, 'ids.json'), JSON.stringify(ids));
  const cli = join(__dirname, '..', '..', 'apps', 'routeros-sim', 'src', 'cli.js');
  const { proc: fleet } = await child(
    [
      cli,
      '--fleet',
      String(SITES),
      '--port',
      String(FLEET_PORT),
      '--user',
      `${USER.username}:${USER.password}:full`,
      '--log-level',
      'info',
    ],
    /simulator ready/,
  );
  const { proc: stub, match } = await child(['-e', STUB_API, join(dir, 'ids.json')], /stub listening (\d+)/);
  const stubUrl = `http://127.0.0.1:${match[1]}`;
  try {
    const endpoint = new Map(ids.map((id, i) => [id, { host: fleetAddress(i + 1), port: FLEET_PORT }]));
    const logger = createLogger({ app: 'bench', level: 'silent' });

    // Baseline: the same two commands per site over plain pooled clients, 32 at a time.
    const clients = new Map<string, RouterOsClient>();
    const direct = async (): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < ids.length) {
            const id = ids[next++]!;
            let c = clients.get(id);
            if (!c) {
              const ep = endpoint.get(id)!;
              c = await RouterOsClient.connect({ host: ep.host, port: ep.port, ...USER });
              clients.set(id, c);
            }
            await Promise.all([
              c.exec('/system/resource/print', undefined, {
                proplist: ['cpu-load', 'free-memory', 'total-memory', 'uptime'],
              }),
              c.exec('/interface/print', { stats: '' }, { proplist: ['name', 'rx-byte', 'tx-byte'] }),
              // the poller's third command (temperature, ADR 0104)
              c
                .exec('/system/health/print', undefined, {
                  proplist: ['name', 'value', 'temperature', 'cpu-temperature'],
                })
                .catch(() => undefined),
            ]);
          }
        }),
      );
    };
    await direct(); // connects and warms up
    const d0 = cpuMs();
    for (let r = 0; r < ROUNDS; r++) await direct();
    const directMs = (cpuMs() - d0) / ROUNDS;
    await Promise.all([...clients.values()].map((c) => c.close()));

    // The poller with the real relay; tunnels all up (a stub registry).
    const tunnels = {
      tunnelOf: (siteId: string) =>
        endpoint.has(siteId) ? { address: '100.64.0.2', bytesIn: 1000, bytesOut: 2000, latencyMs: 1.2 } : undefined,
    } as unknown as TunnelManager;
    const relay = new Relay({
      tunnels,
      logger,
      token: randomBytes(16).toString('hex'),
      routerEndpoint: (siteId) => endpoint.get(siteId)!,
    });
    const poller = new TelemetryPoller({
      relay,
      tunnels,
      link: new GatewayLinkClient(stubUrl, 'bench'),
      intervalMs: INTERVAL_MS,
      logger,
    });
    poller.start();
    // round 1 connects every site; measure the rounds after it
    while (poller.counters.rounds < 2) await new Promise((r) => setTimeout(r, 100));
    const p0 = cpuMs();
    while (poller.counters.rounds < 2 + ROUNDS) await new Promise((r) => setTimeout(r, 100));
    const pollerMs = (cpuMs() - p0) / ROUNDS;
    await poller.stop();
    await relay.close();
    const counts = (await (await fetch(`${stubUrl}/count`)).json()) as { samples: number; withRates: number };
    return { pollerMs, directMs, ...counts };
  } finally {
    fleet.kill('SIGTERM');
    stub.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const BATCH = 500;
const BATCHES = 40;
const IFACES = 4;

async function ingestRate(): Promise<{ httpRows: number; directRows: number; batch: number; ifaces: number }> {
  const password = 'bench password long enough';
  const api = await startBenchApi({
    API_RATE_LIMIT: '1000000',
    BOOTSTRAP_OWNER_EMAIL: 'bench@example.test',
    BOOTSTRAP_OWNER_PASSWORD: password,
  });
  const { app, ds, db } = api;
  await app.listen(0, '127.0.0.1');
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const call = async (
    method: string,
    path: string,
    token?: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  try {
    const { accessToken } = (await call('POST', '/api/v1/auth/login', undefined, {
      email: 'bench@example.test',
      password,
    })) as { accessToken: string };
    const me = (await call('GET', '/api/v1/me', accessToken)) as { tenants: { id: string }[] };
    const tenantId = me.tenants[0]!.id;
    const region = (await call('POST', '/api/v1/regions', accessToken, {
      slug: 'bench',
      name: 'Bench',
      publicHost: 'gw.bench.test',
      latitude: 1,
      longitude: 1,
    })) as { id: string };
    const et = (await call('POST', `/api/v1/regions/${region.id}/enrollment-tokens`, accessToken, {})) as {
      token: string;
    };
    const gw = (await call('POST', '/api/v1/gateway/enroll', undefined, { token: et.token, name: 'gw-bench' })) as {
      gateway: { id: string };
      credential: string;
    };
    // Seed as the table owner (setup only): 1,000 sites online on this gateway.
    const sites = await ds.query<{ id: string }[]>(
      `INSERT INTO sites (tenant_id, name, mgmt_address, gateway_id, online)
       SELECT $1, 'site-' || g, bp_allocate_mgmt_address(), $3, true FROM generate_series(1, $2) g RETURNING id`,
      [tenantId, SITES, gw.gateway.id],
    );
    const start = Date.now() - BATCHES * 2 * 1000 * 2;
    let tick = 0;
    const batch = (): TelemetrySample[] =>
      Array.from({ length: BATCH }, (_, i) => {
        const site = sites[i % sites.length]!.id;
        return {
          siteId: site,
          at: new Date(start + tick++ * 1).toISOString(),
          cpuLoad: i % 100,
          memoryUsed: 1000 + i,
          memoryTotal: 1_000_000,
          uptimeSeconds: 3600,
          tunnelBytesIn: 1000 * i,
          tunnelBytesOut: 2000 * i,
          latencyMs: 1.5,
          interfaces: Array.from({ length: IFACES }, (_, k) => ({
            name: `ether${k + 1}`,
            rxBps: 1000 * k,
            txBps: 500 * k,
          })),
        };
      });
    const http = async (): Promise<number> => {
      const t0 = performance.now();
      let stored = 0;
      for (let b = 0; b < BATCHES; b++) {
        const r = (await call('POST', '/api/v1/gateway/telemetry', gw.credential, { samples: batch() })) as {
          stored: number;
        };
        stored += r.stored;
      }
      if (stored !== BATCH * BATCHES) throw new Error(`stored ${stored} of ${BATCH * BATCHES}`);
      return (stored / (performance.now() - t0)) * 1000;
    };
    const directRun = async (): Promise<number> => {
      const t0 = performance.now();
      let stored = 0;
      for (let b = 0; b < BATCHES; b++) {
        const payload = batch().map((s) => ({
          ...s,
          rxBps: s.interfaces.reduce((a, i) => a + i.rxBps, 0),
          txBps: s.interfaces.reduce((a, i) => a + i.txBps, 0),
        }));
        const rows = await db.inPlatform((tx) => new TelemetryRepository().ingest(tx, gw.gateway.id, payload));
        stored += rows.length;
      }
      if (stored !== BATCH * BATCHES) throw new Error(`stored ${stored} of ${BATCH * BATCHES}`);
      return (stored / (performance.now() - t0)) * 1000;
    };
    await directRun(); // warm-up
    const directRows = await directRun();
    const httpRows = await http();
    return { httpRows, directRows, batch: BATCH, ifaces: IFACES };
  } finally {
    await api.close();
  }
}

export default async function bench(): Promise<BenchSection> {
  const poll = await pollerCost();
  const ingest = await ingestRate();
  const table = [
    '| Measure | Value |',
    '| --- | ---: |',
    `| Poller CPU per round of ${SITES} sites (3 commands each: resource, interfaces, health; rates, batching, relay) | ${poll.pollerMs.toFixed(0)} ms |`,
    `| Same commands over plain pooled clients (baseline) | ${poll.directMs.toFixed(0)} ms |`,
    `| Poller / baseline | ${(poll.pollerMs / poll.directMs).toFixed(2)} × |`,
    `| Samples delivered to the stub control plane (with interface rates) | ${poll.samples} (${poll.withRates}) |`,
    `| Ingest via \`POST /api/v1/gateway/telemetry\` | ${ingest.httpRows.toFixed(0)} samples/s (${(ingest.httpRows * (1 + ingest.ifaces)).toFixed(0)} rows/s) |`,
    `| Same batches straight into \`bp_telemetry_ingest\` (baseline) | ${ingest.directRows.toFixed(0)} samples/s |`,
    `| HTTP path / direct | ${(ingest.httpRows / ingest.directRows).toFixed(2)} × |`,
  ].join('\n');
  const share = (poll.pollerMs / INTERVAL_MS) * 100;
  return {
    id: 'telemetry',
    title: 'Telemetry: poller cost and ingest',
    markdown:
      `${table}\n\nPoller: ${SITES} simulated routers (one child process, 127.1.x.y), a stub control plane in another ` +
      `child; this process runs the real \`Relay\` (one pooled API connection per site) and \`TelemetryPoller\`. CPU is ` +
      `\`process.cpuUsage()\` over ${ROUNDS} rounds after a first round that opens the connections. At the default ` +
      `30 s interval the poller keeps about ${((poll.pollerMs / 30_000) * 100).toFixed(1)} % of one core busy per 1,000 sites ` +
      `(${share.toFixed(1)} % at the ${INTERVAL_MS / 1000} s interval used here). ` +
      `Ingest: ${BATCHES} batches of ${ingest.batch} samples with ${ingest.ifaces} interfaces each, one after the other, ` +
      `api in-process on loopback with PostgreSQL; a row is a sample or an interface rate.`,
  };
}
