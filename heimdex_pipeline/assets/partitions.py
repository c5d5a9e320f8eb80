"""The partition set of videos: one dynamic partition per `asset_id`."""

import warnings

from dagster import DynamicPartitionsDefinition, PreviewWarning

# Keys are content-derived asset ids (`v_` and 32 hex digits), never file names.
videos_partitions = DynamicPartitionsDefinition(name="videos")

# The video checks are partitioned like their assets (a Dagster preview since 1.12.14): each
# definition of one would warn in every process that loads them, every `dg` command included.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=PreviewWarning)
