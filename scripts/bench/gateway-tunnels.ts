/**
 * The gateway at region scale, in one process: 10,000 tunnels dial the fake openvpn
 * management server at once; the real gateway code (tunnel auth with HMAC verifiers,
 * registry in Redis, events outbox) admits them. A stub control plane on loopback serves
 * the site sync and swallows events, so only the gateway is measured. Then the relay:
 * `/system/identity/print` at 1,000 calls/s through the gateway's internal HTTP relay to
 * simulated routers on loopback, against calling the same simulators directly.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig, parseVars, processEnv } from '@backplane/config';
import { siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import type { SiteTunnelEntry } from '@backplane/gateway-link';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { RouterOsClient } from '@backplane/routeros';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import { startGateway } from '../../apps/gateway/src/gateway';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { headline } from './_headlines';
import type { BenchSection } from './types';

/** `-- --tunnels=N` (default 10,000). */
const TUNNELS = Number(process.argv.find((a) => a.startsWith('--tunnels='))?.slice(10) ?? 10_000);
const ROUTERS = 50;
const RATE = 1000;
const SECONDS = 8;
/** `-- --latency-ms=N`: interval of the gateway's latency probes (default 60 s, as deployed). */
const LATENCY_MS = Number(process.argv.find((a) => a.startsWith('--latency-ms='))?.slice(13) ?? 60_000);

interface LoadResult {
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly n: number;
  /** Calls per second actually completed (below the offered rate when the path saturates). */
  readonly achieved: number;
}

interface ClientData {
  readonly benchClient: 'direct' | 'relay';
  readonly rate: number;
  readonly routers: readonly { host: string; port: number }[];
  readonly sites: readonly string[];
  readonly gwPort: number;
  readonly token: string;
  readonly creds: { username: string; password: string };
}

/**
 * The simulated routers in a child process (`routeros-sim --count N --loopback`), so that
 * they do not share the gateway's event loop (issue 19): one 127.1.x.y address per router.
 */
async function startSimulators(
  count: number,
  creds: { username: string; password: string },
): Promise<{ child: ChildProcess; routers: { host: string; port: number }[] }> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const cli = join(__dirname, '..', '..', 'apps', 'routeros-sim', 'src', 'cli.js');
  const child = spawn(
    process.execPath,
    [
      cli,
      ...['--count', String(count), '--port', String(port), '--loopback', '--identity', 'bench'],
      ...['--user', `${creds.username}:${creds.password}:full`, '--log-level', 'info'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('simulators did not start in 120 s')), 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('simulator ready')) {
        clearTimeout(timer);
        child.stdout.resume();
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`simulators exited with ${code}`)));
  });
  const routers = Array.from({ length: count }, (_, i) => ({ host: `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`, port }));
  return { child, routers };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Open loop: one call every 1000/RATE ms regardless of answers; latency of each. */
async function load(call: (i: number) => Promise<unknown>, rate: number): Promise<LoadResult> {
  // warm-up (JIT, pooled connections), not measured
  let k = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (k < 2000) await call(k++).catch(() => undefined);
    }),
  );
  const lat: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = rate * SECONDS;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    pending.push(
      call(i).then(
        () => {
          lat.push(performance.now() - t0);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(pending);
  const achieved = (total / (performance.now() - start)) * 1000;
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), errors, n: lat.length, achieved };
}

