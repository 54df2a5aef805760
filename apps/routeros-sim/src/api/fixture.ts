import { startRouter, type SimRouter } from '../router';
import { RawApiClient } from './raw-client';

/**
 * For specs: simulated routers and raw API clients started by one spec file, all stopped by
 * `stop()` (call it from `afterEach`). A spec may push routers or clients it made itself.
 */
export class SimFixture {
  readonly routers: SimRouter[] = [];
  readonly clients: RawApiClient[] = [];

  constructor(private readonly defaults: { rebootDelayMs: number; login: boolean }) {}

  /** A router (defaults, then `opts`) and an API client connected to it (logged in as admin if asked). */
  async up(opts: Parameters<typeof startRouter>[0] = {}): Promise<[SimRouter, RawApiClient]> {
    const r = await startRouter({ rebootDelayMs: this.defaults.rebootDelayMs, ...opts });
    this.routers.push(r);
    const c = await RawApiClient.connect(r.port);
    this.clients.push(c);
    if (this.defaults.login) await c.login();
    return [r, c];
  }

  async stop(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    await Promise.all(this.routers.splice(0).map((r) => r.stop()));
  }
}
