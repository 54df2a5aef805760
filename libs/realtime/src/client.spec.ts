import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { REALTIME_PATH, type TenantEvent } from '@backplane/contracts';
import { CLIENT_REALTIME_PATH, RealtimeClient } from './client';

/**
 * The client's sequence bookkeeping against a small socket.io server that speaks the
 * realtime protocol from an in-memory log, so the test can deliver events out of order
 * (what a replay racing live delivery looks like). The real server is covered by
 * test/realtime/*.spec.ts.
 */
const TENANT = '6f1c3a52-6d7e-4d8e-9a41-0c3b6f0e1a11';

function event(seq: number): TenantEvent {
  return {
    seq,
    tenantId: TENANT,
    at: new Date().toISOString(),
    type: 'site.status',
    data: { siteId: `s${seq}`, online: true },
  };
}

interface Fake {
  url: string;
  log: TenantEvent[];
  sockets: Socket[];
  resumes: number[];
  tokens: string[];
  /** `siteId:stream` of every subscribe the server saw, accepted or not. */
  subscribes: string[];
  /** Sites whose streams the server refuses (as for a site of another tenant). */
  refuse: Set<string>;
  close(): Promise<void>;
}

async function fakeServer(): Promise<Fake> {
  const http = createServer();
  const io = new Server(http, { path: REALTIME_PATH });
  const f: Fake = {
    url: '',
    log: [],
    sockets: [],
    resumes: [],
    tokens: [],
    subscribes: [],
    refuse: new Set(),
    close: () => io.close().then(() => undefined),
  };
  const replay = (s: Socket, after: number) => {
    const oldest = f.log[0]?.seq ?? 1;
    if (after < oldest - 1) return s.emit('resync', { tenantId: TENANT, seq: f.log.at(-1)!.seq });
    for (const e of f.log) if (e.seq > after) s.emit('event', e);
  };
  io.on('connection', (s) => {
    const auth = s.handshake.auth as { token: string; lastSeq?: number };
    f.tokens.push(auth.token);
    f.sockets.push(s);
    if (auth.lastSeq !== undefined) replay(s, auth.lastSeq);
    s.on('subscribe', (req: { siteId: string; stream: string }, ack: (r: unknown) => void) => {
      f.subscribes.push(`${req.siteId}:${req.stream}`);
      ack(f.refuse.has(req.siteId) ? { ok: false, error: 'site not found' } : { ok: true, data: null });
    });
    s.on('resume', (req: { lastSeq: number }, ack: (r: unknown) => void) => {
      f.resumes.push(req.lastSeq);
      replay(s, req.lastSeq);
      ack({ ok: true, data: { replayed: 0 } });
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return f;
}

async function until(fn: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RealtimeClient', () => {
  it('connects at the path the server serves', () => {
    expect(CLIENT_REALTIME_PATH).toBe(REALTIME_PATH);
  });

  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  async function setup(lastSeq = 0) {
    const f = await fakeServer();
    let n = 0;
    const rt = new RealtimeClient({ url: f.url, tenantId: TENANT, token: () => `token-${++n}`, lastSeq });
    const applied: number[] = [];
    const resyncs: number[] = [];
    rt.onEvent((e) => applied.push(e.seq));
    rt.onResync((s) => resyncs.push(s));
    cleanup.push(
      () => rt.close(),
      () => f.close(),
    );
    await new Promise<void>((r) => rt.socket.once('connect', () => r()));
    return { f, rt, applied, resyncs };
  }

  it('applies in order, drops duplicates, and fills a gap by resuming before applying what came early', async () => {
    const { f, rt, applied } = await setup();
    const s = f.sockets[0]!;
    f.log.push(event(1), event(2), event(3), event(4));
    s.emit('event', f.log[0]!);
    s.emit('event', f.log[0]!); // duplicate
    s.emit('event', f.log[3]!); // 4 before 2 and 3: a gap
    await until(() => applied.length === 4, 'gap filled');
    expect(applied).toEqual([1, 2, 3, 4]);
    expect(f.resumes).toEqual([1]);
    expect(rt.lastSeq).toBe(4);
    s.emit('event', f.log[2]!); // late copy from the replay
    f.log.push(event(5));
    s.emit('event', f.log[4]!);
    await until(() => applied.length === 5, 'next live event');
    expect(applied).toEqual([1, 2, 3, 4, 5]);
  });

  it('subscribes again after a reconnect, but not to a stream the server refused', async () => {
    const { f, rt } = await setup();
    f.refuse.add('gone');
    await rt.subscribe('kept', 'traffic');
    await expect(rt.subscribe('gone', 'logs')).rejects.toThrow('site not found');
    rt.socket.disconnect();
    rt.socket.connect();
    await until(() => f.subscribes.length >= 3, 're-subscribe');
    await new Promise((r) => setTimeout(r, 200));
    expect(f.subscribes).toEqual(['kept:traffic', 'gone:logs', 'kept:traffic']);
  });

  it('sends its lastSeq and a fresh token on reconnect, and reports resync when the log is gone', async () => {
    const { f, rt, applied, resyncs } = await setup();
    f.log.push(event(1));
    f.sockets[0]!.emit('event', f.log[0]!);
    await until(() => applied.length === 1, 'first event');
    rt.socket.disconnect();
    f.log.push(event(2), event(3));
    rt.socket.connect();
    await until(() => applied.length === 3, 'replayed on reconnect');
    expect(f.tokens).toEqual(['token-1', 'token-2']);
    // The server forgets everything up to 10: the client at 3 must reload.
    rt.socket.disconnect();
    f.log.splice(0, f.log.length, event(11), event(12));
    rt.socket.connect();
    await until(() => resyncs.length === 1, 'resync');
    expect(resyncs).toEqual([12]);
    rt.setLastSeq(12);
    f.log.push(event(13));
    f.sockets.at(-1)!.emit('event', f.log.at(-1)!);
    await until(() => applied.length === 4, 'event after resync');
    expect(applied).toEqual([1, 2, 3, 13]);
  });

  it('while the app reloads after a resync, holds live events instead of asking again, then applies them', async () => {
    const f = await fakeServer();
    f.log.push(event(11), event(12)); // the server forgot everything up to 10
    const rt = new RealtimeClient({ url: f.url, tenantId: TENANT, token: () => 't', lastSeq: 3 });
    cleanup.push(
      () => rt.close(),
      () => f.close(),
    );
    const applied: number[] = [];
    const resyncs: number[] = [];
    rt.onEvent((e) => applied.push(e.seq));
    rt.onResync((seq) => resyncs.push(seq)); // the app starts its REST reload
    await until(() => resyncs.length === 1, 'resync');
    // Events keep coming while the reload runs: no resume (it would only resync again).
    f.log.push(event(13), event(14));
    f.sockets[0]!.emit('event', f.log[2]!);
    f.sockets[0]!.emit('event', f.log[3]!);
    await new Promise((r) => setTimeout(r, 300));
    expect(resyncs).toEqual([12]);
    expect(f.resumes).toEqual([]);
    expect(applied).toEqual([]);
    rt.setLastSeq(12); // reload done
    expect(applied).toEqual([13, 14]);
    expect(rt.lastSeq).toBe(14);
  });
});