export default async function bench(): Promise<BenchSection> {
  const { TEST_REDIS_URL } = parseVars(['TEST_REDIS_URL'], processEnv());
  const dataDir = mkdtempSync(join(tmpdir(), 'bp-bench-gw-'));
  const prefix = `bpbench:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(TEST_REDIS_URL);
  const key = randomBytes(32);
  const sites = Array.from({ length: TUNNELS }, (_, i) => {
    const id = randomUUID();
    const secret = randomBytes(24).toString('base64url');
    const address = `100.${64 + (((i + 2) >> 16) & 63)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`;
    return { id, secret, address, user: siteIdToTunnelUser(id), verifier: tunnelVerifier(key, secret) };
  });
  const entries: SiteTunnelEntry[] = sites.map((s, i) => ({
    siteId: s.id,
    address: s.address,
    verifier: s.verifier,
    active: true,
    rev: i + 1,
  }));
  let eventsReceived = 0;
  const stub = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      res.setHeader('content-type', 'application/json');
      if (url.pathname === '/api/v1/gateway/heartbeat')
        return res.end(JSON.stringify({ id: '00000000-0000-4000-8000-00000000b0b0', regionId: randomUUID() }));
      if (url.pathname === '/api/v1/gateway/sites') {
        const after = Number(url.searchParams.get('after') ?? 0);
        const limit = Number(url.searchParams.get('limit') ?? 5000);
        const items = entries.filter((e) => e.rev > after).slice(0, limit);
        const next = items.at(-1)?.rev ?? after;
        return res.end(JSON.stringify({ verifierKey: key.toString('base64'), items, next, more: next < TUNNELS }));
      }
      if (url.pathname === '/api/v1/gateway/events') {
        eventsReceived += (JSON.parse(Buffer.concat(chunks).toString()) as { events: unknown[] }).events.length;
        return res.end('{}');
      }
      res.statusCode = 404;
      res.end('{}');
    });
  });
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
  const creds = { username: 'bp-api', password: 'bench-pass' };
  const sims = await startSimulators(ROUTERS, creds);
  const routers = sims.routers;
  const gwPort = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const config = loadGatewayConfig({
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    GATEWAY_API_URL: `http://127.0.0.1:${(stub.address() as AddressInfo).port}`,
    GATEWAY_CREDENTIAL: 'bpg_bench_credential',
    GATEWAY_OPENVPN: 'fake',
    GATEWAY_PORT: String(gwPort),
    GATEWAY_REDIS_PREFIX: prefix,
  });
  const logger = createLogger({ app: 'gateway-bench', level: 'warn' });
  const routerOf = (i: number) => routers[i % ROUTERS]!;
  const index = new Map<string, number>(sites.map((s, i) => [s.id, i]));
  const rssBefore = process.memoryUsage().rss;
  const gw = await startGateway({
    config,
    logger,
    redis,
    registry: createMetricsRegistry('gateway'),
    latencyIntervalMs: LATENCY_MS,
    routerEndpoint: (siteId) => {
      const r = routerOf(index.get(siteId) ?? 0);
      return { host: r.host, port: r.port };
    },
  });
  await gw.app.listen(gwPort, '127.0.0.1');
  const fake = gw.runtime.fake as FakeOpenVpnServer;

  // 1. the storm
  const t0 = performance.now();
  for (let i = 0; i < TUNNELS; i += 1000)
    fake.connectTunnels(
      sites.slice(i, i + 1000).map((s, j) => ({
        username: s.user,
        password: s.secret,
        ip: `198.51.${100 + (((i + j) >> 8) % 50)}.${(i + j) & 255}`,
      })),
    );
  while (gw.tunnels.online < TUNNELS) {
    if (performance.now() - t0 > 180_000) throw new Error(`only ${gw.tunnels.online} online after 180 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const onlineMs = performance.now() - t0;
  await gw.tunnels.refreshRegistry();
  let registered = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}tunnel:*`, 'COUNT', 5000);
    cursor = next;
    registered += keys.length;
  } while (cursor !== '0');
  const registeredMs = performance.now() - t0;
  global.gc?.();
  const mem = process.memoryUsage();
  await gw.outbox.flush();

  // 2. relay vs direct, each driven from a worker thread (its own event loop, as a separate
  //    api replica would be), against the same simulators
  const link = JSON.parse((await redis.get(`${prefix}gateway:00000000-0000-4000-8000-00000000b0b0`))!) as {
    token: string;
  };
  const client = (kind: 'direct' | 'relay', rate: number) =>
    new Promise<LoadResult>((resolve, reject) => {
      const w = new Worker(__filename, {
        workerData: {
          benchClient: kind,
          rate,
          routers: routers.map((r) => ({ host: r.host, port: r.port })),
          sites: sites.slice(0, ROUTERS).map((s) => s.id),
          gwPort,
          token: link.token,
          creds,
        } satisfies ClientData,
      });
      w.once('message', (m: LoadResult) => resolve(m));
      w.once('error', reject);
    });
  const c0 = { ...gw.relay.counters };
  const baseline = await client('direct', RATE);
  const relayed = await client('relay', RATE);
  const baselineLow = await client('direct', RATE / 4);
  const relayedLow = await client('relay', RATE / 4);

  const relayCounters = { before: c0, after: { ...gw.relay.counters } };
  await gw.close();
  sims.child.kill('SIGTERM');
  stub.close();
  let c2 = '0';
  do {
    const [next, keys] = await redis.scan(c2, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    c2 = next;
    if (keys.length) await redis.del(...keys);
  } while (c2 !== '0');
  redis.disconnect();
  rmSync(dataDir, { recursive: true, force: true });

  const mib = (n: number) => (n / 2 ** 20).toFixed(0);
  const ms = (n: number) => n.toFixed(2);
  const row = (what: string, rate: number, r: LoadResult) =>
    `| ${what}, ${rate}/s offered (open loop, ${ROUTERS} simulators) | p50 ${ms(r.p50)} ms, p99 ${ms(r.p99)} ms; ${r.achieved.toFixed(0)} calls/s achieved, ${r.errors} errors / ${r.n + r.errors} | |`;
  return {
    id: 'gateway-tunnels',
    title: 'Gateway: 10,000 tunnels and the synchronous relay',
    headlines: [headline('relay_p99_overhead_ms_at_1000', Number((relayed.p99 - baseline.p99).toFixed(2)))],
    markdown: `
| measure | value | target |
| --- | --- | --- |
| ${TUNNELS} tunnels dialled at once -> all authenticated and online in the gateway | ${(onlineMs / 1000).toFixed(2)} s | < 60 s |
| ... and all in the Redis registry | ${(registeredMs / 1000).toFixed(2)} s (${registered} keys) | |
| process RSS after (gateway + fake openvpn + ${ROUTERS} simulators + bench) | ${mib(mem.rss)} MiB (${mib(mem.rss - rssBefore)} MiB more than before the gateway started); heap used ${mib(mem.heapUsed)} MiB | < 1 GiB |
| tunnel events uploaded to the (stub) control plane | ${eventsReceived} | 2 per tunnel |
| relay counters (before -> after the load) | ${JSON.stringify(relayCounters)} | |
${row('direct RouterOS API call', RATE, baseline)}
${row('same call through the gateway relay (HTTP + pooled connection per site)', RATE, relayed)}
| relay overhead at ${RATE}/s | p50 +${ms(relayed.p50 - baseline.p50)} ms, p99 +${ms(relayed.p99 - baseline.p99)} ms | |
${row('direct RouterOS API call', RATE / 4, baselineLow)}
${row('through the gateway relay', RATE / 4, relayedLow)}
| relay overhead at ${RATE / 4}/s | p50 +${ms(relayedLow.p50 - baselineLow.p50)} ms, p99 +${ms(relayedLow.p99 - baselineLow.p99)} ms | |

The fake openvpn management server speaks the real protocol over a unix socket (one CONNECT block per tunnel, client-auth with ifconfig-push, ESTABLISHED); every secret is checked against its HMAC verifier. The gateway shares its event loop with the fake openvpn server and the stub control plane; the ${ROUTERS} simulators run in a child process (not on the gateway's loop) and the load generator in a worker thread, on a 2-core machine: the direct rows are the baseline in the same run (same simulators, same load generator), so the overhead rows are the relay's cost (achieved rate below the offered one = queueing). Headline \`relay_p99_overhead_ms_at_1000\`: relay p99 minus direct p99 at ${RATE}/s (target: p50 ≤ 1 ms, p99 ≤ 20 ms over direct).`,
  };
}

