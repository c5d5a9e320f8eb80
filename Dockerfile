# One image for every Heimdex role: Dagster webserver (3000), daemon, user-code gRPC server
# (4000), the run workers DockerRunLauncher starts, the REST API (8000) and the migrations.
# docker-compose.yml picks the role with `command:`; the default is the code server.
# The base and uv images are arguments only so that scripts/compose-offline.sh can build from
# local stand-ins where these cannot be pulled; the defaults are what every other build uses.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
FROM ${UV_IMAGE} AS uv
FROM ${PYTHON_IMAGE}

# ffmpeg/ffprobe for probing, scene detection and thumbnails. Debian's ffmpeg links every codec
# and device library, some of which bring GPU runtimes that only load when a GPU is used: Mesa's
# DRI drivers and the LLVM (and Z3) they compile shaders with, Intel Media SDK's hardware library
# and plugins. Their files are left out (dpkg path-exclude, as slim images leave out docs): 190 MB
# that ffmpeg, run on the CPU, never opens.
RUN printf 'path-exclude=%s\n' '/usr/lib/*/dri/*' '/usr/lib/*/libLLVM-*' '/usr/lib/*/libz3.so*' \
        '/usr/lib/*/libmfxhw64.so*' '/usr/lib/*/mfx/*' > /etc/dpkg/dpkg.cfg.d/heimdex-no-gpu-runtimes \
    && apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && ffmpeg -hide_banner -version >/dev/null && ffprobe -hide_banner -version >/dev/null

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# uv, pinned, installs exactly what uv.lock says; it is mounted for the two steps that run it, not
# kept in the image.
# Dependencies first, as their own layer: rebuilt only when pyproject.toml or uv.lock change.
# PySceneDetect asks for opencv-python, whose wheel adds Qt and X11 libraries (116 MB) for windows
# a server never opens: opencv-python-headless, also locked, is the same cv2 without them.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv --mount=from=uv,source=/uv,target=/bin/uv \
    uv sync --frozen --no-dev --no-install-project --no-install-package opencv-python

# Then the project itself (installed editable, so migrations/ resolves beside the packages).
COPY README.md ./
COPY heimdex_pipeline/ ./heimdex_pipeline/
COPY heimdex_api/ ./heimdex_api/
COPY migrations/ ./migrations/
COPY alembic.ini ./
RUN --mount=type=cache,target=/root/.cache/uv --mount=from=uv,source=/uv,target=/bin/uv \
    uv sync --frozen --no-dev --no-install-package opencv-python

ENV PATH="/app/.venv/bin:${PATH}" \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HEIMDEX_DERIVED_ROOT=/app/derived

# The production instance config, and the workspace the webserver and the daemon load (gRPC).
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY deploy/workspace.docker.yaml /opt/dagster/app/workspace.docker.yaml

# A non-root user owning the media root and DAGSTER_HOME (and its storage/, where compute logs go).
# Named volumes mounted on these directories start with this ownership.
RUN groupadd --gid 1000 heimdex \
    && useradd --uid 1000 --gid heimdex --create-home --shell /usr/sbin/nologin heimdex \
    && mkdir -p /app/derived /opt/dagster/dagster_home/storage \
    && chown -R heimdex:heimdex /app/derived /opt/dagster/dagster_home
USER heimdex

EXPOSE 3000 4000 8000

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "heimdex_pipeline.definitions", "--location-name", "heimdex"]
