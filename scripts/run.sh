#!/usr/bin/env bash
# Runs Heimdex on this machine: the Dagster webserver and daemon on 127.0.0.1:3000 and the
# REST API on 127.0.0.1:8000, on SQLite and the local ./derived folder unless told otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
# The API runs as production unless HEIMDEX_ENV=development: its secrets are made once, in .env.
./scripts/secrets.sh .env

export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export HEIMDEX_DERIVED_ROOT="${HEIMDEX_DERIVED_ROOT:-$PWD/derived}"
mkdir -p "$DAGSTER_HOME" "$HEIMDEX_DERIVED_ROOT/uploads"
# The instance config is ours until the user edits their copy.
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

# The catalog's schema and the instance's pools, before any service uses them.
uv run python -m heimdex_pipeline.admin.prepare

# The daemon runs here, so the API queues its runs for it: a commit or a job request answers as
# soon as the run is queued, however long the video. `immediate` (the API's own default) is for
# an API without a daemon beside it.
export HEIMDEX_JOB_QUEUE_BACKEND="${HEIMDEX_JOB_QUEUE_BACKEND:-dagster}"
export HEIMDEX_DAGSTER_WEBSERVER_URL="${HEIMDEX_DAGSTER_WEBSERVER_URL:-http://127.0.0.1:${DAGSTER_PORT:-3000}}"

# Stopping: SIGINT to each service's process group (what Ctrl-C in a terminal sends; each process
# shuts down cleanly on it, and a run worker marks its run failed), then SIGKILL to whatever is
# left after STOP_GRACE_S, so that everything is gone within seconds
# (tests/faults/test_run_script_signals.py).
STOP_GRACE_S=10
services=()
any_alive() {
  local group
  for group in "${services[@]}"; do
    if kill -0 -- "-$group" 2>/dev/null; then return 0; fi
  done
  return 1
}
stop_services() {
  trap '' INT TERM
  local group deadline=$((SECONDS + STOP_GRACE_S))
  for group in "${services[@]}"; do kill -INT -- "-$group" 2>/dev/null || true; done
  while ((SECONDS < deadline)); do
    any_alive || return 0
    sleep 0.2
  done
  for group in "${services[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
}
# Ctrl-C or SIGTERM stops everything, and so does either service ending on its own.
trap 'stop_services; exit 130' INT
trap 'stop_services; exit 143' TERM

# Each service is a job in a process group of its own (job control is on while they start), and
# every process it starts stays in that group: uv, uvicorn, and `dg dev` with its webserver,
# daemon, code servers and run workers.
# `env --default-signal=INT`: started in the background by another script, this script and its
# children inherit SIGINT ignored, and Dagster then ignores SIGTERM as well; the services must
# get SIGINT back to shut down cleanly.
set -m
# The API's own server (heimdex_api/serve.py): HEIMDEX_API_WORKERS processes, a bound on request
# headers, the body read timeout.
env --default-signal=INT uv run python -m heimdex_api.serve --host 127.0.0.1 --port "${HEIMDEX_API_PORT:-8000}" &
services+=("$!")
# `dg dev` runs the webserver and the daemon (sensor, run queue, backfills) together, on
# workspace.yaml's code location (the one the deployment's webserver loads).
env --default-signal=INT uv run dg dev -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}" -w workspace.yaml &
services+=("$!")
set +m

status=0
wait -n || status=$?
stop_services
exit "$status"
