/**
 * The simulator's REST API (docs/protocols.md §2) driven by our REST client: HTTPS with a
 * pinned self-signed certificate, Basic auth, print/add/set/remove/commands, the router's
 * error bodies, plain HTTP only from 7.9 and no REST at all on v6.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RouterOsConnectionError,
  RouterOsRestAuthError,
  RouterOsRestClient,
  RouterOsRestError,
  RouterOsRestNotFoundError,
} from '@backplane/routeros';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';

function rawHttp(
  port: number,
  method: string,
  path: string,
  auth?: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('REST API (7.16)', () => {
  let router: SimRouter;
  let rest: RouterOsRestClient;

  beforeAll(async () => {
    router = await startRouter({
      identity: 'rest-r1',
      rest: { commandTimeoutMs: 300 },
      users: [
        { name: 'bp', password: 's3cret', group: 'full' },
        { name: 'ro', password: 'ro', group: 'reader' },
        { name: 'apionly', password: 'x', group: 'apionly' },
      ],
      groups: [
        { name: 'reader', policy: 'read,api,rest-api' },
        { name: 'apionly', policy: 'read,write,api' },
      ],
    });
    const r = router.services.rest!;
    rest = new RouterOsRestClient({
      host: router.host,
      port: r.httpsPort,
      username: 'bp',
      password: 's3cret',
      tls: { fingerprint256: r.certificate!.fingerprint256! },
      timeoutMs: 5000,
    });
  });
  afterAll(async () => {
    await router.stop();
  });

  it('prints lists and single menus with string values, .proplist and filters', async () => {
    const identity = await rest.print('/system/identity');
    expect(identity).toEqual([{ name: 'rest-r1' }]);
    const ethers = await rest.print('/interface', { where: { type: 'ether' }, proplist: ['name', 'mtu'] });
    expect(ethers.map((r) => r['name'])).toEqual(['ether1', 'ether2', 'ether3', 'ether4', 'ether5']);
    expect(ethers[0]).toEqual({ name: 'ether1', mtu: '1500' });
    const all = await rest.print('/ip/address');
    for (const row of all) for (const v of Object.values(row)) expect(typeof v).toBe('string');
  });

  it('adds (PUT), reads, sets (PATCH) and removes (DELETE) an item; a second DELETE is 404', async () => {
    const created = await rest.add('/ip/address', { address: '10.9.9.1/24', interface: 'ether3', comment: 'lab' });
    expect(created).toMatchObject({ address: '10.9.9.1/24', interface: 'ether3', network: '10.9.9.0', comment: 'lab' });
    const id = created['.id']!;
    expect(id).toMatch(/^\*[0-9A-F]+$/);
    expect(await rest.get('/ip/address', id)).toMatchObject({ '.id': id, address: '10.9.9.1/24' });
    const updated = await rest.set('/ip/address', id, { comment: 'changed', disabled: true });
    expect(updated).toMatchObject({ '.id': id, comment: 'changed', disabled: 'true' });
    expect(router.state.find('ip/address', { address: '10.9.9.1/24' })?.values['comment']).toBe('changed');
    await rest.remove('/ip/address', id);
    await expect(rest.remove('/ip/address', id)).rejects.toBeInstanceOf(RouterOsRestNotFoundError);
    const raw = await rawHttp(router.services.rest!.httpPort!, 'GET', `/rest/ip/address/${id}`, 'bp:s3cret');
    expect(raw).toEqual({ status: 404, text: '{"error":404,"message":"Not Found"}' });
  });

  it('addresses items by name too, and PATCHes single menus', async () => {
    expect((await rest.get('/interface', 'ether2'))['name']).toBe('ether2');
    const res = await rawHttp(
      router.services.rest!.httpPort!,
      'PATCH',
      '/rest/system/identity',
      'bp:s3cret',
      '{"name":"renamed"}',
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ name: 'renamed' });
    await rest.command('/system/identity/set', { name: 'rest-r1' });
  });

  it('runs any command with POST, with .proplist and .query', async () => {
    const { rows } = await rest.command(
      '/interface/print',
      {},
      { proplist: ['name'], query: ['type=ether', 'name=ether1', '#&'] },
    );
    expect(rows).toEqual([{ name: 'ether1' }]);
    const added = await rest.command('/ip/firewall/address-list/add', { list: 'blk', address: '198.51.100.7' });
    expect(added.ret).toMatch(/^\*/);
    const once = await rest.command('/interface/monitor-traffic', { interface: 'ether1', once: '' });
    expect(Number(once.rows[0]!['rx-bits-per-second'])).toBeGreaterThanOrEqual(0);
  });

  it("answers with the router's error bodies and status codes", async () => {
    const bad = await rest.add('/ip/address', { address: '10.1.1.1/24', interface: 'nope' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(RouterOsRestError);
    expect(bad).toMatchObject({
      status: 400,
      routerMessage: 'Bad Request',
      detail: 'input does not match any value of interface',
    });
    const notRemovable = await rest.remove('/system/resource', '*1').catch((e: unknown) => e);
    expect(notRemovable).toMatchObject({ status: 400 });
    const noRemove = await rest.command('/system/identity/remove').catch((e: unknown) => e);
    expect(noRemove).toMatchObject({ status: 406, detail: 'no such command or directory (remove)' });
    const unknownMenu = await rest.print('/ip/nothing-here').catch((e: unknown) => e);
    expect(unknownMenu).toMatchObject({ status: 400 });
    const listen = await rest.command('/interface/listen').catch((e: unknown) => e);
    expect(listen).toMatchObject({ status: 400 });
    // A command that would stream forever is cut: Session closed.
    const cut = await rest.command('/interface/monitor-traffic', { interface: 'ether1' }).catch((e: unknown) => e);
    expect(cut).toMatchObject({ status: 400, detail: 'Session closed' });
  });

  it('refuses wrong passwords and users without the rest-api policy (401), logs the failure', async () => {
    const base = {
      host: router.host,
      port: router.services.rest!.httpsPort,
      tls: { fingerprint256: router.services.rest!.certificate!.fingerprint256! },
    };
    const wrong = new RouterOsRestClient({ ...base, username: 'bp', password: 'nope' });
    await expect(wrong.print('/system/identity')).rejects.toBeInstanceOf(RouterOsRestAuthError);
    const apiOnly = new RouterOsRestClient({ ...base, username: 'apionly', password: 'x' });
    await expect(apiOnly.print('/system/identity')).rejects.toMatchObject({ status: 401 });
    const reader = new RouterOsRestClient({ ...base, username: 'ro', password: 'ro' });
    expect(await reader.print('/system/identity')).toEqual([{ name: 'rest-r1' }]);
    await expect(reader.add('/ip/address', { address: '10.2.2.2/24', interface: 'ether2' })).rejects.toMatchObject({
      status: 400,
      detail: 'not enough permissions (9)',
    });
    const log = router.state.items('log').map((i) => i.values['message']);
    expect(log).toContain(`login failure for user bp from 127.0.0.1 via rest-api`);
    const raw = await rawHttp(router.services.rest!.httpPort!, 'GET', '/rest/system/identity');
    expect(raw.status).toBe(401);
  });

  it('refuses a certificate that does not match the pinned fingerprint, loudly', async () => {
    const other = new RouterOsRestClient({
      host: router.host,
      port: router.services.rest!.httpsPort,
      username: 'bp',
      password: 's3cret',
      tls: { fingerprint256: 'AA:'.repeat(31) + 'AA' },
    });
    const err = await other.print('/system/identity').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsConnectionError);
    expect(err).toMatchObject({ code: 'tls' });
    expect(String(err)).toContain(router.services.rest!.certificate!.fingerprint256!.replace(/:/g, ''));
  });

  it('trusts the certificate as a CA too (hostname = the router address)', async () => {
    const viaCa = new RouterOsRestClient({
      host: router.host,
      port: router.services.rest!.httpsPort,
      username: 'bp',
      password: 's3cret',
      tls: { ca: router.services.rest!.certificate!.cert },
    });
    expect(await viaCa.print('/system/identity')).toEqual([{ name: 'rest-r1' }]);
  });

  it('serves plain HTTP from 7.9 too (www), for clients that opt into it', async () => {
    const http = new RouterOsRestClient({
      host: router.host,
      port: router.services.rest!.httpPort!,
      username: 'bp',
      password: 's3cret',
      insecureHttp: true,
    });
    expect(await http.print('/system/identity')).toEqual([{ name: 'rest-r1' }]);
    expect(() => new RouterOsRestClient({ host: router.host, username: 'bp', password: 'x' })).toThrow(
      /tls.ca or tls.fingerprint256/,
    );
  });

  it('closes REST when www-ssl is disabled', async () => {
    await rest.command('/ip/service/set', { numbers: 'www-ssl', disabled: 'true' });
    await expect(rest.print('/system/identity')).rejects.toBeInstanceOf(RouterOsConnectionError);
    router.state.update('ip/service', router.state.find('ip/service', { name: 'www-ssl' })!, { disabled: 'false' });
    expect(await rest.print('/system/identity')).toEqual([{ name: 'rest-r1' }]);
  });
});

describe('REST across versions', () => {
  const routers: SimRouter[] = [];
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.stop()));
  });

  it('has no REST on v6 and no plain HTTP before 7.9', async () => {
    const v6 = await startRouter({ version: '6.49.18', rest: true });
    const v75 = await startRouter({ version: '7.5', rest: true });
    routers.push(v6, v75);
    expect(v6.services.rest!.httpsPort).toBe(0);
    expect(v6.services.rest!.supported).toBe(false);
    expect(v75.services.rest!.httpPort).toBeUndefined();
    const client = new RouterOsRestClient({
      host: v75.host,
      port: v75.services.rest!.httpsPort,
      username: 'admin',
      password: '',
      tls: { fingerprint256: v75.services.rest!.certificate!.fingerprint256! },
    });
    expect((await client.print('/system/resource'))[0]!['version']).toContain('7.5');
  });
});
