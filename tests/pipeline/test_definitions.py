"""The whole Definitions object loads, and its assets carry retries, pools and code versions."""

from dagster import AssetKey, Backoff, Jitter

from heimdex_pipeline.definitions import defs


def test_definitions_load_with_every_job_sensor_and_asset() -> None:
    for name in ("ingest_video", "sidecar_job", "thumbnails_job"):
        assert defs.resolve_job_def(name).partitions_def.name == "videos"
    assert defs.resolve_sensor_def("upload_sensor").job_name == "ingest_video"
    assert defs.resolve_sensor_def("upload_sweep_sensor").minimum_interval_seconds == 600
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {"probe_metadata", "scene_sidecar", "thumbnails",
                                                                                  "storyboard", "media_qc"}


def test_assets_retry_with_exponential_backoff_and_use_the_ffmpeg_pool() -> None:
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    for key in ("probe_metadata", "scene_sidecar", "thumbnails", "storyboard", "media_qc"):
        node = defs.resolve_assets_def(AssetKey(key)).node_def
        assert node.retry_policy.backoff == Backoff.EXPONENTIAL and node.retry_policy.jitter == Jitter.PLUS_MINUS
        assert specs[AssetKey(key)].code_version
    assert defs.resolve_assets_def(AssetKey("scene_sidecar")).node_def.pool == "ffmpeg"
    for key in ("thumbnails", "storyboard", "media_qc"):
        assert defs.resolve_assets_def(AssetKey(key)).node_def.pool == "ffmpeg"
    ingest = {key.to_user_string() for key in defs.resolve_job_def("ingest_video").asset_layer.executable_asset_keys}
    assert {"storyboard", "media_qc"} <= ingest


def test_detector_parameters_are_in_the_sidecar_code_version() -> None:
    version = defs.resolve_all_asset_specs()
    sidecar = next(spec for spec in version if spec.key == AssetKey("scene_sidecar"))
    assert sidecar.code_version.startswith("scenes-3;HeimdexShotDetector-1;") and "cut_ratio=3.0" in sidecar.code_version
