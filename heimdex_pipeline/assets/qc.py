"""The fifth asset of a video partition: its technical quality control (loudness, silence, black, freeze, scan)."""

from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.steps import (
    MEDIA_RETRY_POLICY,
    media_errors,
    read_shared_frames,
    read_upstream,
    start_step,
    stops_when_interrupted,
)
from heimdex_pipeline.assets.video import probe_metadata
from heimdex_pipeline.media.qc import PictureSegment, QcReport, Segment, measure_qc
from heimdex_pipeline.outputs.qc import QcDocument, qc_json_schema
from heimdex_pipeline.resources import CatalogResource, MediaStorage, MediaWork, QcRules
from heimdex_pipeline.runs.pools import FFMPEG_POOL
from heimdex_pipeline.storage.layout import QC_SCHEMA_KEY, frames_key, probe_key, qc_key


def _segments_markdown(report: QcReport) -> str:
    """The stretches found, as a table the web UI shows with the materialisation."""
    rows: list[tuple[str, Segment]] = [
        *(("silence" + (" (no audio)" if s.no_audio else ""), s) for s in report.silence),
        *(("black", s) for s in report.black), *(("freeze", s) for s in report.freeze)]
    if not rows:
        return "_no silence, black or frozen stretch_"
    lines = ["| kind | start s | end s | frames |", "| --- | --- | --- | --- |"]
    for kind, s in sorted(rows, key=lambda row: row[1].start_s):
        frames = f"{s.start_frame}–{s.end_frame}" if isinstance(s, PictureSegment) else ""
        lines.append(f"| {kind} | {s.start_s:.3f} | {s.end_s:.3f} | {frames} |")
    return "\n".join(lines)


def qc_metadata(report: QcReport) -> dict[str, Any]:
    """The QC figures as materialisation metadata: what the web UI shows of the partition."""
    loudness = report.loudness
    figures: dict[str, Any] = {
        "integrated_lufs": MetadataValue.float(loudness.integrated_lufs) if loudness else None,
        "loudness_range_lu": MetadataValue.float(loudness.range_lu) if loudness else None,
        "true_peak_dbtp": MetadataValue.float(loudness.true_peak_dbtp)
        if loudness and loudness.true_peak_dbtp is not None else None,
        "loudness_unavailable": report.loudness_unavailable,
        "audio": f"{report.audio.codec}, {report.audio.channels} ch, {report.audio.sample_rate:g} Hz"
        if report.audio and report.audio.sample_rate else None,
    }
    return {
        **{name: value for name, value in figures.items() if value is not None},
        "silences": len(report.silence),
        "black_stretches": len(report.black),
        "frozen_stretches": len(report.freeze),
        "scan": report.interlacing.scan,
        "segments": MetadataValue.md(_segments_markdown(report)),
        "thresholds": MetadataValue.json(report.thresholds.model_dump()),
        "pictures_from": report.pictures.source if report.pictures else "ffmpeg",
    }


@asset(
    partitions_def=videos_partitions,
    deps=[probe_metadata],
    retry_policy=MEDIA_RETRY_POLICY,
    # 2: black and freeze from the scene pass's frames when it kept them, idet on a sample (document 1.1).
    code_version="qc-2",
    pool=FFMPEG_POOL,
    group_name="video",
    kinds={"ffmpeg", "json"},
)
@stops_when_interrupted
def media_qc(context: AssetExecutionContext, catalog: CatalogResource, storage: MediaStorage, media: MediaWork,
             qc: QcRules) -> MaterializeResult:
    """The technical QC document (`<asset_id>.qc.json`): EBU R128 loudness, silences, black and frozen
    stretches, and the picture's scan: black and frozen stretches from the frames the scene pass decoded
    when it kept them for these thresholds, else everything in one ffmpeg pass."""
    video, log = start_step(context, catalog, "qc")
    store = storage.store
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    shared = read_shared_frames(store, frames_key(video.org_id, video.asset_id), log)
    with media_errors(log, "qc"), store.media_input(video.source_key) as source:
        report = measure_qc(source, probe, qc.thresholds, media.limits,
                            pictures=shared.pictures if shared is not None else None)
    document = QcDocument(asset_id=video.asset_id, org_id=video.org_id, **report.model_dump())
    key = qc_key(video.org_id, video.asset_id)
    store.write_json(QC_SCHEMA_KEY, qc_json_schema())
    store.write_json(key, document.model_dump(mode="json"))
    log.info("qc.done", integrated_lufs=report.loudness.integrated_lufs if report.loudness else None,
             silences=len(report.silence), black=len(report.black), freeze=len(report.freeze),
             scan=report.interlacing.scan)
    return MaterializeResult(metadata={"org_id": video.org_id, **qc_metadata(report),
                                       "qc_uri": MetadataValue.path(store.uri(key))})
