#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume: creates the login
# the api and worker query with (DATABASE_APP_URL). It is not a superuser, cannot bypass
# row-level security and owns nothing; the migrations (DATABASE_URL, the owner) grant it
# exactly what it needs. See docs/adr/0044-app-database-login.md.
# An existing volume (created before this script) gets the role from the migrations without a
# password: set one once with
#   docker compose exec postgres psql -U backplane -c "ALTER ROLE backplane_app PASSWORD '...'"
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$BACKPLANE_APP_PASSWORD" <<'SQL'
CREATE ROLE backplane_app LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'pw';
SQL
