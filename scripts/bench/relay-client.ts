/**
 * The relay client's own cost: `fetch` (what the api and the worker used before
 * @backplane/gateway-link) against the library's `RelayClient` (undici `Pool`), both sending
 * `/system/identity/print` relay calls at a fixed rate to a stub gateway in a child process
 * (so only the client's CPU is counted here; no router, no Redis: the registry is in memory).
 * Open loop: calls are started on schedule whether or not earlier ones answered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { RelayClient, TunnelRegistry, gatewayKey, tunnelKey, type RelayRequest } from '@backplane/gateway-link';
import type { BenchSection } from './types';

const SITE = '00000000-0000-4000-8000-000000000001';
const RATE = 1000;
const SECONDS = 5;

const STUB = `
const http = require('node:http');
const body = JSON.stringify({ rows: [{ name: 'router-1' }] });
const srv = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => (n += c.length));
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); });
});
srv.keepAliveTimeout = 72000;
srv.listen(0, '127.0.0.1', () => process.stdout.write(String(srv.address().port) + '\\n'));
`;

async function stubGateway(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', STUB], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) =>
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())),
  );
  return { url: `http://127.0.0.1:${port}`, child };
}

interface Result {
  readonly calls: number;
  readonly failed: number;
  readonly cpuMsPerKCalls: number;
  readonly p50: number;
  readonly p99: number;
}

async function openLoop(send: () => Promise<unknown>): Promise<Result> {
  const latencies: number[] = [];
  let failed = 0;
  const pending: Promise<void>[] = [];
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let sent = 0;
  const total = RATE * SECONDS;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE));
    for (; sent < due; sent++) {
      const t = performance.now();
      pending.push(
        send().then(
          () => {
            latencies.push(performance.now() - t);
          },
          () => {
            failed++;
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return {
    calls: latencies.length,
    failed,
    cpuMsPerKCalls: ((cpu.user + cpu.system) / 1000 / total) * 1000,
    p50: q(0.5),
    p99: q(0.99),
  };
}

export default async function bench(): Promise<BenchSection> {
  const { url, child } = await stubGateway();
  const records = new Map<string, string>([
    [
      tunnelKey('b:', SITE),
      JSON.stringify({
        siteId: SITE,
        gatewayId: 'gw',
        regionSlug: 'r',
        address: '100.64.0.2',
        sourceIp: '127.0.0.1',
        connectedSince: new Date().toISOString(),
        bytesIn: 0,
        bytesOut: 0,
        latencyMs: null,
        updatedAt: new Date().toISOString(),
      }),
    ],
    [gatewayKey('b:', 'gw'), JSON.stringify({ gatewayId: 'gw', url, token: 't', updatedAt: new Date().toISOString() })],
  ]);
  const registry = new TunnelRegistry({ get: (k) => Promise.resolve(records.get(k) ?? null) }, 'b:');
  const req: RelayRequest = {
    credentials: { username: 'bp-api', password: 'secret' },
    command: '/system/identity/print',
  };
  // the old client, as apps/api/src/live/live.service.ts had it (registry read included)
  const viaFetch = async () => {
    const route = await registry.route(SITE);
    const res = await fetch(`${route.gateway.url}/internal/v1/sites/${SITE}/call`, {
      method: 'POST',
      headers: { authorization: `Bearer ${route.gateway.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(req),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(text);
    return JSON.parse(text) as unknown;
  };
  const client = new RelayClient({ registry });
  const viaPool = () => client.call(SITE, req, { timeoutMs: 20_000 });
  try {
    await openLoop(viaFetch); // warm-up both (JIT, connections)
    await openLoop(viaPool);
    const f = await openLoop(viaFetch);
    const p = await openLoop(viaPool);
    const row = (name: string, r: Result) =>
      `| ${name} | ${r.calls} (${r.failed} failed) | ${r.cpuMsPerKCalls.toFixed(0)} ms | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms |`;
    return {
      id: 'relay-client',
      title: 'Relay client: fetch vs undici Pool',
      markdown: [
        `${RATE} relay calls/s for ${SECONDS} s (open loop) to a stub gateway in a child process; client CPU only.`,
        '',
        '| client | answered | client CPU per 1,000 calls | p50 | p99 |',
        '| --- | --- | --- | --- | --- |',
        row('fetch (before)', f),
        row('RelayClient (undici Pool)', p),
      ].join('\n'),
    };
  } finally {
    await client.close();
    child.kill();
  }
}

if (require.main === module) {
  bench().then(
    (s) => console.log(s.markdown),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