/** The load generator, in a worker thread. */
async function runClient(d: ClientData): Promise<LoadResult> {
  if (d.benchClient === 'direct') {
    const conns = await Promise.all(d.routers.map((r) => RouterOsClient.connect({ ...r, ...d.creds })));
    const res = await load((i) => conns[i % conns.length]!.exec('/system/identity/print'), d.rate);
    for (const c of conns) await c.close();
    return res;
  }
  // node:http with keep-alive (what an api replica holds open to its gateways)
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const body = JSON.stringify({ credentials: d.creds, command: '/system/identity/print' });
  const res = await load(
    (i) =>
      new Promise<void>((resolve, reject) => {
        const req = request(
          `http://127.0.0.1:${d.gwPort}/internal/v1/sites/${d.sites[i % d.sites.length]}/call`,
          {
            method: 'POST',
            agent,
            headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
          },
          (r) => {
            r.resume();
            r.on('end', () => (r.statusCode === 200 ? resolve() : reject(new Error(String(r.statusCode)))));
          },
        );
        req.on('error', reject);
        req.end(body);
      }),
    d.rate,
  );
  agent.destroy();
  return res;
}

if (!isMainThread && (workerData as Partial<ClientData> | null)?.benchClient) {
  void runClient(workerData as ClientData).then((r) => parentPort!.postMessage(r));
}
