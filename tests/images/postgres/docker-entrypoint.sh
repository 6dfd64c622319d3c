#!/bin/bash
# Initialise PGDATA on the first start (scram-sha-256 for every connection),
# then serve TCP 5432. Only PGDATA, /tmp and /run/postgresql are written, so
# the container works with a read-only root.
#
# Started as root, it gives the tmpfs at /run/postgresql (which the engine
# mounts root-owned) to postgres (70:70) and re-executes itself as 70:70,
# which needs the CHOWN, SETUID and SETGID capabilities.
set -euo pipefail

if [ "$(id -u)" = "0" ]; then
    chown 70:70 /run/postgresql
    chmod 2775 /run/postgresql
    exec setpriv --reuid=70 --regid=70 --clear-groups "$0" "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file="$(mktemp /tmp/pgpass.XXXXXX)"
    printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" \
        --pwfile="$password_file" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 > /tmp/initdb.log
    rm -f "$password_file"
    {
        echo "host all all 0.0.0.0/0 scram-sha-256"
        echo "host all all ::/0 scram-sha-256"
    } >> "$PGDATA/pg_hba.conf"
    pg_ctl --pgdata="$PGDATA" --wait --silent \
        --options="-c listen_addresses='' -c unix_socket_directories=/run/postgresql" start
    if [ "$POSTGRES_DB" != "postgres" ]; then
        # psql interpolates :"db" (quoted as an identifier) only in scripts.
        echo 'CREATE DATABASE :"db";' | PGPASSWORD="$POSTGRES_PASSWORD" psql \
            --host=/run/postgresql --username="$POSTGRES_USER" --dbname=postgres \
            --quiet --set=ON_ERROR_STOP=1 --set=db="$POSTGRES_DB"
    fi
    pg_ctl --pgdata="$PGDATA" --wait --silent stop
    echo "PostgreSQL data directory initialised in $PGDATA"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' \
    -c unix_socket_directories=/run/postgresql
