import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/** Every column holding a keyring envelope (`bp1:<keyId>:...`), and the triggers' names. */
export const ENCRYPTED_COLUMNS: readonly { table: string; columns: readonly string[] }[] = [
  { table: 'sites', columns: ['router_password_enc', 'tunnel_secret_enc'] },
  { table: 'site_agents', columns: ['pending_script_enc'] },
  { table: 'backups', columns: ['content_enc'] },
  { table: 'jobs', columns: ['export_before_enc', 'export_after_enc'] },
  { table: 'users', columns: ['totp_secret'] },
  { table: 'pki_authorities', columns: ['private_key_enc'] },
  { table: 'keyring_check', columns: ['value'] },
  { table: 'idempotency_records', columns: ['body_enc'] },
];

/**
 * Key ids in use (issue 15 finding 7, docs/adr/0059-key-rotation.md).
 *
 * `key_ids_in_use` is a superset of the key ids any stored envelope names: a trigger on every
 * encrypted column adds the id of each value written (an index probe; no counter row to
 * contend on), and `npm run keys:rotate` removes an id only after it re-encrypted every value
 * under the newest key and found none left. Start-up reads this small table and refuses to
 * run when an id is missing from the keyring, instead of discovering unreadable backups later.
 */
export class KeyIdsInUse1766610000000 implements MigrationInterface {
  name = 'KeyIdsInUse1766610000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "key_ids_in_use" (
        "key_id" text PRIMARY KEY,
        "first_seen" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
      )`);
    await q.query(`GRANT SELECT ON "key_ids_in_use" TO ${APP_ROLE}`);
    await q.query(`
      CREATE FUNCTION "bp_note_key_ids"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
          col text;
          v text;
          row_json jsonb := to_jsonb(NEW);
        BEGIN
          FOREACH col IN ARRAY TG_ARGV LOOP
            v := row_json ->> col;
            IF v IS NOT NULL AND v LIKE 'bp1:%' THEN
              INSERT INTO key_ids_in_use (key_id) VALUES (split_part(v, ':', 2)) ON CONFLICT DO NOTHING;
            END IF;
          END LOOP;
          RETURN NULL;
        END $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_note_key_ids() FROM PUBLIC`);
    // The owner sees tenant rows only with app.system on (RLS is forced).
    await q.query(`SELECT set_config('app.system', 'on', false)`);
    for (const { table, columns } of ENCRYPTED_COLUMNS) {
      const cols = columns.map((c) => `"${c}"`).join(', ');
      const args = columns.map((c) => `'${c}'`).join(', ');
      await q.query(
        `CREATE TRIGGER "${table}_key_ids" AFTER INSERT OR UPDATE OF ${cols} ON "${table}"
           FOR EACH ROW EXECUTE FUNCTION bp_note_key_ids(${args})`,
      );
      // Backfill (the only full scan: once, at this migration).
      for (const c of columns) {
        await q.query(
          `INSERT INTO key_ids_in_use (key_id)
             SELECT DISTINCT split_part("${c}", ':', 2) FROM "${table}" WHERE "${c}" LIKE 'bp1:%'
           ON CONFLICT DO NOTHING`,
        );
      }
    }
    await q.query(`SELECT set_config('app.system', '', false)`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const { table } of ENCRYPTED_COLUMNS) await q.query(`DROP TRIGGER "${table}_key_ids" ON "${table}"`);
    await q.query(`DROP FUNCTION "bp_note_key_ids"()`);
    await q.query(`DROP TABLE "key_ids_in_use"`);
  }
}
