/**
 * A TCP proxy on one link of the campaign (api↔PostgreSQL, worker↔Redis, worker↔router...):
 * forwards bytes, and on demand adds latency, resets every open connection, blackholes
 * (accepts and reads, forwards nothing, answers nothing) or refuses (resets every new
 * connection at once, as a server that is down or restarting) until healed.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type LinkMode = 'ok' | 'blackhole' | 'refuse';

export class LinkProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  latencyMs = 0;
  mode: LinkMode = 'ok';
  port = 0;

  constructor(
    readonly name: string,
    private readonly target: { host: string; port: number },
  ) {}

  async listen(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, '127.0.0.1', () => res());
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : port;
    return this.port;
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    if (this.mode === 'refuse') {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    if (this.mode === 'blackhole') {
      // Held open and silent: the peer sees a connect that never answers.
      client.on('data', () => undefined);
      client.on('error', () => undefined);
      const pair: [Socket, Socket] = [client, client];
      this.pairs.add(pair);
      client.once('close', () => this.pairs.delete(pair));
      return;
    }
    const upstream = connect(this.target);
    upstream.setNoDelay(true);
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    const pipe = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (this.mode === 'blackhole') return;
        if (this.latencyMs > 0) setTimeout(() => to.destroyed || to.write(chunk), this.latencyMs);
        else to.write(chunk);
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }

  /** Resets every open connection (RST to both ends): a link flap. */
  reset(): void {
    for (const [a, b] of [...this.pairs]) {
      a.resetAndDestroy();
      if (b !== a) b.resetAndDestroy();
    }
    this.pairs.clear();
  }

  heal(): void {
    this.latencyMs = 0;
    if (this.mode === 'blackhole') {
      this.mode = 'ok';
      // Connections opened during the blackhole never reached the other end: close them.
      this.reset();
    }
    if (this.mode === 'refuse') this.mode = 'ok';
  }

  async close(): Promise<void> {
    this.reset();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }
}
