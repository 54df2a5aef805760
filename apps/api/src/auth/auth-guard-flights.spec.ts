import type { Reflector } from '@nestjs/core';
import type { ApiKeyAuthRow, ApiKeysRepository, RegionsRepository, SessionsRepository } from '@backplane/db';
import { describe, expect, it } from 'vitest';
import type { ApiMetrics } from '../common/metrics';
import type { Throttle } from '../common/throttle';
import type { ApiDeps } from '../deps';
import type { AuthCache } from './auth-cache';
import { AuthGuard } from './auth.guard';
import type { TokenService } from './tokens';

const TENANT = '6f1c1d0e-8a4b-4c3d-9e2f-1a2b3c4d5e6f';
const KEY = 'bpk_test_secret_of_some_length';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const row = (revoked: boolean): ApiKeyAuthRow => ({
  id: 'b5f0c7a2-3d4e-4f60-8a1b-2c3d4e5f6a7b',
  tenantId: TENANT,
  role: 'viewer',
  name: 'k',
  expiresAt: new Date(Date.now() + 3_600_000),
  revokedAt: revoked ? new Date() : null,
  createdBy: null,
  memberRole: 'owner',
});

/**
 * An AuthGuard over fakes: the database reads wait for the test (`lookups`), the auth cache
 * stores nothing and its `mark` (the invalidations applied) and `usable` are the test's.
 */
function harness() {
  const lookups: { resolve: (r: ApiKeyAuthRow | null) => void }[] = [];
  let touches = 0;
  const state = { mark: 0, usable: true };
  const db = {
    readPlatform: () => {
      const d = deferred<ApiKeyAuthRow | null>();
      lookups.push(d);
      return d.promise;
    },
    inTenantOneTrip: () => {
      touches++;
      return Promise.resolve(true);
    },
  };
  const cache = {
    epochKey: 'epoch',
    usable: () => state.usable,
    mark: () => state.mark,
    get: () => undefined,
    set: () => undefined,
  };
  const throttle = {
    hitAndPeek: () =>
      Promise.resolve({ hit: { count: 1, ttl: 60 }, peek: { count: 0, ttl: 1 }, reads: [state.mark, 0] }),
    hit: () => Promise.resolve({ count: 1, ttl: 300 }),
  };
  const metrics = { authFailures: { inc: () => undefined }, rateLimited: { inc: () => undefined } };
  const deps = { db, config: { API_RATE_LIMIT: 1000 }, redisPrefix: 't:' } as unknown as ApiDeps;
  const guard = new AuthGuard(
    {} as Reflector,
    deps,
    { hash: (t: string) => t } as unknown as TokenService,
    throttle as unknown as Throttle,
    metrics as unknown as ApiMetrics,
    {} as SessionsRepository,
    {} as ApiKeysRepository,
    {} as RegionsRepository,
    cache as unknown as AuthCache,
  );
  const connect = () => guard.authenticateTenantBearer(KEY, TENANT, 'viewer', '127.0.0.1');
  const settle = () => new Promise((r) => setImmediate(r));
  return { guard, lookups, state, connect, settle, touches: () => touches };
}

describe('AuthGuard: concurrent cache misses share one lookup (ADR 0114)', () => {
  it('50 concurrent handshakes of one API key make one key lookup and one last-used write', async () => {
    const h = harness();
    const all = Array.from({ length: 50 }, h.connect);
    await h.settle();
    expect(h.lookups).toHaveLength(1);
    h.lookups[0]!.resolve(row(false));
    const results = await Promise.all(all);
    expect(results.every((r) => r.role === 'viewer')).toBe(true);
    expect(h.touches()).toBe(1);
  });

  it('a request that starts after an invalidation was applied does not join a lookup begun before it', async () => {
    const h = harness();
    const before = h.connect();
    await h.settle();
    expect(h.lookups).toHaveLength(1);
    h.state.mark = 1; // the key's revocation reached this process while the first lookup ran
    const after = h.connect();
    await h.settle();
    expect(h.lookups).toHaveLength(2);
    h.lookups[0]!.resolve(row(false)); // read before the revocation committed
    h.lookups[1]!.resolve(row(true));
    await expect(before).resolves.toMatchObject({ role: 'viewer' });
    await expect(after).rejects.toMatchObject({ code: 'unauthorized', message: 'API key was revoked' });
  });

  it('a request that may not use the cache (its process lags behind the epoch) always reads for itself', async () => {
    const h = harness();
    h.state.usable = false;
    const all = [h.connect(), h.connect(), h.connect()];
    await h.settle();
    expect(h.lookups).toHaveLength(3);
    for (const l of h.lookups) l.resolve(row(false));
    await Promise.all(all);
    expect(h.touches()).toBe(3);
  });
});
