import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createDataSource, Database } from '@backplane/db';
import { createHttpApp, createLogger, createMetricsRegistry } from '@backplane/observability';
import type { OpenAPIObject } from '@nestjs/swagger';
import { Redis } from 'ioredis';
import { ApiModule } from './api.module';
import { buildOpenApi } from './app';

/**
 * The api's OpenAPI document, built from the code without a database, Redis or a listening
 * socket: the module graph is instantiated (nothing is initialised, so no timer starts and
 * nothing connects) and swagger reads the controllers. `npm run portal:api` turns it into the
 * portal's generated types; tests compare those with the checked-in file.
 */
export async function openApiDocument(): Promise<OpenAPIObject> {
  const dataDir = mkdtempSync(join(tmpdir(), 'backplane-openapi-'));
  const key = randomBytes(32).toString('base64');
  const config = loadApiConfig({
    DATABASE_URL: 'postgres://openapi@127.0.0.1:1/openapi',
    REDIS_URL: 'redis://127.0.0.1:1',
    JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
    ENCRYPTION_KEYS: `openapi:${key}`,
    TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
  });
  const logger = createLogger({ app: 'openapi', level: 'warn' });
  const redis = new Redis(config.REDIS_URL, { lazyConnect: true, enableOfflineQueue: false });
  const app = await createHttpApp(
    ApiModule.register({
      config,
      secrets: { jwtSigningKey: config.JWT_SIGNING_KEY! },
      keyring: new Keyring([{ id: 'openapi', key: Buffer.from(key, 'base64') }]),
      db: new Database(createDataSource({ url: config.DATABASE_URL, poolSize: 1 })),
      redis,
      logger,
      registry: createMetricsRegistry('api'),
      checks: [],
      redisPrefix: 'openapi:',
    }),
    { logger },
  );
  try {
    return buildOpenApi(app);
  } finally {
    await app.close();
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
