#!/usr/bin/env bash
# Parley database entrypoint.
#
# `postgres [args]` (the default CMD):
#   1. as root: create $PGDATA inside the bind mount, refuse a non-empty one that is not a
#      cluster and not its own interrupted initdb (it never deletes what it did not
#      create), give it to postgres (0700), read the two password secrets (uid 10001,
#      mode 0400: readable by root only here);
#   2. first start only: initdb (peer for the local superuser, SCRAM-SHA-256 for the rest),
#      marked by $PGDATA.initdb beside it while it runs;
#   3. every start: a temporary server on the Unix socket only (no TCP, so healthchecks
#      stay red) brings the roles to one state (db/README.md, "Roles and rights"): the
#      schema owner (migrations) and the app role (data rights only) exist with the
#      passwords from the secrets, the owner owns the database and every object the app
#      role owned before (the single-role layout), and the app role's grants and timeouts
#      are re-applied. Idempotent: a fresh cluster and an upgraded one end up the same;
#   4. exec the real server as `postgres` (PID 1; STOPSIGNAL SIGINT = fast shutdown).
# Any other command (e.g. `psql ...`) is exec'd unchanged.
#
# Passwords never appear on a command line, in the server log or on stdout: they go to
# psql through its environment and are interpolated as quoted literals (:'pw').
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data/pg17}
POSTGRES_USER=${POSTGRES_USER:-parley}             # the app role: data rights only
POSTGRES_PASSWORD_FILE=${POSTGRES_PASSWORD_FILE:-/run/secrets/db-app/app_password}
POSTGRES_OWNER=${POSTGRES_OWNER:-parley_owner}     # owns the database and schema: migrations
POSTGRES_OWNER_PASSWORD_FILE=${POSTGRES_OWNER_PASSWORD_FILE:-/run/secrets/db-owner/owner_password}
POSTGRES_DB=${POSTGRES_DB:-parley}
# The app role's bounds (db/README.md): no statement runs longer, no transaction idles longer.
APP_STATEMENT_TIMEOUT=${APP_STATEMENT_TIMEOUT:-5s}
APP_IDLE_IN_TRANSACTION_TIMEOUT=${APP_IDLE_IN_TRANSACTION_TIMEOUT:-10s}
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

# The server's few lines before its logging collector takes over ("redirecting log output
# to logging collector process", start-up failures) are plain text: wrap each in JSON.
json_lines() {
  local line level
  while IFS= read -r line; do
    if [[ $line == '{'* ]]; then
      printf '%s
' "$line"
      continue
    fi
    case $line in
      *FATAL:* | *PANIC:* | *ERROR:*) level=error ;;
      *WARNING:*) level=warning ;;
      *) level=info ;;
    esac
    log "$level" "postgres" "${line//$'\t'/ }"
  done
}

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
# initdb runs only while this marker exists beside $PGDATA (never inside: initdb wants an
# empty directory), so a directory without PG_VERSION is ours to clear only if the marker
# says a previous start began initdb there. Decided before anything in it is touched.
initdb_marker=$PGDATA.initdb
mkdir -p "$PGDATA"
if [[ -e $initdb_marker ]]; then
  data_state=interrupted  # initdb began and never finished (even if PG_VERSION exists)
elif [[ -s $PGDATA/PG_VERSION ]]; then
  data_state=cluster
elif [[ -z $(ls -A "$PGDATA") ]]; then
  data_state=empty
else
  die "refusing to use a non-empty data directory Parley did not create" \
    "$PGDATA has files but no PG_VERSION and no $initdb_marker; nothing was changed. Move them away (or restore a backup into an empty directory: ops/restore)"
fi
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
# The logging collector writes JSON lines into a named pipe; a reader copies them to the
# container's output for as long as the container lives (it outlives each server: the
# temporary one below and the real one), so `docker compose logs db` is JSON throughout.
log_pipe=/var/run/postgresql/log/postgresql.json
"${as_pg[@]}" mkdir -p "${log_pipe%/*}"
[[ -p $log_pipe ]] || "${as_pg[@]}" mkfifo -m 0600 "$log_pipe"
(while cat "$log_pipe"; do :; done) >&2 &

# --- password secrets ------------------------------------------------------------------
read_secret() { # read_secret FILE — prints the file's one token (no trailing newline)
  local value
  [[ -r $1 ]] || die "password file missing or unreadable" "$1"
  value=$(<"$1")
  value=${value%%[[:space:]]*}
  [[ -n $value ]] || die "password file is empty" "$1"
  printf '%s' "$value"
}
[[ $POSTGRES_OWNER != "$POSTGRES_USER" ]] || die "the owner and the app role must differ" "$POSTGRES_USER"
owner_password=$(read_secret "$POSTGRES_OWNER_PASSWORD_FILE")
app_password=$(read_secret "$POSTGRES_PASSWORD_FILE")

# --- 2. first start: initdb --------------------------------------------------------------
if [[ $data_state == cluster ]]; then
  version=$(<"$PGDATA/PG_VERSION")
  [[ $version == "$PG_MAJOR" ]] ||
    die "data directory is from another PostgreSQL major version" "$PGDATA is $version, server is $PG_MAJOR; upgrade with pg_upgrade or dump/restore"
