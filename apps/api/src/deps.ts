import type { ApiConfig, Secrets } from '@backplane/config';
import type { Keyring } from '@backplane/crypto';
import type { Database } from '@backplane/db';
import type { ReadinessCheck } from '@backplane/observability';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** What the api process hands its root module: built once in main.ts (or a test). */
export interface ApiDeps {
  readonly config: ApiConfig;
  readonly secrets: Pick<Secrets, 'jwtSigningKey'>;
  readonly keyring: Keyring;
  readonly db: Database;
  readonly redis: Redis;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly checks: readonly ReadinessCheck[];
  /** Prefix of every Redis key this process writes (tests use one per file). */
  readonly redisPrefix: string;
}

export const API_DEPS = Symbol('API_DEPS');
