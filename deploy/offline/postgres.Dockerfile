# Stand-in for postgres:15 where Docker Hub cannot be reached: Debian's PostgreSQL 15, behind an
# entrypoint that keeps the official image's contract (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, PGDATA, /docker-entrypoint-initdb.d).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}

# postgresql-common first, told not to make a cluster of its own: the entrypoint makes it in PGDATA.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown postgres:postgres /var/run/postgresql

ENV PATH="/usr/lib/postgresql/15/bin:${PATH}" \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# As the official image: SIGINT is PostgreSQL's fast shutdown.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
