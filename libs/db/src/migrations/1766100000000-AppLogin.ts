import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * The apps log in as the app role itself (issue 14 finding 6, docs/adr/0044-app-database-login.md).
 *
 * Until now the api and worker logged in as the table owner (a superuser in every shipped setup)
 * and dropped to `backplane_app` per transaction; `RESET ROLE` inside a transaction went back to
 * the superuser and saw every tenant. Now `backplane_app` can log in, and is explicitly not a
 * superuser, cannot bypass row-level security and cannot create roles or databases, so a session
 * that logs in as it has nothing to return to. It owns nothing (the migrations, run with
 * DATABASE_URL, own every object).
 *
 * No password is set here: the role is cluster-wide and a password is deployment configuration
 * (the compose file's init script sets one; local clusters with trust authentication need none).
 * Roles are cluster-wide and other databases on the same cluster may rely on this one, so `down`
 * leaves the role as it is.
 */
export class AppLogin1766100000000 implements MigrationInterface {
  name = 'AppLogin1766100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}'
                     AND (NOT rolcanlogin OR rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)) THEN
          ALTER ROLE ${APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
        END IF;
      EXCEPTION WHEN OTHERS THEN
        -- Another database's migration on the same cluster may alter the role concurrently
        -- ("tuple concurrently updated"): fine when the role ended up as wanted.
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}' AND rolcanlogin AND NOT rolsuper
                         AND NOT rolbypassrls AND NOT rolcreaterole AND NOT rolcreatedb) THEN
          RAISE;
        END IF;
      END $$`);
    // Logging in needs CONNECT (PUBLIC usually has it; a hardened cluster may have revoked it).
    await q.query(
      `DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO ${APP_ROLE}', current_database()); END $$`,
    );
  }

  async down(): Promise<void> {
    // The role is shared by every database of the cluster: leave it.
  }
}
