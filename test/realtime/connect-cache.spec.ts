import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REALTIME_PATH } from '@backplane/contracts';
import { AuthCache } from '../../apps/api/src/auth/auth-cache';
import { addMember, login } from '../api/harness';
import { startControlPlane, type ControlPlane } from '../gateway/control-plane';
import { client, secondReplica, sleep, type Replica, type TestClient } from './realtime-helpers';

/**
 * The realtime handshake authenticates through the api's auth cache (ADR 0076): many
 * connects of one credential read PostgreSQL once, and a revocation made on one replica
 * refuses the next handshake on another replica with its cache warm.
 */
describe('realtime connect with the auth cache', () => {
  let cp: ControlPlane;
  let b: Replica;
  const clients: TestClient[] = [];
  const open = (url: string, token: string) => {
    const c = client(url, cp.tenantId, token);
    clients.push(c);
    return c;
  };
  const sessionOf = (token: string) =>
    (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;

  beforeAll(async () => {
    cp = await startControlPlane();
    b = await secondReplica(cp.h);
  });

  afterAll(async () => {
    for (const c of clients) c.rt.close();
    await b?.close();
    await cp?.close();
  });

  it('50 sockets of one person connect on a warm cache; a session revoked behind its back still connects (the cache answered)', async () => {
    const email = 'many@rt-cache.test';
    expect((await addMember(cp.h, cp.token, cp.tenantId, { email, role: 'viewer' })).status).toBe(201);
    const token = await login(cp.h, email);
    const first = open(b.url, token);
    await first.connected();
    const many = Array.from({ length: 50 }, () => open(b.url, token));
    await Promise.all(many.map((c) => c.connected()));
    expect(many.every((c) => c.errors.length === 0)).toBe(true);
    expect(b.api.app.get(AuthCache).size).toBeGreaterThan(0);
    // Ended in the database without the revocation: the warm cache still answers (this is
    // what the cache saves), and forgets within its TTL.
    await cp.h.ds.query(`UPDATE sessions SET revoked_at = now() WHERE id = $1`, [sessionOf(token)]);
    const cached = open(b.url, token);
    await cached.connected();
    expect(cached.errors).toEqual([]);
    for (const c of [first, ...many, cached]) c.rt.close();
  });

  it('a sign-out on one replica refuses the next handshake on the other, with its cache warm', async () => {
    const email = 'signout@rt-cache.test';
    expect((await addMember(cp.h, cp.token, cp.tenantId, { email, role: 'operator' })).status).toBe(201);
    const token = await login(cp.h, email);
    for (const url of [cp.url, b.url, b.url]) {
      const c = open(url, token);
      await c.connected();
      c.rt.close();
    }
    expect((await cp.h.call('POST', '/api/v1/auth/logout', { token })).status).toBe(204);
    expect(await open(b.url, token).refused()).toMatchObject({ message: 'session ended; sign in again' });
  });

  it('a revoked API key and a removed member are refused on the next handshake on the other replica', async () => {
    const created = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/api-keys`, {
      token: cp.token,
      body: { name: 'wall', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    const email = 'removed@rt-cache.test';
    const m = await addMember(cp.h, cp.token, cp.tenantId, { email, role: 'viewer' });
    const token = await login(cp.h, email);
    for (const t of [key, key, token, token]) {
      const c = open(b.url, t);
      await c.connected();
      c.rt.close();
    }
    await sleep(50);
    expect(
      (await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/api-keys/${created.body.id}`, { token: cp.token }))
        .status,
    ).toBe(204);
    expect(
      (await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/members/${m.body.userId}`, { token: cp.token }))
        .status,
    ).toBe(204);
    expect(await open(b.url, key).refused()).toMatchObject({ message: 'API key was revoked' });
    expect(await open(b.url, token).refused()).toMatchObject({ message: 'tenant not found' });
  });

  /** The first chunk a raw websocket upgrade to `query` receives. */
  const firstChunk = (url: string, query: string) =>
    new Promise<string>((resolve, reject) => {
      const { port } = new URL(url);
      const sock = connect(Number(port), '127.0.0.1', () =>
        sock.write(
          `GET ${REALTIME_PATH}/?EIO=4&transport=websocket${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
            'Sec-WebSocket-Version: 13\r\n\r\n',
        ),
      );
      sock.once('data', (d) => {
        resolve(d.toString('latin1'));
        sock.destroy();
      });
      sock.once('error', reject);
    });

  it("answers a websocket upgrade with the 101 and engine.io's open packet in one write; a refused upgrade still gets its 400 (ADR 0114)", async () => {
    // What the api's first socket write (one syscall) of each upgraded connection carries.
    const firstWrites: string[] = [];
    type Chunks = ({ chunk: Buffer | string } | Buffer)[];
    type Generic = (writev: boolean, data: unknown, encoding: string, cb: unknown) => unknown;
    const spy = (_req: IncomingMessage, socket: Duplex) => {
      const s = socket as unknown as { _writeGeneric: Generic };
      const original = s._writeGeneric;
      s._writeGeneric = function (this: unknown, writev, data, encoding, cb) {
        const text = writev
          ? (data as Chunks).map((c) => ('chunk' in c ? c.chunk : c).toString()).join('')
          : (data as Buffer | string).toString();
        firstWrites.push(text);
        s._writeGeneric = original;
        return original.call(this, writev, data, encoding, cb);
      };
    };
    const server: HttpServer = cp.h.app.getHttpServer();
    server.prependListener('upgrade', spy);
    try {
      for (let i = 0; i < 5; i++) expect(await firstChunk(cp.url, '')).toContain('0{"sid":"');
      expect(await firstChunk(cp.url, '&sid=not-a-session')).toMatch(
        /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*Session ID unknown/,
      );
    } finally {
      server.off('upgrade', spy);
    }
    expect(firstWrites).toHaveLength(6);
    for (const w of firstWrites.slice(0, 5)) {
      expect(w).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      expect(w).toContain('0{"sid":"'); // the open packet, in the same write
    }
  });
});
