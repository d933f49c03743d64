#!/bin/sh
# Runs once, as the PostgreSQL superuser, when the database is first created (docker-entrypoint-initdb.d).
# Two roles: sharedcare_owner owns the schema and runs migrations (the migrate service); sharedcare, the application
# (web, worker, beat), may use every table the owner creates but never change or empty the audit trail, which
# `manage.py audit_role_restrict --role sharedcare` enforces after every migrate. Only the owner removes events past
# their retention (`manage.py audit_purge`) or partitions the trail (`manage.py audit_partition`).
set -eu
: "${DB_OWNER_PASSWORD:?set DB_OWNER_PASSWORD}"
: "${DB_APP_PASSWORD:?set DB_APP_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE sharedcare_owner LOGIN NOSUPERUSER NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE sharedcare LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO sharedcare_owner;
ALTER SCHEMA public OWNER TO sharedcare_owner;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO sharedcare;
GRANT USAGE ON SCHEMA public TO sharedcare;
-- Every table and sequence the owner's migrations create; TRUNCATE, REFERENCES and TRIGGER are never given.
ALTER DEFAULT PRIVILEGES FOR ROLE sharedcare_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sharedcare;
ALTER DEFAULT PRIVILEGES FOR ROLE sharedcare_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO sharedcare;
SQL
