-- Runs once, when the postgres data volume is first initialised (docker-entrypoint-initdb.d),
-- as POSTGRES_USER. POSTGRES_DB (the Dagster instance's database) already exists by then;
-- this adds Heimdex's metadata catalog, the database HEIMDEX_DATABASE_URL points at.
CREATE DATABASE heimdex;
