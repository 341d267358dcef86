#!/bin/sh
# The container's entry point: `ledgerlink <arguments>` (serve, worker, migrate, ...).
#
# PGPASSWORD_FILE: a file holding the PostgreSQL password (a compose or Kubernetes secret).
# Its content is handed to libpq as PGPASSWORD, which psycopg, pg_dump and pg_restore all
# read when LEDGERLINK_DATABASE_URL carries no password, so the password is never in the
# image, the compose file or the URL.
set -eu
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    if [ ! -r "$PGPASSWORD_FILE" ]; then
        echo "ledgerlink: PGPASSWORD_FILE=$PGPASSWORD_FILE cannot be read by $(id -un) (uid $(id -u)); mount the secret readable for that user" >&2
        exit 78
    fi
    PGPASSWORD=$(cat "$PGPASSWORD_FILE")
    export PGPASSWORD
fi
exec ledgerlink "$@"
