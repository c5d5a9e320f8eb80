#!/usr/bin/env bash
# `docker compose` on docker-compose.yml as it is, where images cannot be pulled (no registry
# reachable, air-gapped sites): builds local stand-ins of the images it names from Debian and PyPI
# packages, then runs Compose with deploy/offline/compose.offline.yml over the project's file.
# Takes the arguments of `docker compose`:
#   ./scripts/compose-offline.sh up -d --build --wait
#   ./scripts/compose-offline.sh down -v
# The stand-ins (README, "Docker compose"): a Debian bookworm root filesystem (debootstrap, kept in
# ~/.cache/heimdex/stack), Python 3.11 and PostgreSQL 15 from Debian, uv and moto's S3 server from PyPI.
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
docker_engine

stand_ins="$HOME/.cache/heimdex/stack"
export DOCKER_BUILDKIT=1
# The versions the stand-ins must match: uv as the Dockerfile pins it, moto as uv.lock does.
uv_version="$(sed -n 's|^ARG UV_IMAGE=ghcr.io/astral-sh/uv:||p' Dockerfile)"
moto_version="$(sed -n '/^name = "moto"$/{n;s/^version = "\(.*\)"$/\1/p}' uv.lock)"
export HEIMDEX_OFFLINE_UV_IMAGE="heimdex-offline/uv:$uv_version"

stand_in() {  # stand_in TAG DOCKERFILE [--build-arg ...]: build deploy/offline/DOCKERFILE as TAG
  local tag="$1" dockerfile="$2"
  shift 2
  local context
  context="$(mktemp -d)"
  cp deploy/offline/* "$context/"
  cp /etc/ssl/certs/ca-certificates.crt "$context/"
  # Host network: the engine may forward nothing from its bridges (see docker_engine).
  docker build --quiet --network host -t "$tag" -f "$context/$dockerfile" "$@" "$context" >/dev/null
  rm -rf "$context"
}

if ! docker image inspect heimdex-offline/debian:bookworm >/dev/null 2>&1; then
  if [ ! -s "$stand_ins/bookworm-minbase.tar" ]; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    echo "heimdex: making a Debian bookworm root filesystem (debootstrap, a few minutes once)" >&2
    mkdir -p "$stand_ins"
    rm -rf "$stand_ins/rootfs"
    as_root debootstrap --variant=minbase bookworm "$stand_ins/rootfs" >"$stand_ins/debootstrap.log"
    as_root tar -C "$stand_ins/rootfs" -cf "$stand_ins/bookworm-minbase.tar.part" .
    mv "$stand_ins/bookworm-minbase.tar.part" "$stand_ins/bookworm-minbase.tar"
    as_root rm -rf "$stand_ins/rootfs"
  fi
  docker import "$stand_ins/bookworm-minbase.tar" heimdex-offline/debian:bookworm >/dev/null
fi
echo "heimdex: building the stand-in images" >&2
stand_in heimdex-offline/python:3.11-bookworm python.Dockerfile --build-arg DEBIAN_IMAGE=heimdex-offline/debian:bookworm
stand_in "$HEIMDEX_OFFLINE_UV_IMAGE" uv.Dockerfile \
  --build-arg PYTHON_IMAGE=heimdex-offline/python:3.11-bookworm --build-arg UV_VERSION="$uv_version"
stand_in heimdex-offline/postgres:15 postgres.Dockerfile --build-arg DEBIAN_IMAGE=heimdex-offline/debian:bookworm
stand_in heimdex-offline/s3:latest s3.Dockerfile \
  --build-arg PYTHON_IMAGE=heimdex-offline/python:3.11-bookworm --build-arg MOTO_VERSION="$moto_version"

exec docker compose -f docker-compose.yml -f deploy/offline/compose.offline.yml "$@"
