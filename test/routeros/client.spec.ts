/**
 * The RouterOS client against the RouterOS simulator (apps/routeros-sim): login on 6.42
 * (MD5 challenge) and 7.x, tags in flight, traps, `!empty` on 7.18+, listen with cancel,
 * monitor-traffic, timeouts, `!fatal`, reboots, and API-SSL (anonymous DH and certificates).
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  has,
  parseBool,
  RouterOsClient,
  RouterOsConnectionError,
  RouterOsFatalError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  RouterOsTrapError,
  where,
  type RouterOsClientOptions,
} from '@backplane/routeros';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter, type StartRouterOptions } from '../../apps/routeros-sim/src';

const USER = { name: 'backplane', password: 'p4ss=word!', group: 'full' };

const routers: SimRouter[] = [];
const clients: RouterOsClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await Promise.all(routers.splice(0).map((r) => r.stop()));
});

async function sim(options: StartRouterOptions = {}): Promise<SimRouter> {
  const r = await startRouter({ users: [USER], rebootDelayMs: 300, ...options });
  routers.push(r);
  return r;
}

async function login(router: SimRouter, options: Partial<RouterOsClientOptions> = {}): Promise<RouterOsClient> {
  const client = await RouterOsClient.connect({
    host: router.host,
    port: router.port,
    username: USER.name,
    password: USER.password,
    connectTimeoutMs: 5000,
    ...options,
  });
  clients.push(client);
  return client;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('login', () => {
  it('7.x: name and password in one /login', async () => {
    const client = await login(await sim({ version: '7.16', identity: 'edge-7' }));
    expect(client.loginMethod).toBe('plain');
    expect(await client.print('/system/identity')).toEqual([{ name: 'edge-7' }]);
  });

  it('6.42: auto-detects the MD5 challenge; plain-only and wrong passwords are refused', async () => {
    const router = await sim({ version: '6.42.12', identity: 'old-6' });
    const client = await login(router);
    expect(client.loginMethod).toBe('challenge');
    expect(await client.print('/system/identity')).toEqual([{ name: 'old-6' }]);
    await expect(login(router, { login: 'plain' })).rejects.toBeInstanceOf(RouterOsLoginError);
    await expect(login(router, { password: 'nope' })).rejects.toThrow(/invalid user name or password/);
    const explicit = await login(router, { login: 'challenge' });
    expect(explicit.loginMethod).toBe('challenge');
  });

  it('7.x: a wrong password is a RouterOsLoginError', async () => {
    const router = await sim();
    const err = await login(router, { password: 'wrong' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsLoginError);
    expect((err as Error).message).toMatch(/invalid user name or password/);
  });
});

describe('commands', () => {
  let router: SimRouter;
  let client: RouterOsClient;
  beforeAll(async () => {
    router = await sim({ version: '7.16' });
  });

  it('runs 32 tagged commands at a time on one connection', async () => {
    client = await login(router);
    const adds = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        client.exec('/ip/address/add', { address: `10.9.${i}.1/24`, interface: 'ether1', comment: `bulk ${i}` }),
      ),
    );
    const ids = adds.map((a) => a.ret);
    expect(new Set(ids).size).toBe(32);
    for (const id of ids) expect(id).toMatch(/^\*[0-9A-F]+$/);
    const reads = await Promise.all(
      ids.map((id) => client.print('/ip/address', { where: where('.id', id!), proplist: ['comment'] })),
    );
    reads.forEach((rows, i) => expect(rows).toEqual([{ comment: `bulk ${i}` }]));
    await Promise.all(ids.map((id) => client.exec('/ip/address/remove', { '.id': id! })));
    const left = await client.print('/ip/address', { proplist: ['comment'] });
    expect(left.filter((r) => r['comment']?.startsWith('bulk '))).toEqual([]);
  });

  it('turns !trap into RouterOsTrapError with category and message, connection stays usable', async () => {
    client = await login(router);
    const err = await client
      .exec('/ip/address/add', { address: '10.0.0.1/24', interface: 'does-not-exist' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTrapError);
    expect((err as RouterOsTrapError).category).toBe(1);
    expect((err as RouterOsTrapError).trapMessage).toMatch(/input does not match any value of interface/);
    expect(await client.print('/system/identity')).toHaveLength(1);
  });

  it('builds queries: ether OR vlan, has/lacks, negation', async () => {
    client = await login(router);
    const vlan = await client.exec('/interface/vlan/add', { name: 'vlan77', 'vlan-id': 77, interface: 'ether1' });
    try {
      const rows = await client.print('/interface', {
        where: where('type', 'ether').or(where('type', 'vlan')),
        proplist: ['name', 'type'],
      });
      const types = new Set(rows.map((r) => r['type']));
      expect(types).toEqual(new Set(['ether', 'vlan']));
      expect(rows.some((r) => r['name'] === 'vlan77')).toBe(true);
      const notEther = await client.print('/interface', { where: where('type', 'ether').not(), proplist: ['type'] });
      expect(notEther.every((r) => r['type'] !== 'ether')).toBe(true);
      expect(notEther.length).toBeGreaterThan(0);
      const named = await client.print('/interface', { where: has('name').and(where('name', 'vlan77')) });
      expect(named.map((r) => r['name'])).toEqual(['vlan77']);
    } finally {
      await client.exec('/interface/vlan/remove', { '.id': vlan.ret! });
    }
  });

  it('parses v7 true/false booleans', async () => {
    client = await login(router);
    const [ether1] = await client.print('/interface', { where: where('name', 'ether1') });
    expect(['true', 'false']).toContain(ether1!['disabled']);
    expect(parseBool(ether1!['disabled'])).toBe(false);
  });

  it('times out a command that never finishes, cancels it, and keeps the connection', async () => {
    client = await login(router);
    const started = Date.now();
    const err = await client
      .exec('/interface/monitor-traffic', { interface: 'ether1' }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTimeoutError);
    expect(Date.now() - started).toBeLessThan(5000); // it gave up (300 ms), it did not hang
    // The router's late interrupted/done for that tag arrive and are ignored.
    await until(() => client.stats.ignoredSentences > 0);
    expect(client.stats.inFlight).toBe(0);
    expect(await client.print('/system/identity')).toHaveLength(1);
  });

  it('/quit: the router answers !fatal and every pending command fails', async () => {
    client = await login(router);
    const streaming = client.exec('/interface/monitor-traffic', { interface: 'ether1' }).catch((e: unknown) => e);
    await client.exec('/quit').catch(() => undefined);
    const err = await streaming;
    expect(err).toBeInstanceOf(RouterOsFatalError);
    expect((err as RouterOsFatalError).reason).toMatch(/session terminated/);
    expect(client.isOpen).toBe(false);
  });
});

describe('RouterOS 7.18+ and 6.x differences', () => {
  it('7.18: !empty is zero rows', async () => {
    const client = await login(await sim({ version: '7.18.2' }));
    expect(await client.print('/ip/address', { where: where('comment', 'nothing has this') })).toEqual([]);
    expect(client.stats.emptyReplies).toBe(1);
    expect(await client.print('/system/identity')).toHaveLength(1);
    expect(client.stats.emptyReplies).toBe(1);
  });

  it('6.x: listen reports removals as .dead=yes', async () => {
    const client = await login(await sim({ version: '6.49.10' }));
    const seen: Record<string, string>[] = [];
    const consumer = (async () => {
      for await (const row of client.listen('/ip/address')) {
        seen.push(row);
        if (row['.dead'] !== undefined) break;
      }
    })();
    const added = await client.exec('/ip/address/add', { address: '10.66.0.1/24', interface: 'ether1' });
    await client.exec('/ip/address/remove', { '.id': added.ret! });
    await consumer;
    expect(seen.at(-1)!['.dead']).toBe('yes');
    expect(parseBool(seen.at(-1)!['.dead'])).toBe(true);
  });

  it('6.x: yes/no booleans parse the same way', async () => {
    const client = await login(await sim({ version: '6.49.10' }));
    const [ether1] = await client.print('/interface', { where: where('name', 'ether1') });
    expect(['yes', 'no']).toContain(ether1!['disabled']);
    expect(parseBool(ether1!['disabled'])).toBe(false);
  });
});

describe('streams', () => {
  it('listen: a row per change, .dead for removals, break cancels on the router', async () => {
    const router = await sim({ version: '7.16' });
    const client = await login(router);
    const seen: Record<string, string>[] = [];
    const stream = client.listen('/ip/address');
    const consumer = (async () => {
      for await (const row of stream) {
        seen.push(row);
        if (row['.dead'] !== undefined) break;
      }
    })();
    // Same connection: the router handles the listen before these commands.
    const added = await client.exec('/ip/address/add', { address: '10.77.0.1/24', interface: 'ether1' });
    await client.exec('/ip/address/remove', { '.id': added.ret! });
    await consumer;
    expect(seen[0]).toMatchObject({ '.id': added.ret, address: '10.77.0.1/24' });
    expect(parseBool(seen.at(-1)!['.dead'])).toBe(true);
    expect(client.stats.inFlight).toBe(0);
    // Still usable after the cancel.
    expect(await client.print('/system/identity')).toHaveLength(1);
  });

  it('monitor-traffic streams rows until the signal aborts', async () => {
    const router = await sim({ version: '7.16' });
    const client = await login(router);
    const ac = new AbortController();
    const rows: Record<string, string>[] = [];
    const run = async () => {
      for await (const row of client.stream(
        '/interface/monitor-traffic',
        { interface: 'ether1', interval: '100ms' },
        { signal: ac.signal },
      )) {
        rows.push(row);
        if (rows.length === 3) ac.abort();
      }
    };
    await expect(run()).rejects.toMatchObject({ name: 'AbortError' });
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(Number(r['rx-bits-per-second'])).toBeGreaterThanOrEqual(0);
    await until(() => client.stats.inFlight === 0);
  });

  it('print follow-only: changes stream in, cancel() ends the iteration', async () => {
    const router = await sim({ version: '7.16' });
    const client = await login(router);
    const stream = client.stream('/system/identity/print', { 'follow-only': '' });
    const next = stream.next();
    await client.exec('/system/identity/set', { name: 'renamed' });
    const first = await next;
    expect(first.value).toMatchObject({ name: 'renamed' });
    await stream.cancel();
    expect((await stream.next()).done).toBe(true);
  });
});

describe('simulator faults', () => {
  it('a late !re after /cancel is ignored; the stream ends with what the consumer took', async () => {
    const router = await sim({ faults: { lateRowAfterCancel: true } });
    const client = await login(router);
    const seen: Record<string, string>[] = [];
    for await (const row of client.stream('/interface/monitor-traffic', { interface: 'ether1', interval: '50ms' })) {
      seen.push(row);
      if (seen.length === 2) break;
    }
    expect(seen).toHaveLength(2);
    await until(() => client.stats.ignoredSentences > 0);
    expect(client.stats.inFlight).toBe(0);
    expect(await client.print('/system/identity')).toHaveLength(1);
  });

  it('a slow link: commands slower than their timeout fail, others succeed on the same connection', async () => {
    const router = await sim();
    const client = await login(router);
    router.faults.latencyMs = 150;
    await expect(client.print('/system/identity', { timeoutMs: 50 })).rejects.toBeInstanceOf(RouterOsTimeoutError);
    expect(await client.print('/system/identity', { timeoutMs: 2000 })).toHaveLength(1);
    router.faults.latencyMs = 0;
  });

  it('works whether the router puts .tag first or last', async () => {
    const router = await sim({ tagPosition: 'last' });
    const client = await login(router);
    const results = await Promise.all([client.print('/system/identity'), client.print('/interface')]);
    expect(results[0]).toHaveLength(1);
    expect(results[1].length).toBeGreaterThan(1);
  });
});

describe('connection failures', () => {
  it('a reboot fails pending commands; reconnecting while it boots is refused', async () => {
    const router = await sim({ version: '7.16' });
    const client = await login(router);
    const pending = client.exec('/interface/monitor-traffic', { interface: 'ether1' }).catch((e: unknown) => e);
    await client.exec('/system/reboot').catch(() => undefined);
    const err = await pending;
    expect(err).toBeInstanceOf(RouterOsConnectionError);
    const refused = await login(router).catch((e: unknown) => e);
    expect((refused as RouterOsConnectionError).code).toBe('refused');
    // Back after the reboot delay (300 ms here).
    let again: RouterOsClient | undefined;
    const deadline = Date.now() + 5000;
    while (!again && Date.now() < deadline) {
      again = await login(router).catch(() => undefined);
      if (!again) await sleep(50);
    }
    expect(await again!.print('/system/identity')).toHaveLength(1);
  });
});

describe('API-SSL', () => {
  let dir: string;
  let cert: string;
  let key: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ros-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=router.test',
        '-addext',
        'subjectAltName=DNS:router.test,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    key = readFileSync(join(dir, 'key.pem'), 'utf8');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('anonymous DH (no certificate on the router), only when asked for explicitly', async () => {
    const router = await sim({ tls: true });
    const client = await login(router, {
      port: router.tlsPort!,
      tls: { mode: 'anonymous-dh', acceptUnauthenticatedServer: true },
    });
    expect(await client.print('/system/identity')).toHaveLength(1);
    // Verifying TLS cannot talk to an anonymous-only service.
    const err = await login(router, { port: router.tlsPort!, tls: { mode: 'verify' } }).catch((e: unknown) => e);
    expect((err as RouterOsConnectionError).code).toBe('tls');
  });

  it('certificate: verified against a CA, or pinned by fingerprint; a wrong pin is refused', async () => {
    const router = await sim({ tls: { cert, key } });
    const port = router.tlsPort!;
    const byCa = await login(router, { port, tls: { mode: 'verify', ca: cert } });
    expect(await byCa.print('/system/identity')).toHaveLength(1);

    const fingerprint = new X509Certificate(cert).fingerprint256;
    const pinned = await login(router, { port, tls: { mode: 'verify', fingerprint256: fingerprint.toLowerCase() } });
    expect(await pinned.print('/system/identity')).toHaveLength(1);

    const wrong = createHash('sha256').update('other').digest('hex');
    const err = await login(router, { port, tls: { mode: 'verify', fingerprint256: wrong } }).catch((e: unknown) => e);
    expect((err as RouterOsConnectionError).code).toBe('tls');
    expect((err as Error).message).toMatch(/fingerprint/);

    // Without the CA the self-signed certificate is refused.
    const untrusted = await login(router, { port, tls: { mode: 'verify' } }).catch((e: unknown) => e);
    expect((untrusted as RouterOsConnectionError).code).toBe('tls');
  });
});
