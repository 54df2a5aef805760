import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { TelemetrySample } from '@backplane/contracts';
import { GatewayLinkClient } from '@backplane/gateway-link';
import { createLogger } from '@backplane/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { Relay } from '../../apps/gateway/src/relay';
import { TelemetryPoller } from '../../apps/gateway/src/telemetry';
import type { TunnelManager } from '../../apps/gateway/src/tunnels';

/**
 * The poller's link to the control plane, with a stand-in control plane that answers what
 * we tell it to: batches wait while it is down or failing, a refused batch is dropped (and
 * logged) instead of blocking every later sample, and a router that does not answer still
 * yields the tunnel figures.
 */
describe('telemetry poller and the control-plane link', () => {
  let router: SimRouter;
  let server: Server;
  let url = '';
  let answer = 200;
  const received: TelemetrySample[][] = [];
  const logs: string[] = [];
  const siteId = randomUUID();
  const deadSite = randomUUID();
  let relay: Relay;
  let poller: TelemetryPoller;

  beforeAll(async () => {
    router = await startRouter({ users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }] });
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/api/v1/gateway/telemetry/targets') {
          res.end(JSON.stringify({ targets: [] }));
          return;
        }
        res.statusCode = answer;
        if (answer === 200) received.push((JSON.parse(body) as { samples: TelemetrySample[] }).samples);
        res.end(JSON.stringify(answer === 200 ? { stored: 1, ignored: 0 } : { error: { code: 'validation_failed' } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tunnels = {
      tunnelOf: (id: string) =>
        id === siteId || id === deadSite
          ? { address: '100.64.0.9', bytesIn: 1234, bytesOut: 5678, latencyMs: 3.456 }
          : undefined,
    } as unknown as TunnelManager;
    const logger = createLogger({
      app: 'telemetry-test',
      level: 'debug',
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    });
    relay = new Relay({
      tunnels,
      logger,
      token: 'x',
      routerEndpoint: (id) =>
        id === siteId ? { host: router.host, port: router.port } : { host: '127.0.0.1', port: 1 },
    });
    poller = new TelemetryPoller({
      relay,
      tunnels,
      link: new GatewayLinkClient(url, 'bpg_test'),
      intervalMs: 1000,
      logger,
    });
  });

  afterAll(async () => {
    await relay?.close();
    await router?.stop();
    await new Promise((r) => server?.close(r));
  });

  const target = (id: string) => ({ siteId: id, credentials: { username: 'bp-api', password: 'router-secret-1' } });

  it('keeps samples while the control plane fails, drops a refused batch, and sends the rest once it answers', async () => {
    const first = await poller.pollOne(target(siteId));
    expect(first).toMatchObject({
      siteId,
      memoryTotal: 268_435_456,
      tunnelBytesIn: 1234,
      tunnelBytesOut: 5678,
      latencyMs: 3.46,
      interfaces: [], // no earlier reading yet
    });
    await new Promise((r) => setTimeout(r, 300));
    const second = await poller.pollOne(target(siteId));
    expect(second!.interfaces.map((i) => i.name)).toContain('ether1');
    expect(second!.interfaces.every((i) => i.rxBps > 0)).toBe(true);

    answer = 503;
    await poller.flush();
    expect(poller.counters).toMatchObject({ sent: 0, dropped: 0 });

    answer = 400;
    await poller.flush();
    expect(poller.counters).toMatchObject({ sent: 0, dropped: 2 });
    expect(logs.some((l) => l.includes('telemetry batch refused'))).toBe(true);

    answer = 200;
    const third = await poller.pollOne(target(siteId));
    await poller.flush();
    expect(received).toEqual([[third]]);
    expect(poller.counters.sent).toBe(1);
  });

  it('still reports the tunnel when the router does not answer', async () => {
    const s = await poller.pollOne(target(deadSite));
    expect(s).toMatchObject({
      cpuLoad: null,
      memoryUsed: null,
      uptimeSeconds: null,
      tunnelBytesIn: 1234,
      interfaces: [],
    });
    expect(poller.counters.errors).toBeGreaterThanOrEqual(1);
    // a site with no tunnel on this gateway is not sampled at all
    expect(await poller.pollOne(target(randomUUID()))).toBeUndefined();
  });
});
