#!/usr/bin/env bash
# Runs Heimdex's test suite: real ffmpeg, PySceneDetect, Dagster, SQLite, the local PostgreSQL, and
# the compose stack on a Docker engine.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

# The web UI test drives Debian's Chromium (browsers cannot be downloaded by Playwright here).
command -v chromium >/dev/null || apt_install chromium

# The PostgreSQL half of the suite needs the local server; start it when it is installed but down.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

# The compose stack's end-to-end tests (tests/stack) run on a real Docker engine: started here.
docker_engine

exec uv run pytest "$@"
