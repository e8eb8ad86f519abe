#!/bin/sh
# The database's two roles, neither a superuser:
#   FACESEARCH_DB_OWNER (default facesearch_owner): owns the database and its schema; the
#     compose `migrate` service connects as it, so every table a migration creates is its.
#   FACESEARCH_DB_USER (default facesearch_app): what the API and the workers connect as.
#     It may read and write rows in the schema's tables and use their sequences, and nothing
#     else: no DDL, no TRUNCATE, no other database, no roles. Default privileges give it the
#     same on every table and sequence the owner creates later, so a new migration needs no
#     new grant.
#
# The postgres image runs this once, when it initialises an empty data volume (mounted in
# /docker-entrypoint-initdb.d), as the superuser POSTGRES_USER, on POSTGRES_DB (which the
# image has just created). It is idempotent: run it again by hand on a volume made before it
# existed, or after changing a password:
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-facesearch-roles.sh
# Passwords are read by psql from the environment (\getenv), never put on a command line.

set -e

: "${FACESEARCH_DB_OWNER_PASSWORD:?FACESEARCH_DB_OWNER_PASSWORD must be set: the password of the role that owns the schema (migrations)}"
: "${FACESEARCH_DB_PASSWORD:?FACESEARCH_DB_PASSWORD must be set: the password of the role the app connects as}"
: "${POSTGRES_DB:?POSTGRES_DB must name the app database}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER:-postgres}" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" \
  -v owner="${FACESEARCH_DB_OWNER:-facesearch_owner}" \
  -v app="${FACESEARCH_DB_USER:-facesearch_app}" <<'EOSQL'
\getenv owner_password FACESEARCH_DB_OWNER_PASSWORD
\getenv app_password FACESEARCH_DB_PASSWORD

-- Created if missing, then (re)set, so that a second run only updates passwords.
SELECT format('CREATE ROLE %I', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  NOINHERIT PASSWORD :'app_password';

-- The database: its owner's; only these two roles may connect to it (and the superuser).
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app";

-- The schema: the owner creates in it; the app only uses what is there.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- Rows, not structure: on the tables and sequences there now (a re-run after migrations) ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
-- ... and on every one the owner creates from now on.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app";
EOSQL
