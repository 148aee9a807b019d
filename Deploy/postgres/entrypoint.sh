#!/bin/sh
# Initialises the cluster on first start (superuser POSTGRES_USER with POSTGRES_PASSWORD,
# SCRAM, database POSTGRES_DB), then runs the server in the foreground.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
SOCKETS=/var/run/postgresql
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then echo "POSTGRES_PASSWORD is required" >&2; exit 1; fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  # Into a folder of its own first: a failed initialisation leaves no PG_VERSION behind, so the
  # next start tries again rather than serving a half-made cluster.
  rm -rf "$PGDATA.init"
  "$BIN/initdb" -D "$PGDATA.init" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-host=scram-sha-256 \
      --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  # Containers on the compose network connect over TCP, each role with its password.
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA.init/pg_hba.conf"
  echo "host all all ::/0 scram-sha-256" >> "$PGDATA.init/pg_hba.conf"
  # The set-up server listens on no TCP address, so health checks stay unready until the real one.
  "$BIN/pg_ctl" -D "$PGDATA.init" -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" -w start >/dev/null
  export PGPASSWORD=$POSTGRES_PASSWORD
  exists=$("$BIN/psql" -h "$SOCKETS" -U "$POSTGRES_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$(printf '%s' "$POSTGRES_DB" | sed "s/'/''/g")'")
  if [ "$exists" != 1 ]; then
    "$BIN/createdb" -h "$SOCKETS" -U "$POSTGRES_USER" "$POSTGRES_DB"
  fi
  unset PGPASSWORD
  "$BIN/pg_ctl" -D "$PGDATA.init" -m fast -w stop >/dev/null
  # PGDATA may be a mounted volume: move the contents, not the folder; PG_VERSION last, so that
  # it only exists once everything else is in place.
  find "$PGDATA.init" -mindepth 1 -maxdepth 1 ! -name PG_VERSION -exec mv -t "$PGDATA" {} +
  mv "$PGDATA.init/PG_VERSION" "$PGDATA/"
  rmdir "$PGDATA.init"
  chmod 0700 "$PGDATA"
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$SOCKETS"
