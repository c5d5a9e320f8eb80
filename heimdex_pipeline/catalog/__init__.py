"""The metadata catalog: which videos Heimdex knows, where their bytes are, and pending uploads.

Run state is not kept here: Dagster's run storage is the one source of truth for jobs.
"""

from heimdex_pipeline.catalog.db import make_engine, session_scope
from heimdex_pipeline.catalog.models import Base, Source, Upload, Video

__all__ = ["Base", "Source", "Upload", "Video", "make_engine", "session_scope"]
