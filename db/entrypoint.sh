#!/usr/bin/env bash
# Parley database entrypoint.
#
# `postgres [args]` (the default CMD):
#   1. as root: create $PGDATA inside the bind mount, give it to postgres (0700), read
#      the password secret (uid 10001, mode 0400: readable by root only here);
#   2. first start only: initdb (peer for the local superuser, SCRAM-SHA-256 for the rest);
#   3. every start: a temporary server on the Unix socket only (no TCP, so healthchecks
#      stay red) makes sure the app role and database exist and (re)sets the role's
#      password from the secret — a regenerated secret volume keeps working with old data;
#   4. exec the real server as `postgres` (PID 1; STOPSIGNAL SIGINT = fast shutdown).
# Any other command (e.g. `psql ...`) is exec'd unchanged.
#
# The password never appears on a command line, in the server log or on stdout: it goes
# to psql through its environment and is interpolated as a quoted literal (:'pw').
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data/pg17}
POSTGRES_USER=${POSTGRES_USER:-parley}
POSTGRES_DB=${POSTGRES_DB:-parley}
POSTGRES_PASSWORD_FILE=${POSTGRES_PASSWORD_FILE:-/run/secrets/db_password}
MONITOR_PASSWORD_FILE=${MONITOR_PASSWORD_FILE:-/run/monitor/monitor_password}
PARLEY_CONF=/etc/postgresql/parley/postgresql.conf
PG_MAJOR=17
export PGDATA

log() { # log LEVEL EVENT [DETAIL] — one JSON line, like the other services' logs
  local extra=""
  if [[ -n ${3:-} ]]; then
    local d=${3//\\/\\\\}
    extra=",\"detail\":\"${d//\"/\\\"}\""
  fi
  printf '{"ts":"%s","level":"%s","event":"%s","service":"db"%s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" "$1" "$2" "$extra" >&2
}
die() { log error "$1" "${2:-}"; exit 1; }

if [[ ${1:-} != postgres ]]; then
  exec "$@"
fi

# Run a command as the postgres user (or as ourselves when the container runs as it).
if [[ $(id -u) == 0 ]]; then
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
else
  as_pg=()
fi

# --- 1. data directory -----------------------------------------------------------------
mkdir -p "$PGDATA"
if [[ $(id -u) == 0 ]]; then
  # Only the directory Parley owns is chowned; the mount point itself belongs to the
  # host user and merely needs to be traversable by postgres.
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  find "$PGDATA" -mindepth 1 \! -user postgres -exec chown -h postgres:postgres {} +
  parent=$(dirname "$PGDATA")
  if ! "${as_pg[@]}" test -x "$parent"; then
    chmod o+x "$parent"
    log warning "made the data mount traversable" "chmod o+x $parent"
  fi
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
fi

# --- password secret -------------------------------------------------------------------
[[ -r $POSTGRES_PASSWORD_FILE ]] || die "password file missing or unreadable" "$POSTGRES_PASSWORD_FILE"
db_password=$(<"$POSTGRES_PASSWORD_FILE")
db_password=${db_password%%[[:space:]]*} # the file is one token; drop a trailing newline
[[ -n $db_password ]] || die "password file is empty" "$POSTGRES_PASSWORD_FILE"

# --- 2. first start: initdb --------------------------------------------------------------
if [[ -s $PGDATA/PG_VERSION ]]; then
  version=$(<"$PGDATA/PG_VERSION")
  [[ $version == "$PG_MAJOR" ]] ||
    die "data directory is from another PostgreSQL major version" "$PGDATA is $version, server is $PG_MAJOR; upgrade with pg_upgrade or dump/restore"
else
  # Leftovers of an interrupted initdb would make it refuse to run; nothing in an
  # uninitialised data directory is worth keeping.
  if [[ -n $(ls -A "$PGDATA") ]]; then
    log warning "removing an incomplete data directory" "$PGDATA"
    find "$PGDATA" -mindepth 1 -delete
  fi
  log info "initialising database cluster" "$PGDATA"
  # builtin C.UTF-8 provider (new in 17): code-point collation and Unicode case mapping
  # that never change with a glibc upgrade, so text indexes never need a REINDEX.
  "${as_pg[@]}" initdb --pgdata="$PGDATA" --username=postgres \
    --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale-provider=builtin --builtin-locale=C.UTF-8 --locale=C.UTF-8 \
    --data-checksums >/dev/null
fi

# The configuration lives in the image (/etc/postgresql/parley); $PGDATA only points there.
# Rewritten on every start so clusters created by an older image follow along.
"${as_pg[@]}" tee "$PGDATA/postgresql.conf" >/dev/null <<EOF
# Managed by the Parley db entrypoint; edit db/postgresql.conf in the repository instead.
include '$PARLEY_CONF'
EOF
"${as_pg[@]}" tee "$PGDATA/pg_hba.conf" >/dev/null <<EOF
# Unused: hba_file points to /etc/postgresql/parley/pg_hba.conf (db/pg_hba.conf in the repository).
EOF

# --- 3. role and database, on a socket-only temporary server -----------------------------
log info "starting temporary server (socket only)"
"${as_pg[@]}" pg_ctl --pgdata="$PGDATA" --wait --timeout=120 --silent \
  --options="-c listen_addresses='' -c log_checkpoints=off" start
stop_temp() { "${as_pg[@]}" pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop || true; }
trap stop_temp EXIT

# \getenv reads the password from psql's environment (never argv); the SET lines keep
# the statement text, which contains it as a literal, out of the server log even if a
# statement fails.
PARLEY_DB_PASSWORD=$db_password "${as_pg[@]}" psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 \
  --username=postgres --dbname=postgres \
  --set=app_user="$POSTGRES_USER" --set=app_db="$POSTGRES_DB" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
\getenv app_pw PARLEY_DB_PASSWORD

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') AS create_role \gset
\if :create_role
  CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
\endif
ALTER ROLE :"app_user" WITH LOGIN PASSWORD :'app_pw';
\unset app_pw

SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') AS create_db \gset
\if :create_db
  -- The owner gets everything, including the public schema (owned by pg_database_owner
  -- since PostgreSQL 15, where PUBLIC has no CREATE). Other roles may not even connect.
  CREATE DATABASE :"app_db" OWNER :"app_user";
  REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
\endif
SQL
unset db_password

# The read-only monitoring role for the postgres exporter (observability profile), when its
# secret is mounted: pg_monitor can read statistics, never the application's rows.
if [[ -r $MONITOR_PASSWORD_FILE && -s $MONITOR_PASSWORD_FILE ]]; then
  PARLEY_MONITOR_PASSWORD=$(<"$MONITOR_PASSWORD_FILE") "${as_pg[@]}" psql --no-psqlrc --quiet \
    --set=ON_ERROR_STOP=1 --username=postgres --dbname=postgres \
    --set=app_db="$POSTGRES_DB" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
\getenv monitor_pw PARLEY_MONITOR_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'parley_monitor') AS create_role \gset
\if :create_role
  CREATE ROLE parley_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
\endif
ALTER ROLE parley_monitor WITH LOGIN PASSWORD :'monitor_pw' CONNECTION LIMIT 5;
\unset monitor_pw
GRANT pg_monitor TO parley_monitor;
GRANT CONNECT ON DATABASE :"app_db" TO parley_monitor;
SQL
  log info "monitoring role ready"
fi

trap - EXIT
stop_temp
log info "role and database ready" "role=$POSTGRES_USER database=$POSTGRES_DB"

# --- 4. the server ---------------------------------------------------------------------
exec "${as_pg[@]}" "$@"
