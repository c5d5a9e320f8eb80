"""Asset checks of each video partition: is what the scene, thumbnail and storyboard steps wrote sound,
and does the video pass its technical QC?

The probe's own check (`video_is_readable`) is made by the probe step itself (`video.py`), the
only place that knows why a file could not be read. The sidecar's checks block: thumbnails are
planned from the scenes, so a sidecar that breaks its schema or misses part of the video stops
the run before them. The QC checks do not block: a silent or dark video is still ingested, and
its failures are told (the API's `checks`, the `asset.qc_failed` webhook).

The checks of one asset run in one step (a `multi_asset_check` that can be subset): each is still
its own check in Dagster, selectable and executable alone, with its own history, while a run pays
one step's start and events per asset instead of one per check (docs/benchmarks.md, "Dagster's own
cost of a run").
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSpec,
    AssetsDefinition,
    MetadataValue,
    multi_asset_check,
)
from pydantic import ValidationError

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.qc import media_qc
from heimdex_pipeline.assets.steps import MEDIA_RETRY_POLICY
from heimdex_pipeline.assets.storyboard import storyboard
from heimdex_pipeline.assets.video import probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.media.storyboard import DOCUMENT_NAME, SPRITE_NAME, VTT_NAME
from heimdex_pipeline.outputs.qc import QcDocument
from heimdex_pipeline.outputs.sidecar import Sidecar, ThumbnailEntry
from heimdex_pipeline.outputs.validation import (
    audio_problems,
    loudness_problems,
    schema_problems,
    scene_coverage_problems,
    storyboard_problems,
    stretch_problems,
    thumbnail_problems,
)
from heimdex_pipeline.resources import CatalogResource, MediaStorage, QcRules
from heimdex_pipeline.storage import InvalidKeyError, ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import (
    SIDECAR_SCHEMA_KEY,
    org_key,
    probe_key,
    qc_key,
    sidecar_key,
    storyboard_prefix,
)

class Unreadable(Exception):
    """A document a check needs is missing or not JSON: the check fails with this message."""


class Subject(NamedTuple):
    """What a check looks at: the video, the store its outputs are in, and the QC's limits."""

    video: Video
    store: ObjectStore
    qc: QcRules


class Verdict(NamedTuple):
    """A check's finding: its problems (none when it passes), what a pass says, and metadata to show."""

    problems: list[str]
    passed: str
    metadata: Mapping[str, Any] = {}


def _read(store: ObjectStore, key: str, what: str) -> Any:
    try:
        return store.read_json(key)
    except ObjectNotFoundError:
        raise Unreadable(f"no {what} ({key.rpartition('/')[2]})") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise Unreadable(f"the {what} is not JSON: {exc}") from None


def _sidecar(subject: Subject) -> Sidecar:
    video = subject.video
    try:
        return Sidecar.model_validate(_read(subject.store, sidecar_key(video.org_id, video.asset_id), "sidecar"))
    except ValidationError as exc:
        raise Unreadable(f"the sidecar breaks its schema ({exc.error_count()} errors)") from None


def _qc(subject: Subject) -> QcDocument:
    video = subject.video
    try:
        return QcDocument.model_validate(_read(subject.store, qc_key(video.org_id, video.asset_id), "QC document"))
    except ValidationError as exc:
        raise Unreadable(f"the QC document breaks its schema ({exc.error_count()} errors)") from None


def sidecar_matches_schema(subject: Subject) -> Verdict:
    """The sidecar validates against the JSON Schema published beside it (`schemas/sidecar.schema.json`)."""
    store, video = subject.store, subject.video
    schema = _read(store, SIDECAR_SCHEMA_KEY, "sidecar schema")
    problems = schema_problems(_read(store, sidecar_key(video.org_id, video.asset_id), "sidecar"), schema)
    return Verdict(problems, "the sidecar matches its schema",
                   {"schema": MetadataValue.path(store.uri(SIDECAR_SCHEMA_KEY))})


def scenes_cover_the_video(subject: Subject) -> Verdict:
    """The scenes follow each other from the first frame to the probe's duration, without gap or overlap."""
    video = subject.video
    probe = _read(subject.store, probe_key(video.org_id, video.asset_id), "probe metadata")
    scenes = _sidecar(subject).scenes
    return Verdict(scene_coverage_problems(scenes, probe["duration_s"], probe.get("fps")),
                   f"{len(scenes)} scenes cover {probe['duration_s']} s",
                   {"scene_count": len(scenes), "duration_s": MetadataValue.float(probe["duration_s"])})


def thumbnails_are_stored(subject: Subject) -> Verdict:
    """Every thumbnail the sidecar lists is stored, decodes, and has the size the sidecar says."""
    store, video = subject.store, subject.video
    listed = _sidecar(subject).thumbnails

    def read(entry: ThumbnailEntry) -> bytes | None:
        try:
            return store.read_bytes(org_key(video.org_id, entry.storage_key))
        except (ObjectNotFoundError, InvalidKeyError):  # a key outside the org's folder is no thumbnail of it
            return None

    return Verdict(thumbnail_problems(listed, read), f"{len(listed)} thumbnails stored as listed",
                   {"count": len(listed)})


