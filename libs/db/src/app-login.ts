import type { DataSource } from 'typeorm';
import { createDataSource, type DataSourceInput } from './data-source';
import { APP_DB_ROLE } from './tenancy';

/**
 * The URL the api and worker query with: DATABASE_APP_URL when set, otherwise the owner's
 * URL with the user `backplane_app` and no password (trust-authenticated local clusters).
 */
export function appLoginUrl(ownerUrl: string, appUrl?: string): string {
  if (appUrl) return appUrl;
  const u = new URL(ownerUrl);
  u.username = APP_DB_ROLE;
  u.password = '';
  return u.toString();
}

export class UnsafeAppLoginError extends Error {}

interface LoginFacts {
  readonly login: string;
  readonly superuser: boolean;
  readonly bypassrls: boolean;
  readonly owned: number;
  readonly member: boolean;
}

/**
 * Refuses a login that could step around row-level security: a superuser, a role with
 * BYPASSRLS, or one owning tables (owners bypass RLS unless FORCEd, and can drop policies).
 * The session user is checked, so `RESET ROLE` has nowhere better to go.
 */
export async function assertSafeAppLogin(ds: DataSource): Promise<void> {
  const [facts] = await ds.query<LoginFacts[]>(
    `SELECT r.rolname AS login, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
            (SELECT count(*)::int FROM pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S')) AS owned,
            pg_has_role(r.oid, $1, 'MEMBER') AS member
       FROM pg_roles r WHERE r.rolname = session_user`,
    [APP_DB_ROLE],
  );
  if (!facts) throw new UnsafeAppLoginError('cannot read the database login role');
  const problems = [
    facts.superuser && 'is a superuser',
    facts.bypassrls && 'has BYPASSRLS',
    facts.owned > 0 && `owns ${facts.owned} tables or sequences`,
    !facts.member && `is not ${APP_DB_ROLE} or a member of it`,
  ].filter((p): p is string => typeof p === 'string');
  if (problems.length > 0) {
    throw new UnsafeAppLoginError(
      `The database login "${facts.login}" ${problems.join(', ')}: the api and worker must log in as ${APP_DB_ROLE} ` +
        `(DATABASE_APP_URL), not as the table owner (DATABASE_URL is for migrations only).`,
    );
  }
}

/** Opens the app's pool on the app login and checks that login before anything runs on it. */
export async function openAppDataSource(input: DataSourceInput): Promise<DataSource> {
  const ds = createDataSource(input);
  try {
    await ds.initialize();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `Cannot connect to PostgreSQL as the app login (${new URL(input.url).username || 'default user'}): ${msg}. ` +
        `Set DATABASE_APP_URL to a URL that logs in as ${APP_DB_ROLE} (give the role a password with ` +
        `ALTER ROLE ${APP_DB_ROLE} PASSWORD '...'), or use trust authentication for it on a local cluster.`,
      { cause: err },
    );
  }
  try {
    await assertSafeAppLogin(ds);
  } catch (err) {
    await ds.destroy();
    throw err;
  }
  return ds;
}
