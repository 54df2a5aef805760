import { ensureLocalServices, ensureTemplateDatabase, testSettings } from '@backplane/testing';

/** Once per `vitest run`: PostgreSQL and Redis up, the migrated template database ready. */
export default async function setup(): Promise<void> {
  const { databaseUrl, redisUrl } = testSettings();
  const pg = new URL(databaseUrl);
  const redis = new URL(redisUrl);
  await ensureLocalServices(
    { host: pg.hostname, port: Number(pg.port || 5432) },
    { host: redis.hostname, port: Number(redis.port || 6379) },
  );
  await ensureTemplateDatabase();
}
