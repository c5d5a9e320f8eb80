"""The partition set of videos: one dynamic partition per `asset_id`."""

from dagster import DynamicPartitionsDefinition

# Keys are content-derived asset ids (`v_` and 32 hex digits), never file names.
videos_partitions = DynamicPartitionsDefinition(name="videos")
