# Stand-in for python:3.11-slim-bookworm where Docker Hub cannot be reached: the Debian bookworm
# root filesystem scripts/compose-offline.sh makes with debootstrap, and Debian's Python 3.11.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3

# The host's CA bundle, after apt (whose ca-certificates would write its own): pip and uv in the
# images built on this one reach PyPI through whatever the host trusts.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8

CMD ["python3"]
