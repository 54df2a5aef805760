import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RouterOsClient, type RouterOsClientOptions } from './client';
import { encodeSentence } from './codec';
import {
  RouterOsAbortError,
  RouterOsConnectionError,
  RouterOsError,
  RouterOsFatalError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  RouterOsTrapError,
} from './errors';
import { where } from './query';
import { rawValue } from './values';
import { startFakeRouter, type FakeHandler, type FakeRouter, type FakeRouterOptions } from './testing/fake-router';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function fake(handler: FakeHandler, options?: FakeRouterOptions): Promise<FakeRouter> {
  const router = await startFakeRouter(handler, options);
  cleanups.push(() => router.close());
  return router;
}

async function connect(router: FakeRouter, options: Partial<RouterOsClientOptions> = {}): Promise<RouterOsClient> {
  const client = await RouterOsClient.connect({
    host: '127.0.0.1',
    port: router.port,
    username: 'admin',
    password: 'secret',
    ...options,
  });
  cleanups.push(() => client.close());
  return client;
}

/** A TCP peer that accepts and never answers (closed after the test); `sockets` are the accepted ones. */
async function silentPeer(): Promise<{ sockets: Socket[]; port: number }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => {
    sockets.push(s);
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => r());
      }),
  );
  return { sockets, port: (server.address() as AddressInfo).port };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds (the machine is shared: no fixed sleeps for effects). */
async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

/** Answers print-like commands with the given rows. */
const rowsHandler =
  (rows: Record<string, string>[]): FakeHandler =>
  (cmd, conn) => {
    for (const r of rows) conn.reply(cmd.tag, '!re', r);
    conn.reply(cmd.tag, '!done');
  };

