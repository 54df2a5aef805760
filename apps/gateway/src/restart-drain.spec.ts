import { randomBytes, randomUUID } from 'node:crypto';
import { siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import type { TunnelEvent } from '@backplane/gateway-link';
import type { ManagementClient, ManagementEvent } from '@backplane/openvpn';
import { testSettings } from '@backplane/testing';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Relay } from './relay';
import type { SiteDirectory } from './site-directory';
import { TunnelManager } from './tunnels';

/**
 * The gateway's side of a deliberate openvpn restart's drain (the real restart, with real
 * routers, is in test/gateway/restart-adopt.spec.ts): while it drains, a new tunnel is
 * refused without counting as an auth failure, a renegotiation of a tunnel that is up is
 * still answered, the disconnects carry the reason, and relayed calls get 503
 * `gateway_stopping` saying openvpn restarts; afterwards all of that is normal again.
 */
describe('openvpn restart drain (tunnels and relay)', () => {
  let redis: Redis;
  const prefix = `bp-test-drain-${randomUUID().slice(0, 8)}:`;
  const key = randomBytes(32);
  const site = { id: randomUUID(), secret: 'tunnel-secret-1', address: '100.64.0.9' };
  const other = { id: randomUUID(), secret: 'tunnel-secret-2', address: '100.64.0.10' };
  const entries = new Map<string, { address: string; verifier: string; active: boolean }>(
    [site, other].map((s) => [s.id, { address: s.address, verifier: tunnelVerifier(key, s.secret), active: true }]),
  );
  const directory = {
    get: (id: string) => entries.get(id),
    verifierKey: key,
    refreshFor: () => undefined,
    missed: () => undefined,
  } as unknown as SiteDirectory;

  const answers: string[] = [];
  const listeners: ((e: ManagementEvent) => void)[] = [];
  const mgmt = {
    on: (name: string, fn: (e: ManagementEvent) => void) => {
      if (name === 'event') listeners.push(fn);
      return () => undefined;
    },
    clientAuth: (cid: number) => {
      answers.push(`auth ${cid}`);
      return Promise.resolve();
    },
    clientDeny: (cid: number, _kid: number, reason: string) => {
      answers.push(`deny ${cid} ${reason}`);
      return Promise.resolve();
    },
    clientKill: () => Promise.resolve(),
    status: () => Promise.resolve({ clients: [], routes: [], title: '', time: undefined }),
  } as unknown as ManagementClient;
  const emit = (e: ManagementEvent) => listeners.forEach((fn) => fn(e));
  const env = (s: typeof site, n: number) => ({
    username: siteIdToTunnelUser(s.id),
    password: s.secret,
    untrusted_ip: `198.51.100.${n}`,
  });
  const events: TunnelEvent[] = [];
  let tunnels: TunnelManager;

  beforeAll(() => {
    redis = new Redis(testSettings().redisUrl);
    tunnels = new TunnelManager({
      gatewayId: 'gw-drain',
      regionSlug: 'r',
      redis,
      redisPrefix: prefix,
      directory,
      logger: pino({ level: 'silent' }),
      latencyIntervalMs: 3_600_000,
      onEvent: (e) => events.push(e),
    });
    tunnels.attach(mgmt);
  });
  afterAll(async () => {
    tunnels.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('refuses new tunnels, answers renegotiations and labels disconnects while draining', () => {
    emit({ type: 'client-connect', cid: 1, kid: 0, env: env(site, 1) });
    emit({ type: 'client-established', cid: 1, env: {} });
    expect(answers).toEqual(['auth 1']);
    expect(tunnels.tunnelOf(site.id)).toBeDefined();

    tunnels.beginRestart('config generation changed');
    emit({ type: 'client-connect', cid: 2, kid: 0, env: env(other, 2) });
    expect(answers.at(-1)).toBe('deny 2 gateway-restarting');
    expect(events.at(-1)).toMatchObject({ type: 'auth', accepted: false, reason: 'gateway-restarting' });
    // a renegotiation of the tunnel that is up (no password) is still answered
    emit({ type: 'client-reauth', cid: 1, kid: 1, env: { username: siteIdToTunnelUser(site.id) } });
    expect(answers.at(-1)).toBe('auth 1');
    emit({ type: 'client-disconnect', cid: 1, env: { bytes_received: '10', bytes_sent: '20' } });
    expect(events.at(-1)).toMatchObject({
      type: 'disconnect',
      siteId: site.id,
      reason: 'openvpn restart: config generation changed',
    });

    tunnels.endRestart();
    // the refusal did not count as a failure: the same source is admitted at once afterwards
    emit({ type: 'client-connect', cid: 3, kid: 0, env: env(other, 2) });
    expect(answers.at(-1)).toBe('auth 3');
    emit({ type: 'client-established', cid: 3, env: {} });
    emit({ type: 'client-disconnect', cid: 3, env: {} });
    expect(events.at(-1)).toMatchObject({ type: 'disconnect', siteId: other.id });
    expect(events.at(-1)?.reason).toBeUndefined();
  });

  it('relayed calls get 503 gateway_stopping ("openvpn is restarting") during the drain, and not after', async () => {
    const relay = new Relay({ tunnels, logger: pino({ level: 'silent' }), token: 'relay-token' });
    const app = Fastify();
    relay.register(app);
    await app.ready();
    const call = () =>
      app.inject({
        method: 'POST',
        url: `/internal/v1/sites/${site.id}/call`,
        headers: { authorization: 'Bearer relay-token', 'content-type': 'application/json' },
        payload: { credentials: { username: 'bp-api', password: 'x' }, command: '/system/identity/print' },
      });
    expect(await relay.pause('server certificate renewed', 1000)).toBe(true);
    const during = await call();
    expect(during.statusCode).toBe(503);
    expect(during.headers['retry-after']).toBe('5');
    expect(during.json()).toEqual({
      error: {
        code: 'gateway_stopping',
        message: 'openvpn is restarting (server certificate renewed): try again shortly',
      },
    });
    relay.resume();
    const after = await call();
    // the site has no tunnel now: the relay's own answer, not the drain's
    expect(after.statusCode).not.toBe(503);
    expect(after.json<{ error: { code: string } }>().error.code).not.toBe('gateway_stopping');
    await relay.close();
    await app.close();
  });
});
