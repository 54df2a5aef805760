/**
 * Fault injection: each misbehaviour a router can show (slow, dropping, half-answering,
 * rebooting, refusing every login, going silent with TCP open) ends in a clear typed
 * error in our API, REST and SSH clients, and leaves no socket or timer behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  MemoryHostKeyStore,
  RouterOsClient,
  RouterOsConnectionError,
  RouterOsLoginError,
  RouterOsRestAuthError,
  RouterOsRestClient,
  RouterOsSshClient,
  RouterOsTimeoutError,
  type RouterOsClientOptions,
} from '@backplane/routeros';
import { applyFaults, startRouter, type SimRouter } from '../../apps/routeros-sim/src';

function resources(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length,
    timers: info.filter((r) => r === 'Timeout').length,
  };
}

/** Waits (up to 2 s) for sockets and timers to come back to the baseline, then returns them. */
async function settledTo(base: { sockets: number; timers: number }): Promise<{ sockets: number; timers: number }> {
  const until = Date.now() + 2000;
  let now = resources();
  while (Date.now() < until && (now.sockets > base.sockets || now.timers > base.timers)) {
    await new Promise((r) => setTimeout(r, 25));
    now = resources();
  }
  return now;
}

describe('faults', () => {
  let router: SimRouter;
  let base: { sockets: number; timers: number };
  const hostKeys = new MemoryHostKeyStore();
  let api: RouterOsClientOptions;

  beforeAll(async () => {
    router = await startRouter({
      identity: 'faulty',
      rest: true,
      ssh: true,
      rebootDelayMs: 300,
      users: [{ name: 'bp', password: 'pw', group: 'full' }],
    });
    api = {
      host: router.host,
      port: router.port,
      username: 'bp',
      password: 'pw',
      connectTimeoutMs: 400,
      commandTimeoutMs: 300,
      cancelTimeoutMs: 200,
      keepaliveIntervalMs: 0,
    };
    // Pin the SSH host key once, while the router is healthy.
    const s = await RouterOsSshClient.connect(sshOptions());
    await s.close();
  });
  afterAll(async () => {
    await router.stop();
  });
  afterEach(async () => {
    applyFaults(router, { clear: true });
    await new Promise((r) => setTimeout(r, 20));
    const now = await settledTo(base);
    expect(now.sockets).toBeLessThanOrEqual(base.sockets);
    expect(now.timers).toBeLessThanOrEqual(base.timers);
  });

  function sshOptions() {
    return {
      host: router.host,
      port: router.services.ssh!.port,
      username: 'bp',
      password: 'pw',
      hostKeys,
      connectTimeoutMs: 400,
      commandTimeoutMs: 300,
    };
  }
  function rest(): RouterOsRestClient {
    return new RouterOsRestClient({
      host: router.host,
      port: router.services.rest!.httpsPort,
      username: 'bp',
      password: 'pw',
      tls: { fingerprint256: router.services.rest!.certificate!.fingerprint256! },
      timeoutMs: 300,
    });
  }
  const baseline = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, 20));
    base = resources();
  };

  it('latency: a command slower than its timeout fails with RouterOsTimeoutError, the connection stays usable', async () => {
    await baseline();
    const c = await RouterOsClient.connect(api);
    router.faults.latencyMs = 500;
    const err = await c.exec('/system/identity/print').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTimeoutError);
    expect(String(err)).toContain('no reply within 300 ms');
    router.faults.latencyMs = 0;
    await new Promise((r) => setTimeout(r, 600));
    expect((await c.print('/system/identity'))[0]!['name']).toBe('faulty');
    await c.close();
    router.faults.latencyMs = 500;
    await expect(rest().print('/system/identity')).rejects.toBeInstanceOf(RouterOsTimeoutError);
  });

  it('dropped connections: commands in flight fail with a connection error; new connections too', async () => {
    await baseline();
    const c = await RouterOsClient.connect(api);
    router.faults.dropConnections = true;
    const err = await c.exec('/system/identity/print').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsConnectionError);
    expect(['reset', 'closed']).toContain((err as RouterOsConnectionError).code);
    await c.close();
    await expect(RouterOsClient.connect(api)).rejects.toBeInstanceOf(RouterOsConnectionError);
    await expect(rest().print('/system/identity')).rejects.toBeInstanceOf(RouterOsConnectionError);
    await expect(RouterOsSshClient.connect(sshOptions())).rejects.toBeInstanceOf(RouterOsConnectionError);
  });

  it('partial replies: half a sentence, then nothing: the command times out', async () => {
    await baseline();
    const c = await RouterOsClient.connect(api);
    router.faults.partialReplies = true;
    const err = await c.exec('/interface/print').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTimeoutError);
    await c.close();
    const restErr = await rest()
      .print('/interface')
      .catch((e: unknown) => e);
    expect(restErr).toBeInstanceOf(RouterOsTimeoutError);
  });

  it('slow replies: a reply trickling in arrives whole, only later', async () => {
    await baseline();
    const c = await RouterOsClient.connect({ ...api, commandTimeoutMs: 5000 });
    router.faults.slowReplyBytesPerSecond = 400;
    const t0 = Date.now();
    const rows = await c.print('/system/resource');
    expect(rows[0]!['version']).toBeDefined();
    expect(Date.now() - t0).toBeGreaterThan(300);
    router.faults.slowReplyBytesPerSecond = 0;
    await c.close();
  });

  it('reboot: open connections end with a connection error, the port refuses, then the router is back', async () => {
    await baseline();
    const c = await RouterOsClient.connect(api);
    const pending = c
      .exec('/interface/monitor-traffic', { interface: 'ether1' }, { timeoutMs: 0 })
      .catch((e: unknown) => e);
    applyFaults(router, { reboot: true });
    expect(await pending).toBeInstanceOf(RouterOsConnectionError);
    await new Promise((r) => setTimeout(r, 50));
    const refused = await RouterOsClient.connect(api).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'refused' });
    await c.close();
    await new Promise((r) => setTimeout(r, 500));
    const again = await RouterOsClient.connect(api);
    expect((await again.print('/system/identity'))[0]!['name']).toBe('faulty');
    await again.close();
  });

  it('wrong credentials: every login fails, on API, REST and SSH', async () => {
    await baseline();
    router.faults.rejectLogins = true;
    await expect(RouterOsClient.connect(api)).rejects.toBeInstanceOf(RouterOsLoginError);
    await expect(rest().print('/system/identity')).rejects.toBeInstanceOf(RouterOsRestAuthError);
    await expect(RouterOsSshClient.connect(sshOptions())).rejects.toBeInstanceOf(RouterOsLoginError);
  });

  it('silent: TCP stays open but nothing is read or written: timeouts, not hangs', async () => {
    await baseline();
    const c = await RouterOsClient.connect(api);
    const s = await RouterOsSshClient.connect(sshOptions());
    router.faults.silent = true;
    const err = await c.exec('/system/identity/print').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTimeoutError);
    await c.close();
    await expect(s.exec(':put hi')).rejects.toBeInstanceOf(RouterOsTimeoutError);
    await s.close();
    const connectErr = await RouterOsClient.connect(api).catch((e: unknown) => e);
    expect(connectErr).toMatchObject({ code: 'connect-timeout' });
    await expect(rest().print('/system/identity')).rejects.toBeInstanceOf(RouterOsTimeoutError);
    const sshErr = await RouterOsSshClient.connect(sshOptions()).catch((e: unknown) => e);
    expect(sshErr).toMatchObject({ code: 'connect-timeout' });
  });
});
