#!/usr/bin/env bash
# `docker compose` on docker-compose.yml as it is, where images cannot be pulled (no registry
# reachable, air-gapped sites): builds local stand-ins of the images it names from Debian and PyPI
# packages, then runs Compose with deploy/offline/compose.offline.yml over the project's file.
# Takes the arguments of `docker compose`:
#   ./scripts/compose-offline.sh up -d --build --wait
#   ./scripts/compose-offline.sh down -v
# The stand-ins (README, "Docker compose"): a slim Debian bookworm root filesystem (mmdebstrap, kept
# in ~/.cache/heimdex/stack), Python 3.11 and PostgreSQL 15 from Debian, uv and moto's S3 server
# from PyPI. They are built when what they are made of changes, not at every call.
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
docker_engine

cache="$HOME/.cache/heimdex/stack"
export DOCKER_BUILDKIT=1

locked() {  # the version uv.lock pins for a package
  sed -n "/^name = \"$1\"\$/{n;s/^version = \"\(.*\)\"\$/\1/p}" uv.lock
}
# The versions the stand-ins must match: uv as the Dockerfile pins it, the S3 server as uv.lock does.
uv_version="$(sed -n 's|^ARG UV_IMAGE=ghcr.io/astral-sh/uv:||p' Dockerfile)"
s3_packages="moto[s3]==$(locked moto) flask==$(locked flask) flask-cors==$(locked flask-cors)"
export HEIMDEX_OFFLINE_UV_IMAGE="heimdex-offline/uv:$uv_version"

# The root filesystem every stand-in starts from: Debian's minimal variant, with the paths that
# debian:bookworm-slim (under python:3.11-slim-bookworm) leaves out excluded from every package,
# /usr merged by mmdebstrap's hook rather than by the usrmerge package (which brings Perl), and
# apt told to keep no downloaded package in an image layer, as in Debian's official images.
# Its tarball is named by the hash of its recipe: a new recipe makes a new one.
rootfs_recipe=(--variant=minbase --mode=root --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --customize-hook='upload deploy/offline/apt-docker-clean /etc/apt/apt.conf.d/docker-clean'
  --customize-hook='rm -f "$1"/var/cache/apt/*.bin'  # left by the install: apt-get clean no longer knows them
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  bookworm)
rootfs_key="$( { printf '%s\n' mmdebstrap "${rootfs_recipe[@]}"; cat deploy/offline/apt-docker-clean; } |
  sha256sum | cut -c1-16)"
rootfs="$cache/bookworm-slim-$rootfs_key.tar"
# Everything the stand-in images are made of: a change to any of it rebuilds them.
inputs="$( { echo "$rootfs_key $uv_version $s3_packages"; cat deploy/offline/* /etc/ssl/certs/ca-certificates.crt; } |
  sha256sum | cut -c1-16)"
images=(heimdex-offline/python:3.11-bookworm "$HEIMDEX_OFFLINE_UV_IMAGE" heimdex-offline/postgres:15 heimdex-offline/s3)

built() {  # every stand-in image is there, made from these inputs
  local image
  for image in "${images[@]}"; do
    [ "$(docker image inspect --format '{{index .Config.Labels "org.heimdex.inputs"}}' "$image" 2>/dev/null)" = "$inputs" ] ||
      return 1
  done
}

stand_in() {  # stand_in TAG DOCKERFILE [--build-arg ...]: build deploy/offline/DOCKERFILE as TAG
  local tag="$1" dockerfile="$2"
  shift 2
  # Host network: the engine may forward nothing from its bridges (see docker_engine).
  docker build --quiet --network host --label "org.heimdex.inputs=$inputs" -t "$tag" -f "$context/$dockerfile" \
    "$@" "$context" >/dev/null
}

# One build at a time, whoever else calls this script meanwhile.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if ! built; then
  if [ ! -s "$rootfs" ]; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    echo "heimdex: making a Debian bookworm root filesystem (mmdebstrap, about a minute and a half once)" >&2
    rm -f "$cache"/bookworm-slim-*.tar  # those of earlier recipes
    as_root mmdebstrap --quiet --format=tar "${rootfs_recipe[@]}" "$rootfs.part" 2>"$cache/mmdebstrap.log" ||
      { tail -n 20 "$cache/mmdebstrap.log" >&2; exit 1; }
    mv "$rootfs.part" "$rootfs"
  fi
  docker import "$rootfs" heimdex-offline/debian:bookworm >/dev/null
  echo "heimdex: building the stand-in images" >&2
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  cp deploy/offline/* "$context/"
  cp /etc/ssl/certs/ca-certificates.crt "$context/"
  # Two at a time, each pair from the image the one before built: their apt and pip downloads overlap.
  stand_in heimdex-offline/python:3.11-bookworm python.Dockerfile --build-arg DEBIAN_IMAGE=heimdex-offline/debian:bookworm &
  stand_in heimdex-offline/postgres:15 postgres.Dockerfile --build-arg DEBIAN_IMAGE=heimdex-offline/debian:bookworm &
  wait -n; wait -n
  stand_in "$HEIMDEX_OFFLINE_UV_IMAGE" uv.Dockerfile \
    --build-arg PYTHON_IMAGE=heimdex-offline/python:3.11-bookworm --build-arg UV_VERSION="$uv_version" &
  stand_in heimdex-offline/s3 s3.Dockerfile \
    --build-arg PYTHON_IMAGE=heimdex-offline/python:3.11-bookworm --build-arg S3_PACKAGES="$s3_packages" &
  wait -n; wait -n
  rm -rf "$context"
  built
fi
exec 9>&-

exec docker compose -f docker-compose.yml -f deploy/offline/compose.offline.yml "$@"