describe('RouterOsClient login', () => {
  it('logs in to RouterOS 6.43+ with name and password', async () => {
    const router = await fake(rowsHandler([{ name: 'r1' }]));
    const client = await connect(router);
    expect(client.loginMethod).toBe('plain');
    expect(router.commands[0]).toMatchObject({ command: '/login', attrs: { name: 'admin', password: 'secret' } });
    expect((await client.exec('/system/identity/print')).rows).toEqual([{ name: 'r1' }]);
  });

  it('answers the pre-6.43 MD5 challenge when auto-detecting', async () => {
    const router = await fake(rowsHandler([]), { login: 'challenge', username: 'userTest', password: 'passTest' });
    const client = await connect(router, { username: 'userTest', password: 'passTest' });
    expect(client.loginMethod).toBe('challenge');
    const second = router.commands[1]!;
    expect(second.attrs).toEqual({ name: 'userTest', response: '0021277bff9ac7caf06aa608e46616d47f' });
  });

  it('uses only the challenge when asked to, without sending the password', async () => {
    const router = await fake(rowsHandler([]), { login: 'challenge' });
    const client = await connect(router, { login: 'challenge' });
    expect(client.loginMethod).toBe('challenge');
    expect(router.commands[0]!.attrs).toEqual({});
  });

  it('refuses a challenge when told the router is 6.43+', async () => {
    const router = await fake(rowsHandler([]), { login: 'challenge' });
    await expect(connect(router, { login: 'plain' })).rejects.toThrow(RouterOsLoginError);
  });

  it('reports a wrong password as RouterOsLoginError with the router message', async () => {
    const router = await fake(rowsHandler([]));
    const err = await connect(router, { password: 'wrong' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsLoginError);
    expect((err as Error).message).toMatch(/invalid user name or password/);
  });
});

describe('RouterOsClient commands', () => {
  it('runs many tagged commands at once and matches out-of-order replies to their commands', async () => {
    const held: { tag: string | undefined; n: string }[] = [];
    const router = await fake((cmd, conn) => {
      held.push({ tag: cmd.tag, n: cmd.attrs['n']! });
      if (held.length === 20) {
        // Answer in reverse order, with an interleaved row for every command.
        for (const h of [...held].reverse()) conn.reply(h.tag, '!re', { n: h.n });
        for (const h of held) conn.reply(h.tag, '!done', { ret: `*${h.n}` });
      }
    });
    const client = await connect(router);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.exec('/echo', { n: i })));
    results.forEach((r, i) => {
      expect(r.rows).toEqual([{ n: String(i) }]);
      expect(r.ret).toBe(`*${i}`);
    });
    expect(new Set(held.map((h) => h.tag)).size).toBe(20);
    expect(client.stats.inFlight).toBe(0);
  });

  it('turns !trap into RouterOsTrapError with category and message, and stays usable', async () => {
    const router = await fake((cmd, conn) => {
      if (cmd.command === '/ip/address/add') {
        conn.reply(cmd.tag, '!trap', { category: '1', message: 'input does not match any value of interface' });
        conn.reply(cmd.tag, '!done');
      } else rowsHandler([{ ok: 'yes' }])(cmd, conn);
    });
    const client = await connect(router);
    const err = await client
      .exec('/ip/address/add', { address: '10.0.0.1/24', interface: 'nope' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTrapError);
    expect((err as RouterOsTrapError).category).toBe(1);
    expect((err as RouterOsTrapError).trapMessage).toBe('input does not match any value of interface');
    expect((await client.exec('/x/print')).rows).toEqual([{ ok: 'yes' }]);
  });

  it('treats !empty as zero rows (RouterOS 7.18+)', async () => {
    const router = await fake((cmd, conn) => {
      conn.reply(cmd.tag, '!empty');
      conn.reply(cmd.tag, '!done');
    });
    const client = await connect(router);
    expect(await client.print('/ip/address')).toEqual([]);
    expect(client.stats.emptyReplies).toBe(1);
  });

  it('ignores sentences for tags it does not know, and untagged ones', async () => {
    const router = await fake((cmd, conn) => {
      conn.reply('999', '!re', { stray: 'x' });
      conn.reply(undefined, '!re', { untagged: 'x' });
      conn.reply('999', '!done');
      rowsHandler([{ name: 'a' }])(cmd, conn);
    });
    const client = await connect(router);
    expect((await client.exec('/x/print')).rows).toEqual([{ name: 'a' }]);
    expect(client.stats.ignoredSentences).toBe(3);
  });

  it('sends attributes, proplist and query words exactly', async () => {
    const router = await fake(rowsHandler([]));
    const client = await connect(router);
    await client.print('/interface', {
      where: where('type', 'ether').or(where('type', 'vlan')),
      proplist: ['name', 'type'],
      attributes: { detail: '' },
    });
    await client.exec('/ip address set', { '.id': '*1', disabled: true, comment: 'a=b c', mtu: 1500 });
    const [print, set] = router.commands.slice(1);
    expect(print!.words.slice(0, -1)).toEqual([
      '/interface/print',
      '=detail=',
      '=.proplist=name,type',
      '?type=ether',
      '?type=vlan',
      '?#|',
    ]);
    expect(set!.words.slice(0, -1)).toEqual([
      '/ip/address/set',
      '=.id=*1',
      '=disabled=yes',
      '=comment=a=b c',
      '=mtu=1500',
    ]);
  });

  it('decodes values as UTF-8 and keeps the raw bytes of binary values', async () => {
    const binary = Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x3d]);
    const router = await fake((cmd, conn) => {
      conn.sentence([
        '!re',
        '=name=Zürich',
        Buffer.concat([Buffer.from('=contents='), binary]),
        '=empty=',
        `.tag=${cmd.tag}`,
      ]);
      conn.reply(cmd.tag, '!done');
    });
    const client = await connect(router);
    const [row] = (await client.exec('/file/read')).rows;
    expect(row!['name']).toBe('Zürich');
    expect(row!['empty']).toBe('');
    expect(rawValue(row!, 'contents')!.equals(binary)).toBe(true);
    expect(rawValue(row!, 'empty')!.length).toBe(0);
    expect(rawValue(row!, 'missing')).toBeUndefined();
  });

  it('times out a silent command, cancels it on the router, and ignores its late replies', async () => {
    let slowTag: string | undefined;
    const router = await fake((cmd, conn) => {
      if (cmd.command === '/slow') {
        slowTag = cmd.tag;
        return;
      }
      if (cmd.command === '/cancel') {
        // Late replies for the cancelled tag, as a real router sends them.
        setTimeout(() => {
          conn.reply(cmd.attrs['tag'], '!re', { late: 'yes' });
          conn.reply(cmd.attrs['tag'], '!trap', { category: '2', message: 'interrupted' });
          conn.reply(cmd.tag, '!done');
          conn.reply(cmd.attrs['tag'], '!done');
        }, 20);
        return;
      }
      rowsHandler([{ fast: 'yes' }])(cmd, conn);
    });
    const client = await connect(router);
    const started = Date.now();
    const err = await client.exec('/slow', {}, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsTimeoutError);
    expect(Date.now() - started).toBeLessThan(5000); // it gave up (100 ms), it did not hang
    await until(() => client.stats.ignoredSentences >= 4);
    expect(router.commands.find((c) => c.command === '/cancel')?.attrs).toEqual({ tag: slowTag });
    expect((await client.exec('/fast')).rows).toEqual([{ fast: 'yes' }]);
    expect(client.isOpen).toBe(true);
  });

  it('aborts a command with an AbortSignal and cancels it on the router', async () => {
    const router = await fake(() => undefined);
    const client = await connect(router);
    const ac = new AbortController();
    const pending = client.exec('/slow', {}, { signal: ac.signal });
    await sleep(20);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(RouterOsAbortError);
    await until(() => router.commands.some((c) => c.command === '/cancel'));
  });
});

