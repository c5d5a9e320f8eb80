#!/usr/bin/env bash
# Runs Heimdex's test suite: real ffmpeg, PySceneDetect, Dagster, SQLite, the local PostgreSQL, and
# the compose stack on a Docker engine.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# The web UI test drives Debian's Chromium (browsers cannot be downloaded by Playwright here).
command -v chromium >/dev/null || apt_install chromium

# The PostgreSQL half of the suite needs a local server that lets `postgres` in over 127.0.0.1 without
# a password (tests/postgres.py). When none does: Debian's PostgreSQL is installed if it is missing,
# its cluster made and started, and the loopback connections of `postgres` trusted (three lines put
# first in its pg_hba.conf). A server that already answers is left as it is, and so is any other
# server named by HEIMDEX_TEST_POSTGRES_URL.
POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres
HBA_MARK="# heimdex tests (scripts/test.sh): postgres over loopback, without a password"

postgres_answers() {
  uv run --no-sync python -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' \
    "$POSTGRES_URL" 2>/dev/null
}

prepare_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || apt_install postgresql
  local version hba
  version=$(ls /usr/lib/postgresql | sort -V | tail -n1)  # Debian 12's is 15
  [ -d "/etc/postgresql/$version/main" ] || as_root pg_createcluster "$version" main
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! as_root grep -qxF "$HBA_MARK" "$hba"; then
    echo "heimdex: trusting postgres's connections over 127.0.0.1 and ::1 ($hba)" >&2
    as_root sh -c '{ printf "%s\n" "$2" "host all postgres 127.0.0.1/32 trust" "host all postgres ::1/128 trust"
                     cat "$1"; } > "$1.heimdex" && chown --reference="$1" "$1.heimdex" &&
                   chmod --reference="$1" "$1.heimdex" && mv "$1.heimdex" "$1"' sh "$hba" "$HBA_MARK"
  fi
  if as_root pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    echo "heimdex: starting PostgreSQL $version" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 20); do
    postgres_answers && return
    sleep 0.5
  done
  echo "heimdex: PostgreSQL $version does not let postgres in at $POSTGRES_URL" \
       "(see /var/log/postgresql/postgresql-$version-main.log)" >&2
  exit 1
}

if [ -z "${HEIMDEX_TEST_POSTGRES_URL:-}" ] && ! postgres_answers; then
  prepare_postgres
fi

# The compose stack's end-to-end tests (tests/stack, marker `stack`) run on a real Docker engine, in
# the default run as in any other: installed from Debian and started here when it is missing. They
# run on one xdist worker of their own (group `stack`) while the others run the rest of the suite;
# `./scripts/test.sh -m stack tests/stack` runs them alone.
docker_engine

exec uv run pytest "$@"
