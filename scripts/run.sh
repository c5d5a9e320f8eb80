#!/usr/bin/env bash
# Runs Heimdex on this machine: the Dagster webserver and daemon on 127.0.0.1:3000 and the
# REST API on 127.0.0.1:8000, on SQLite and the local ./derived folder unless told otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
# The API runs as production unless HEIMDEX_ENV=development: its secret is made once, in .env.
./scripts/jwt-secret.sh .env

export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export HEIMDEX_DERIVED_ROOT="${HEIMDEX_DERIVED_ROOT:-$PWD/derived}"
mkdir -p "$DAGSTER_HOME" "$HEIMDEX_DERIVED_ROOT/uploads"
# The instance config is ours until the user edits their copy.
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

uv run alembic upgrade head

uv run uvicorn heimdex_api.main:app --host 127.0.0.1 --port "${HEIMDEX_API_PORT:-8000}" &
api_pid=$!
trap 'kill "$api_pid" 2>/dev/null || true' EXIT INT TERM

# `dagster dev` runs the webserver and the daemon (sensor, run queue, backfills) together.
uv run dagster dev -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}" -w workspace.yaml
