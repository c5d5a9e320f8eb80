# Stand-in for ghcr.io/astral-sh/uv: the same two files at the same place (/uv, /uvx), from
# PyPI's uv wheel of the same version.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE} AS wheel
ARG UV_VERSION
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"

FROM scratch
COPY --from=wheel /opt/uv/bin/uv /opt/uv/bin/uvx /
