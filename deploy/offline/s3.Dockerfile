# Stand-in for minio/minio and minio/mc: moto's S3 server (the S3 endpoint Heimdex's tests already
# speak to), behind `minio` and `mc` commands that take the arguments docker-compose.yml gives.
# Its S3 part only (S3_PACKAGES: moto[s3], Flask and Flask-CORS at uv.lock's versions).
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
ARG S3_PACKAGES
RUN python3 -m venv /opt/moto \
    && /opt/moto/bin/pip install --no-cache-dir ${S3_PACKAGES} \
    && groupadd --gid 1000 moto && useradd --uid 1000 --gid moto --no-create-home --shell /usr/sbin/nologin moto \
    && mkdir /data && chown moto:moto /data
COPY minio mc /usr/local/bin/
ENV PATH="/opt/moto/bin:${PATH}"
USER moto
ENTRYPOINT ["minio"]
CMD ["server", "/data"]
