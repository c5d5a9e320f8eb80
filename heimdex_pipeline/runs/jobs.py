"""Asset jobs over the video partitions: the whole ingest, and the API's two narrower jobs."""

from dagster import AssetSelection, define_asset_job

from heimdex_pipeline.assets import media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails

ingest_video_job = define_asset_job(
    "ingest_video",
    selection=AssetSelection.assets(probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc),
    description="Probe a video, detect its scenes, extract its thumbnails, make its storyboard and check its "
                "technical quality.",
)

sidecar_job = define_asset_job(
    "sidecar_job",
    selection=AssetSelection.assets(probe_metadata, scene_sidecar),
    description="Probe a video and write its scene sidecar.",
)

thumbnails_job = define_asset_job(
    "thumbnails_job",
    selection=AssetSelection.assets(thumbnails),
    description="Re-extract a video's thumbnails with a given policy (its sidecar must exist).",
)
