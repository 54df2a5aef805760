import { DataSource, type DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

export interface DataSourceInput {
  readonly url: string;
  readonly poolSize?: number;
  readonly applicationName?: string;
}

/** The one data source definition shared by the apps, the tests and the migration CLI. */
export function dataSourceOptions(input: DataSourceInput): DataSourceOptions {
  return {
    type: 'postgres',
    url: input.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    migrationsRun: false,
    logging: false,
    extra: {
      max: input.poolSize ?? 10,
      application_name: input.applicationName ?? 'backplane',
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    },
  };
}

export function createDataSource(input: DataSourceInput): DataSource {
  return new DataSource(dataSourceOptions(input));
}

/** Arbitrary but fixed: every replica takes this advisory lock around migrations. */
export const MIGRATION_LOCK_KEY = 0x6270_6d69; // "bpmi"

/**
 * Runs pending migrations while holding a session-level advisory lock, so two api
 * replicas starting together apply each migration exactly once (the second waits, then
 * finds nothing to do).
 */
export async function runMigrationsLocked(ds: DataSource): Promise<string[]> {
  const runner = ds.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      const applied = await ds.runMigrations({ transaction: 'each' });
      return applied.map((m) => m.name);
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await runner.release();
  }
}

export async function pingDatabase(ds: DataSource): Promise<void> {
  await ds.query('SELECT 1');
}