else
  if [[ $data_state == interrupted ]]; then
    # The leftovers of our own interrupted initdb (the marker proves it) would make it
    # refuse to run; an initdb that never finished holds no data.
    log warning "removing the leftovers of an interrupted initdb" "$PGDATA"
    find "$PGDATA" -mindepth 1 -delete
  fi
  : >"$initdb_marker" || die "cannot write the initdb marker" "$initdb_marker"
  log info "initialising database cluster" "$PGDATA"
  # builtin C.UTF-8 provider (new in 17): code-point collation and Unicode case mapping
  # that never change with a glibc upgrade, so text indexes never need a REINDEX.
  "${as_pg[@]}" initdb --pgdata="$PGDATA" --username=postgres \
    --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale-provider=builtin --builtin-locale=C.UTF-8 --locale=C.UTF-8 \
    --data-checksums >/dev/null
  rm -f "$initdb_marker"
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

# --- 3. roles, database and grants, on a socket-only temporary server --------------------
log info "starting temporary server (socket only)"
"${as_pg[@]}" pg_ctl --pgdata="$PGDATA" --wait --timeout=120 --silent \
  --options="-c listen_addresses='' -c log_checkpoints=off" start &> >(json_lines >&2)
stop_temp() { "${as_pg[@]}" pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop || true; }
trap stop_temp EXIT

# \getenv reads the passwords from psql's environment (never argv); the SET lines keep
# the statement text, which contains them as literals, out of the server log even if a
# statement fails. One transaction per database: a failure leaves the old state whole.
PARLEY_OWNER_PASSWORD=$owner_password PARLEY_APP_PASSWORD=$app_password \
  "${as_pg[@]}" psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 \
  --username=postgres --dbname=postgres \
  --set=owner="$POSTGRES_OWNER" --set=app_user="$POSTGRES_USER" --set=app_db="$POSTGRES_DB" \
  --set=statement_timeout="$APP_STATEMENT_TIMEOUT" \
  --set=idle_timeout="$APP_IDLE_IN_TRANSACTION_TIMEOUT" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
\getenv owner_pw PARLEY_OWNER_PASSWORD
\getenv app_pw PARLEY_APP_PASSWORD

-- Roles: plain logins, nothing more; the passwords always follow the secret files.
BEGIN;
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') AS create_owner \gset
\if :create_owner
  CREATE ROLE :"owner";
\endif
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  INHERIT PASSWORD :'owner_pw';
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') AS create_app \gset
\if :create_app
  CREATE ROLE :"app_user";
\endif
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  INHERIT PASSWORD :'app_pw';
\unset owner_pw
\unset app_pw
-- The app role's bounds, applied to each of its new sessions.
ALTER ROLE :"app_user" SET statement_timeout = :'statement_timeout';
ALTER ROLE :"app_user" SET idle_in_transaction_session_timeout = :'idle_timeout';
COMMIT;

SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') AS create_db \gset
\if :create_db
  CREATE DATABASE :"app_db" OWNER :"owner";
\endif

\connect :"app_db"
SET log_statement = 'none';
BEGIN;
-- Upgrade from the single-role layout (the app role owned the database, its tables and
-- alembic_version): hand everything it owns here, and the database, to the owner.
-- Nothing to do once it owns nothing.
REASSIGN OWNED BY :"app_user" TO :"owner";
ALTER DATABASE :"app_db" OWNER TO :"owner";
-- The database: only the app role (and the monitoring role, below) may connect; no
-- temporary tables, no new schemas.
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC, :"app_user";
GRANT CONNECT ON DATABASE :"app_db" TO :"app_user";
-- The schema (owned by pg_database_owner, i.e. the owner role): usage, never CREATE.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM :"app_user";
GRANT USAGE ON SCHEMA public TO :"app_user";
-- Existing tables and sequences: rows only (no TRUNCATE, REFERENCES or TRIGGER). Revoked
-- first so the grants are exactly these, whatever was there before.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"app_user";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_user";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"app_user";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_user";
-- Tables and sequences that later migrations create (as the owner) get the same rights.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";
COMMIT;
SQL
unset owner_password app_password

# The read-only monitoring role for the postgres exporter (observability profile), when its
# secret is mounted: pg_monitor can read statistics, never the application's rows.
if [[ -r $MONITOR_PASSWORD_FILE && -s $MONITOR_PASSWORD_FILE ]]; then
  PARLEY_MONITOR_PASSWORD=$(<"$MONITOR_PASSWORD_FILE") "${as_pg[@]}" psql --no-psqlrc --quiet \
    --set=ON_ERROR_STOP=1 --username=postgres --dbname=postgres \
    --set=app_db="$POSTGRES_DB" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET log_min_duration_statement = -1;
-- GRANT of a role already granted says so in a NOTICE, a plain-text line in the JSON log.
SET client_min_messages = warning;
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
log info "roles and database ready" "owner=$POSTGRES_OWNER app=$POSTGRES_USER database=$POSTGRES_DB"

# --- 4. the server ---------------------------------------------------------------------
exec "${as_pg[@]}" "$@" 2> >(json_lines >&2)
