"""The catalog's schema migrations (`migrations/`), run through Alembic.

Apart from `db` so that the processes that only read and write the catalog (run workers, the
sensor, the API's requests) do not load Alembic.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

from heimdex_pipeline.catalog.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    """Alembic's configuration for `migrations/`, pointed at `url`."""
    config = Config(str(MIGRATIONS_DIR.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head", derived_root: Path | None = None) -> None:
    """Bring the catalog's schema to `revision` (what `alembic upgrade head` does).

    `derived_root` is the root rows holding paths are converted against (0004); the settings' by default.
    """
    config = alembic_config(url)
    if derived_root is not None:
        config.attributes["derived_root"] = derived_root
    command.upgrade(config, revision)
