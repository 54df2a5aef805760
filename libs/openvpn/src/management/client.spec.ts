import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeOpenVpnServer } from '../fake/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManagementClient, ManagementError } from './client';
import { ManagementCommandError } from './commands';
import type { ManagementEvent } from './protocol';
import { until as waitUntil } from '@backplane/testing';

let dir: string;
let fake: FakeOpenVpnServer | undefined;
let client: ManagementClient | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bp-ovpn-mgmt-'));
});
afterEach(async () => {
  await client?.close();
  await fake?.close();
  client = undefined;
  fake = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const until = <T>(fn: () => T | undefined, ms = 3000): Promise<T> => waitUntil(fn, ms, 'the condition', 10);

async function setup(opts: { hold?: boolean; password?: string; clientPassword?: string; bytecount?: number } = {}) {
  fake = await FakeOpenVpnServer.start({
    path: join(dir, 'mgmt.sock'),
    password: opts.password ?? 's3cret',
    hold: opts.hold ?? true,
    handWindowMs: 5000,
  });
  const events: ManagementEvent[] = [];
  client = new ManagementClient({
    path: join(dir, 'mgmt.sock'),
    password: opts.clientPassword ?? opts.password ?? 's3cret',
    commandTimeoutMs: 2000,
    bytecountSeconds: opts.bytecount,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  client.on('event', (e) => events.push(e));
  return { fake, client, events };
}

describe('ManagementClient against the fake server', () => {
  it('logs in with the password and releases the hold', async () => {
    const { fake, client } = await setup();
    expect(fake.held).toBe(true);
    await client.start();
    expect(client.state).toBe('ready');
    expect(fake.held).toBe(false);
    expect(fake.commands).toContain('hold release');
  });

  it('fails with an auth error on a wrong password (no reconnect)', async () => {
    fake = await FakeOpenVpnServer.start({ path: join(dir, 'mgmt.sock'), password: 'right' });
    client = new ManagementClient({ path: join(dir, 'mgmt.sock'), password: 'wrong', reconnect: false });
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    await expect(client.start()).rejects.toBeInstanceOf(ManagementError);
    expect(errors.some((e) => e instanceof ManagementError && e.code === 'auth')).toBe(true);
    expect(fake.managementAttached).toBe(false);
  });

  it('answers CONNECT with client-auth + ifconfig-push, then sees ESTABLISHED and ADDRESS', async () => {
    const { fake, client, events } = await setup();
    await client.start();
    const tunnel = fake.connectTunnel({ username: 'AAAAsite1', password: 'pw', ip: '203.0.113.7' });
    const connect = await until(() => events.find((e) => e.type === 'client-connect'));
    expect(connect).toMatchObject({ cid: tunnel.cid, kid: 1 });
    expect(connect.env).toMatchObject({ username: 'AAAAsite1', password: 'pw', untrusted_ip: '203.0.113.7' });

    await client.clientAuth(connect.cid, connect.kid, ['ifconfig-push 100.64.7.9 255.192.0.0']);
    expect(await tunnel.outcome).toEqual({ outcome: 'authorized', config: ['ifconfig-push 100.64.7.9 255.192.0.0'] });
    await until(() => events.find((e) => e.type === 'client-address'));
    expect(events.find((e) => e.type === 'client-established')).toMatchObject({ cid: tunnel.cid });
    expect(events.find((e) => e.type === 'client-address')).toEqual({
      type: 'client-address',
      cid: tunnel.cid,
      address: '100.64.7.9',
      primary: true,
    });

    const status = await client.status();
    expect(status.clients).toHaveLength(1);
    expect(status.clients[0]).toMatchObject({
      commonName: 'AAAAsite1',
      virtualAddress: '100.64.7.9',
      clientId: tunnel.cid,
      realAddress: expect.stringMatching(/^203\.0\.113\.7:\d+$/),
    });
    expect(status.routes[0]).toMatchObject({ virtualAddress: '100.64.7.9', commonName: 'AAAAsite1' });
    expect(await client.loadStats()).toEqual({ clients: 1, bytesIn: 0, bytesOut: 0 });
  });

  it('denies with a quoted reason that survives quotes and backslashes, and refuses CR/LF injection', async () => {
    const { fake, client, events } = await setup();
    await client.start();
    const tunnel = fake.connectTunnel({ username: 'bob', password: 'nope' });
    const c = await until(() => events.find((e) => e.type === 'client-connect'));
    const reason = 'bad "password" \\ for bob';
    await client.clientDeny(c.cid, c.kid, reason, 'AUTH_FAILED "x"');
    expect(await tunnel.outcome).toEqual({ outcome: 'denied', reason, clientReason: 'AUTH_FAILED "x"' });

    const before = fake.commands.length;
    const t2 = fake.connectTunnel({ username: 'eve', password: 'x' });
    await until(() => events.filter((e) => e.type === 'client-connect').length === 2 || undefined);
    await expect(client.clientDeny(t2.cid, t2.kid, 'x\nkill bob')).rejects.toBeInstanceOf(ManagementCommandError);
    await expect(client.clientDeny(t2.cid, t2.kid, 'ok', 'x\rkill bob')).rejects.toBeInstanceOf(ManagementCommandError);
    await expect(client.clientAuth(t2.cid, t2.kid, ['push "route 1.2.3.4"', 'END', 'kill bob'])).rejects.toBeInstanceOf(
      ManagementCommandError,
    );
    await expect(
      client.clientAuth(t2.cid, t2.kid, ['ifconfig-push 100.64.0.9 255.192.0.0\r\nkill bob']),
    ).rejects.toBeInstanceOf(ManagementCommandError);
    await expect(client.kill('bob\nsignal SIGTERM')).rejects.toBeInstanceOf(ManagementCommandError);
    await expect(client.clientKill(-1)).rejects.toBeInstanceOf(ManagementCommandError);
    await expect(client.command('status 3\nkill bob')).rejects.toBeInstanceOf(ManagementCommandError);
    // nothing reached the server, and the tunnel is still waiting for a decision
    expect(fake.commands.length).toBe(before);
    expect(t2.state).toBe('pending');
  });

  it('surfaces ERROR replies as rejected commands and keeps the connection usable', async () => {
    const { client } = await setup();
    await client.start();
    await expect(client.clientKill(999)).rejects.toMatchObject({ code: 'command' });
    await expect(client.kill('nobody')).rejects.toThrow(/not found/);
    expect((await client.version()).join('\n')).toMatch(/Management Version: 5/);
  });

  it('kills clients by CID and by common name (DISCONNECT block with byte counts)', async () => {
    const { fake, client, events } = await setup();
    await client.start();
    const a = fake.connectTunnel({ username: 'a', password: 'p' });
    const b = fake.connectTunnel({ username: 'b', password: 'p' });
    await until(() => events.filter((e) => e.type === 'client-connect').length === 2 || undefined);
    await client.clientAuth(a.cid, a.kid, ['ifconfig-push 100.64.0.2 255.192.0.0']);
    await client.clientAuth(b.cid, b.kid, ['ifconfig-push 100.64.0.3 255.192.0.0']);
    await client.clientKill(a.cid, 'HALT');
    await client.kill('b');
    const disc = await until(() => {
      const d = events.filter((e) => e.type === 'client-disconnect');
      return d.length === 2 ? d : undefined;
    });
    expect(disc.map((d) => d.cid)).toEqual([a.cid, b.cid]);
    expect(disc[0]!.env).toHaveProperty('bytes_received');
    expect(fake.tunnels.size).toBe(0);
  });

  it('receives BYTECOUNT_CLI after bytecount', async () => {
    const { fake, client, events } = await setup({ bytecount: 1 });
    await client.start();
    const t = fake.connectTunnel({ username: 'a', password: 'p' });
    await until(() => events.find((e) => e.type === 'client-connect'));
    await client.clientAuth(t.cid, t.kid, []);
    const bc = await until(() => events.find((e) => e.type === 'bytecount-client'), 2500);
    expect(bc).toMatchObject({ cid: t.cid, bytesIn: 1000, bytesOut: 2000 });
  });

  it('reconnects after the link drops and re-issues hold release and bytecount', async () => {
    const { fake, client } = await setup({ bytecount: 5 });
    await client.start();
    let readies = 0;
    client.on('ready', () => readies++);
    fake.dropManagement();
    await until(() => readies === 1 || undefined);
    expect(fake.commands.filter((c) => c === 'hold release')).toHaveLength(2);
    expect(fake.commands.filter((c) => c === 'bytecount 5')).toHaveLength(2);
    expect(client.stats.disconnects).toBe(1);
    expect(await client.loadStats()).toEqual({ clients: 0, bytesIn: 0, bytesOut: 0 });
  });

  it('kills stragglers whose CONNECT went to nobody while detached, and only those', async () => {
    const { fake, client: first, events } = await setup();
    await first.start();
    const served = fake.connectTunnel({ username: 'served', password: 'p' });
    await until(() => events.find((e) => e.type === 'client-connect'));
    await first.clientAuth(served.cid, served.kid, ['ifconfig-push 100.64.0.2 255.192.0.0']);
    await first.close();

    const lost = fake.connectTunnel({ username: 'lost', password: 'p' });
    expect(fake.lostNotifications).toBe(1);
    const again = new ManagementClient({
      path: join(dir, 'mgmt.sock'),
      password: 's3cret',
      killStragglersOnAttach: true,
      reconnect: false,
    });
    client = again;
    await again.start();
    expect(await lost.outcome).toEqual({ outcome: 'disconnected' });
    expect(again.stats.stragglersKilled).toBe(1);
    expect(fake.commands).toContain(`client-kill ${lost.cid}`);
    expect(served.state).toBe('authorized');
    expect((await again.status()).clients.map((c) => c.commonName)).toEqual(['served']);
  });

  it('keeps going after garbage from the server: unparsed events and a counter, no crash', async () => {
    const { fake, client, events } = await setup();
    await client.start();
    fake.sendRaw('>CLIENT:CONNECT,zz\r\nSUCCESS: unsolicited\r\n>BYTECOUNT_CLI:1\r\n\u0000\u00ff\r\n');
    await until(() => client.stats.unparsed >= 4 || undefined);
    expect(events.filter((e) => e.type === 'unparsed')).toHaveLength(client.stats.unparsed);
    expect(await client.loadStats()).toMatchObject({ clients: 0 });
  });

  it('works over TCP too, and without a password when the server has none', async () => {
    fake = await FakeOpenVpnServer.start({ port: 0 });
    const addr = fake.address as { host: string; port: number };
    client = new ManagementClient({ host: addr.host, port: addr.port, reconnect: false });
    await client.start();
    expect((await client.version()).join('\n')).toMatch(/Management Version: 5/);
  });

  it('refuses bad options up front', () => {
    expect(() => new ManagementClient({ path: '/x', password: 'a\nb' })).toThrow(ManagementCommandError);
    expect(() => new ManagementClient({ path: '/x', bytecountSeconds: -1 })).toThrow(ManagementCommandError);
    expect(() => new ManagementClient({})).toThrow(/path or host/);
  });

  it('rejects commands while disconnected', async () => {
    client = new ManagementClient({ path: join(dir, 'nothing.sock'), reconnect: false });
    await expect(client.loadStats()).rejects.toMatchObject({ code: 'not-connected' });
  });
});

describe('ManagementClient timeouts, backoff and clean close', () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent?.close(() => r()));
  });

  it('times a command out, drops the desynchronised link and reconnects', async () => {
    let connections = 0;
    silent = createServer((s) => {
      sockets.add(s);
      connections++;
      s.write(">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n");
      s.on('data', (d: Buffer) => {
        // answers the setup's hold release, then goes silent
        if (d.toString().startsWith('hold release')) s.write('SUCCESS: hold release succeeded\r\n');
      });
    });
    const path = join(dir, 'silent.sock');
    await new Promise<void>((r) => silent.listen(path, r));
    client = new ManagementClient({ path, commandTimeoutMs: 150, reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
    await client.start();
    const t0 = Date.now();
    await expect(client.loadStats()).rejects.toMatchObject({ code: 'timeout' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    await until(() => connections === 2 || undefined);
    expect(client.stats.timeouts).toBe(1);
  });

  it('grows the backoff exponentially up to the cap, with jitter inside bounds', () => {
    const c = new ManagementClient({
      path: '/nonexistent',
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 },
      random: () => 0,
    });
    expect([0, 1, 2, 3, 4, 10].map((a) => c.backoff(a))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const r = new ManagementClient({
      path: '/nonexistent',
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 },
      random: () => 0.999,
    });
    expect(r.backoff(3)).toBeGreaterThanOrEqual(400);
    expect(r.backoff(3)).toBeLessThan(401);
  });

  it('leaves no timer or socket behind after close, even while reconnecting', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    client = new ManagementClient({ path: join(dir, 'missing.sock'), reconnect: { initialDelayMs: 50 } });
    const started = client.start();
    started.catch(() => undefined);
    await until(() => (client!.state === 'connecting' && timers() > before ? true : undefined));
    await client.close();
    await expect(started).rejects.toMatchObject({ code: 'closed' });
    expect(timers()).toBe(before);
  });
});