def storyboard_matches_sprite(subject: Subject) -> Verdict:
    """The storyboard's WebVTT track parses, its cues cover the video without gap or overlap, and each
    points at its tile, inside the sprite, whose decoded size is the one its JSON gives."""
    store, video = subject.store, subject.video
    prefix = storyboard_prefix(video.org_id, video.asset_id)
    probe = _read(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    document = _read(store, prefix + DOCUMENT_NAME, "storyboard geometry")
    try:
        vtt = store.read_bytes(prefix + VTT_NAME).decode("utf-8")
    except ObjectNotFoundError:
        raise Unreadable(f"no storyboard track ({VTT_NAME})") from None
    except UnicodeDecodeError:
        raise Unreadable("the storyboard track is not UTF-8") from None
    try:
        sprite: bytes | None = store.read_bytes(prefix + SPRITE_NAME)
    except ObjectNotFoundError:
        sprite = None
    problems = storyboard_problems(document, vtt, sprite, probe["duration_s"], probe.get("fps"))
    tiles = document.get("tiles") if isinstance(document, dict) else None
    count = len(tiles) if isinstance(tiles, list) else 0
    return Verdict(problems, f"{count} cues point into the sprite", {"tiles": count})


def audio_is_heard(subject: Subject) -> Verdict:
    """The video has an audio stream, and it is not silent from start to end."""
    report = _qc(subject)
    return Verdict(audio_problems(report), f"{report.audio.channels} channel(s) heard" if report.audio else "")


def loudness_on_target(subject: Subject) -> Verdict:
    """The integrated loudness is within HEIMDEX_QC_LOUDNESS_TARGET_LUFS ± HEIMDEX_QC_LOUDNESS_TOLERANCE_LU
    (passes when no target is set)."""
    report, target, tolerance = _qc(subject), subject.qc.loudness_target_lufs, subject.qc.loudness_tolerance_lu
    measured = f"{report.loudness.integrated_lufs:g} LUFS" if report.loudness else "no loudness"
    passed = f"{measured}, no target set" if target is None else f"{measured}, within {target:g} ± {tolerance:g}"
    return Verdict(loudness_problems(report, target, tolerance), passed)


def no_long_black_or_freeze(subject: Subject) -> Verdict:
    """No black or frozen stretch longer than `max_stretch_s`, but for those at the start or the end (`edge_s`)."""
    rules = subject.qc
    return Verdict(stretch_problems(_qc(subject), rules.max_stretch_s, rules.edge_s),
                   f"no black or frozen stretch over {rules.max_stretch_s:g} s away from the start and end")


Check = Callable[[Subject], Verdict]


def _record(context: AssetCheckExecutionContext, catalog: CatalogResource, video: Video, spec: AssetCheckSpec,
            verdict: Verdict) -> AssetCheckResult:
    """The check's result, kept in the catalog too: passed without problems, else failed with them as its description."""
    log = get_logger("checks", asset_id=video.asset_id, job_id=context.run.run_id, org_id=video.org_id)
    problems = verdict.problems
    if problems:
        log.warning("check.failed", check=spec.name, problems=problems)
    else:
        log.info("check.passed", check=spec.name)
    description = "; ".join(problems) or verdict.passed
    catalog.record_check(video, spec.asset_key, spec.name, not problems, description, context.run.run_id)
    return AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=not problems,
                            description=description,
                            metadata={"problems": MetadataValue.json(problems), **verdict.metadata})


def checks_of(asset: AssetsDefinition, checks: list[Check], *, blocking: bool = False,
              descriptions: dict[Check, str] | None = None) -> AssetChecksDefinition:
    """One step that makes the checks of `asset` selected in its run, each its own check named after its function."""
    specs = [(check, AssetCheckSpec(check.__name__, asset=asset, partitions_def=videos_partitions, blocking=blocking,
                                    description=(descriptions or {}).get(check, check.__doc__)))
             for check in checks]

    # Retried as the assets' steps are: what raises here is the store or the catalog failing (a check that
    # finds its documents missing or broken fails as a check, without raising).
    @multi_asset_check(name=f"{asset.key.to_python_identifier()}_checks", specs=[spec for _, spec in specs],
                       can_subset=True, retry_policy=MEDIA_RETRY_POLICY)
    def step(context: AssetCheckExecutionContext, catalog: CatalogResource, storage: MediaStorage,
             qc: QcRules) -> Iterator[AssetCheckResult]:
        video = catalog.video(context.partition_key)
        subject = Subject(video, storage.store, qc)
        for check, spec in specs:
            if spec.key not in context.selected_asset_check_keys:
                continue
            try:
                verdict = check(subject)
            except Unreadable as exc:
                verdict = Verdict([str(exc)], "")
            yield _record(context, catalog, video, spec, verdict)

    return step


QC_CHECKS = [checks_of(media_qc, [audio_is_heard, loudness_on_target, no_long_black_or_freeze], descriptions={
    audio_is_heard: "audio present and not silent throughout",
    loudness_on_target: "integrated loudness within the target ± tolerance",
    no_long_black_or_freeze: "no black or frozen stretch longer than HEIMDEX_QC_MAX_STRETCH_S away from the start and end",
})]
VIDEO_CHECKS = [checks_of(scene_sidecar, [sidecar_matches_schema, scenes_cover_the_video], blocking=True),
                checks_of(thumbnails, [thumbnails_are_stored]), checks_of(storyboard, [storyboard_matches_sprite]),
                *QC_CHECKS]
# Every check of a video partition, the probe step's own included: what the API's asset answer sums up.
# In the order they run (`check_keys` is a set).
VIDEO_CHECK_KEYS = [spec.key for step in [probe_metadata, *VIDEO_CHECKS] for spec in step.check_specs]
# The checks whose failure sends `asset.qc_failed`.
QC_CHECK_KEYS = [spec.key for step in QC_CHECKS for spec in step.check_specs]
