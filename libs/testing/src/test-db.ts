import { createHash, randomBytes } from 'node:crypto';
import { parseVars, processEnv } from '@backplane/config';
import { createDataSource, MIGRATIONS, runMigrationsLocked } from '@backplane/db';
import { Client } from 'pg';
import { ensureLocalServices } from './services';

export function testSettings() {
  const cfg = parseVars(['TEST_DATABASE_URL', 'TEST_REDIS_URL'], processEnv());
  return { databaseUrl: cfg.TEST_DATABASE_URL, redisUrl: cfg.TEST_REDIS_URL };
}

export function urlForDatabase(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The template is named after the migrations it holds, so a new migration makes a new one. */
export function templateName(): string {
  const h = createHash('sha256');
  for (const m of MIGRATIONS) h.update(m.name).update(m.prototype.up.toString()).update(m.prototype.down.toString());
  return `bp_tpl_${h.digest('hex').slice(0, 12)}`;
}

async function withAdmin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: testSettings().databaseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates (once per migration set) a migrated template database to clone from. */
export async function ensureTemplateDatabase(): Promise<string> {
  const name = templateName();
  await withAdmin(async (c) => {
    await c.query('SELECT pg_advisory_lock(7130001)');
    try {
      const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (exists.rowCount === 0) {
        const building = `${name}_build`;
        await c.query(`DROP DATABASE IF EXISTS "${building}"`);
        await c.query(`CREATE DATABASE "${building}"`);
        const ds = createDataSource({ url: urlForDatabase(testSettings().databaseUrl, building), poolSize: 2 });
        await ds.initialize();
        try {
          await runMigrationsLocked(ds);
        } finally {
          await ds.destroy();
        }
        await c.query(`ALTER DATABASE "${building}" RENAME TO "${name}"`);
        await c.query(`ALTER DATABASE "${name}" WITH IS_TEMPLATE true`);
      }
      // Old templates from earlier migration sets and databases left by killed runs.
      const stale = await c.query<{ datname: string }>(
        // Templates of other migration sets may belong to another checkout's run on this machine
        // (a second worktree, a helper): only ones untouched for 6 hours are dropped.
        `SELECT datname FROM pg_database
          WHERE ((datname LIKE 'bp\\_tpl\\_%' AND datname <> $1 AND datname NOT LIKE '%\\_build')
             OR datname LIKE 'bp\\_t\\_%')
            AND (pg_stat_file('base/' || oid, true)).modification < now() - interval '6 hours'`,
        [name],
      );
      for (const row of stale.rows) {
        await c.query(`ALTER DATABASE "${row.datname}" WITH IS_TEMPLATE false`).catch(() => undefined);
        await c.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`).catch(() => undefined);
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock(7130001)');
    }
  });
  return name;
}

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file (a clone of the template). */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `bp_t_${randomBytes(6).toString('hex')}`;
  const template = options.empty ? 'template0' : templateName();
  await withAdmin((c) => c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`));
  return {
    name,
    url: urlForDatabase(testSettings().databaseUrl, name),
    drop: () => withAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * For benchmarks and scripts outside the test runner: makes sure the machine's PostgreSQL
 * and Redis answer (starting them when installed), then clones a fresh migrated database.
 */
export async function prepareScratchDatabase(): Promise<{ tdb: TestDatabase; redisUrl: string }> {
  const { databaseUrl, redisUrl } = testSettings();
  const pg = new URL(databaseUrl);
  const rd = new URL(redisUrl);
  await ensureLocalServices(
    { host: pg.hostname, port: Number(pg.port || 5432) },
    { host: rd.hostname, port: Number(rd.port || 6379) },
  );
  await ensureTemplateDatabase();
  return { tdb: await createTestDatabase(), redisUrl };
}
