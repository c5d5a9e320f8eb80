# Stand-in for minio/minio and minio/mc: moto's S3 server (the S3 endpoint Heimdex's tests already
# speak to), behind `minio` and `mc` commands that take the arguments docker-compose.yml gives.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG MOTO_VERSION
RUN python3 -m venv /opt/moto \
    && /opt/moto/bin/pip install --no-cache-dir "moto[s3,server]==${MOTO_VERSION}" \
    && groupadd --gid 1000 moto && useradd --uid 1000 --gid moto --no-create-home --shell /usr/sbin/nologin moto \
    && mkdir /data && chown moto:moto /data
COPY minio mc /usr/local/bin/
ENV PATH="/opt/moto/bin:${PATH}"
USER moto
ENTRYPOINT ["minio"]
CMD ["server", "/data"]
