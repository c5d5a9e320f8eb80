"""Prepares storage before Heimdex's services start: the catalog's schema (with the check outcomes
of videos checked before the catalog kept them) and the Dagster instance's pools
(`heimdex_pipeline.runs.pools`).

`python -m heimdex_pipeline.admin.prepare`, with the services' settings and DAGSTER_HOME: run by
`./scripts/run.sh` and by docker-compose.yml's one-shot `migrate`. Running it again is harmless.
"""

from dagster import DagsterInstance

from heimdex_pipeline.admin.check_outcomes import carry_check_outcomes
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.runs.pools import prepare_pools


def main() -> None:
    """Migrate the catalog to head, then set the pools' limits on $DAGSTER_HOME's instance."""
    settings = get_settings()
    migrate(settings.catalog_url, derived_root=settings.derived_root)
    with DagsterInstance.get() as instance:
        carry_check_outcomes(instance, settings.catalog_url)
        prepare_pools(instance)


if __name__ == "__main__":
    main()