describe('RouterOsClient connection failures', () => {
  it('fails every pending command with RouterOsFatalError on !fatal, and refuses new ones', async () => {
    let pending = 0;
    const router = await fake((_cmd, conn) => {
      if (++pending === 3) {
        conn.sentence(['!fatal', 'session terminated on request']);
        conn.socket.end();
      }
    });
    const client = await connect(router);
    const results = await Promise.allSettled([client.exec('/a'), client.exec('/b'), client.exec('/c')]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as RouterOsFatalError;
      expect(reason).toBeInstanceOf(RouterOsFatalError);
      expect(reason.reason).toBe('session terminated on request');
    }
    expect(await client.closed).toBeInstanceOf(RouterOsFatalError);
    expect(client.isOpen).toBe(false);
    await expect(client.exec('/d')).rejects.toBeInstanceOf(RouterOsFatalError);
  });

  it('reports a refused connection clearly', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const err = await RouterOsClient.connect({ host: '127.0.0.1', port, username: 'a', password: 'b' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RouterOsConnectionError);
    expect((err as RouterOsConnectionError).code).toBe('refused');
    expect((err as Error).message).toContain(`127.0.0.1:${port} refused`);
  });

  it('gives up on a peer that accepts but never answers (connect timeout)', async () => {
    const { sockets, port } = await silentPeer();
    const started = Date.now();
    const err = await RouterOsClient.connect({
      host: '127.0.0.1',
      port,
      username: 'a',
      password: 'b',
      connectTimeoutMs: 200,
    }).catch((e: unknown) => e);
    expect((err as RouterOsConnectionError).code).toBe('connect-timeout');
    expect(Date.now() - started).toBeLessThan(5000); // it gave up (200 ms), it did not hang
    // The client hung up: the server side sees the connection end.
    await until(() => sockets[0]!.readableEnded);
  });

  it('stops connecting when the signal aborts, and refuses an already aborted signal', async () => {
    const { sockets, port } = await silentPeer();
    const ac = new AbortController();
    const pending = RouterOsClient.connect({
      host: '127.0.0.1',
      port,
      username: 'a',
      password: 'b',
      signal: ac.signal,
    });
    await until(() => sockets.length === 1);
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(RouterOsAbortError);
    await until(() => sockets[0]!.readableEnded);
    await expect(
      RouterOsClient.connect({ host: '127.0.0.1', port, username: 'a', password: 'b', signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(RouterOsAbortError);
  });

  it('reports a reset connection to every pending command', async () => {
    const router = await fake((_cmd, conn) => conn.socket.resetAndDestroy());
    const client = await connect(router);
    const err = await client.exec('/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsConnectionError);
    expect(['reset', 'closed']).toContain((err as RouterOsConnectionError).code);
    expect(client.isOpen).toBe(false);
  });

  it('drops the connection when the peer breaks the protocol', async () => {
    const router = await fake((_cmd, conn) => conn.write(Buffer.from([0xf8, 1, 2, 3])));
    const client = await connect(router);
    const err = await client.exec('/x').catch((e: unknown) => e);
    expect((err as RouterOsConnectionError).code).toBe('protocol');
  });

  it('probes an idle connection and drops it when the probe goes unanswered', async () => {
    let answer = true;
    const router = await fake((cmd, conn) => {
      if (cmd.command === '/system/identity/print' && answer) rowsHandler([{ name: 'r' }])(cmd, conn);
    });
    const client = await connect(router, { keepaliveIntervalMs: 50, keepaliveTimeoutMs: 400 });
    const probes = () => router.commands.filter((c) => c.command === '/system/identity/print').length;
    await until(() => probes() >= 2);
    expect(client.isOpen).toBe(true);
    answer = false;
    const reason = await client.closed;
    expect(reason?.code).toBe('keepalive-timeout');
  });

  it('closes cleanly: pending commands fail, no sockets or timers are left behind', async () => {
    const router = await fake(() => undefined);
    const baseline = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout');
    const client = await RouterOsClient.connect({
      host: '127.0.0.1',
      port: router.port,
      username: 'admin',
      password: 'secret',
      keepaliveIntervalMs: 1000,
    });
    const pending = client.exec('/never', {}, { timeoutMs: 5000 }).catch((e: unknown) => e);
    await client.close();
    const err = await pending;
    expect((err as RouterOsConnectionError).code).toBe('client-closed');
    expect(await client.closed).toBeUndefined();
    await until(() => router.connections[0]!.socket.destroyed);
    const after = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout');
    // The fake router's own server-side socket is gone too once the client has closed.
    expect(after.length).toBeLessThanOrEqual(baseline.length);
  });
});

describe('RouterOsClient against a hostile peer', () => {
  it('random and mutated replies only ever settle commands with RouterOsErrors', async () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const router = await fake((cmd, conn) => {
      const words: (string | Buffer)[] = [
        ['!re', '!done', '!trap', '!empty', '!fatal', '!weird', '=x=y'][rand(7)]!,
        `=ret=*${rand(100)}`,
        ['=category=', '=category=abc', '=category=2', '=message=m'][rand(4)]!,
        Buffer.from(Array.from({ length: rand(20) }, () => rand(256))),
        `.tag=${rand(3) === 0 ? '999' : cmd.tag}`,
      ];
      const wire = encodeSentence([words[0]!, ...words.slice(1).filter(() => rand(4) !== 0)]);
      if (rand(3) === 0) wire[rand(wire.length)] = rand(5) === 0 ? 0xf8 + rand(8) : rand(256);
      // Sometimes a clean ending, sometimes nothing more (the timeout settles it).
      conn.write(rand(2) === 0 ? Buffer.concat([wire, encodeSentence(['!done', `.tag=${cmd.tag}`])]) : wire);
    });
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 25; i++) {
      const client = await connect(router, { commandTimeoutMs: 50 });
      const results = await Promise.allSettled([client.exec('/a'), client.exec('/b'), client.exec('/c')]);
      for (const r of results) {
        const key =
          r.status === 'fulfilled' ? 'ok' : r.reason instanceof RouterOsError ? r.reason.constructor.name : 'FOREIGN';
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      await client.close();
    }
    expect(outcomes.get('FOREIGN')).toBeUndefined();
    // The run went through more than one kind of outcome.
    expect(outcomes.size).toBeGreaterThan(2);
  });
});

describe('RouterOsClient streams', () => {
  /** A router that streams a row every 5 ms per streaming command until cancelled. */
  async function streamingRouter() {
    const timers = new Map<string, NodeJS.Timeout>();
    const router = await fake((cmd, conn) => {
      if (cmd.command === '/cancel') {
        const target = cmd.attrs['tag']!;
        clearInterval(timers.get(target));
        timers.delete(target);
        conn.reply(target, '!trap', { category: '2', message: 'interrupted' });
        conn.reply(cmd.tag, '!done');
        conn.reply(target, '!empty');
        conn.reply(target, '!done');
        return;
      }
      if (cmd.command === '/bad/listen') {
        conn.reply(cmd.tag, '!trap', { category: '0', message: 'no such command' });
        conn.reply(cmd.tag, '!done');
        return;
      }
      let n = 0;
      timers.set(
        cmd.tag!,
        setInterval(() => conn.reply(cmd.tag, '!re', { '.id': `*${++n}`, 'rx-bits-per-second': String(n * 1000) }), 5),
      );
    });
    cleanups.push(() => {
      timers.forEach((t) => clearInterval(t));
      return Promise.resolve();
    });
    return { router, timers };
  }

  it('streams rows and cancels with /cancel when the consumer breaks', async () => {
    const { router, timers } = await streamingRouter();
    const client = await connect(router);
    const stream = client.stream('/interface/monitor-traffic', { interface: 'ether1' });
    const seen: string[] = [];
    for await (const row of stream) {
      seen.push(row['.id']!);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(['*1', '*2', '*3']);
    const cancel = router.commands.find((c) => c.command === '/cancel');
    expect(cancel?.attrs['tag']).toBe(stream.tag);
    expect(timers.size).toBe(0);
    expect(client.stats.inFlight).toBe(0);
    // The connection is still good.
    const other = client.listen('/ip/address');
    const first = await other.next();
    expect(first.done).toBe(false);
    await other.return();
  });

  it('cancels on AbortSignal and throws RouterOsAbortError from the iteration', async () => {
    const { router, timers } = await streamingRouter();
    const client = await connect(router);
    const ac = new AbortController();
    const rows: unknown[] = [];
    const run = async () => {
      for await (const row of client.listen('/interface', { signal: ac.signal })) {
        rows.push(row);
        if (rows.length === 2) ac.abort();
      }
    };
    await expect(run()).rejects.toBeInstanceOf(RouterOsAbortError);
    await until(() => client.stats.inFlight === 0);
    expect(timers.size).toBe(0);
  });

  it('throws a trap from the iteration', async () => {
    const { router } = await streamingRouter();
    const client = await connect(router);
    const run = async () => {
      for await (const _ of client.listen('/bad')) expect.unreachable();
    };
    await expect(run()).rejects.toThrow(/no such command/);
  });

  it('ends the iteration with the connection error when the router goes away', async () => {
    const { router } = await streamingRouter();
    const client = await connect(router);
    const stream = client.stream('/interface/monitor-traffic', { interface: 'ether1' });
    await stream.next();
    router.connections[0]!.socket.destroy();
    const drain = async () => {
      for (;;) if ((await stream.next()).done) return;
    };
    await expect(drain()).rejects.toBeInstanceOf(RouterOsConnectionError);
  });

  it('close() ends a running stream with a client-closed error and leaves nothing running', async () => {
    const { router } = await streamingRouter();
    const client = await connect(router);
    const stream = client.stream('/interface/monitor-traffic', { interface: 'ether1' });
    await stream.next();
    const drained = (async () => {
      for (;;) if ((await stream.next()).done) return 'done';
    })().catch((e: unknown) => e);
    await client.close();
    expect(await drained).toMatchObject({ code: 'client-closed' });
    expect(client.stats.inFlight).toBe(0);
  });

  it('fails a stream whose consumer falls too far behind', async () => {
    const router = await fake((cmd, conn) => {
      if (cmd.command !== '/cancel') for (let n = 1; n <= 20; n++) conn.reply(cmd.tag, '!re', { n: String(n) });
    });
    const client = await connect(router, { maxQueuedRows: 5, cancelTimeoutMs: 100 });
    const stream = client.stream('/interface/monitor-traffic');
    await stream.next();
    await until(() => router.commands.some((c) => c.command === '/cancel'));
    const drain = async () => {
      for (;;) if ((await stream.next()).done) return;
    };
    await expect(drain()).rejects.toMatchObject({ code: 'overflow' });
  });
});
