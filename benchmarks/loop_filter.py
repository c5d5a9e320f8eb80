"""How far Heimdex's decodes move ContentDetector's frame scores from PySceneDetect's own.

For each video of the shared media, every frame's content score (`content_val`) as
PySceneDetect's SceneManager computes it (OpenCV backend, its downscale), against the same
detector fed by Heimdex's two decodes (`heimdex_pipeline.media.decoding`): `fast` (the loop
filter skipped, swscale to the working width; ContentDetector's two looks) and `exact` (whole
decode, packed BGR, OpenCV's resize; every other detector). Frames are paired by their order.

    HEIMDEX_MEDIA_DIR=/work/shared/media/pyscenedetect uv run python -m benchmarks.loop_filter
"""

import csv
import io
import os
from fractions import Fraction
from pathlib import Path

from scenedetect import ContentDetector, SceneManager, StatsManager, open_video

from heimdex_pipeline.media.decoding import Timeline, VideoStream
from heimdex_pipeline.media.frame_detectors import Clock
from heimdex_pipeline.media.limits import current_limits
from heimdex_pipeline.media.probe import probe_video

SCORE = ContentDetector.FRAME_SCORE_KEY


def pyscenedetect_scores(path: Path) -> list[float]:
    """Every frame's content score from PySceneDetect's own pipeline, in frame order."""
    stats = StatsManager()
    manager = SceneManager(stats_manager=stats)
    manager.add_detector(ContentDetector())
    manager.detect_scenes(open_video(str(path)))
    out = io.StringIO()
    stats.save_to_csv(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    return [float(row[SCORE]) for row in rows if row.get(SCORE)]


def heimdex_scores(path: Path, fast: bool) -> list[float]:
    """Every frame's content score with Heimdex's decode (the first frame has none)."""
    probe = probe_video(path)
    limits = current_limits()
    video = VideoStream(path, probe.get("video_stream_index"), limits, limits.decoding_deadline(probe), fast=fast)
    clock = Clock(rate=Fraction(25), start_s=Fraction(0))
    detector, stats = ContentDetector(), StatsManager()
    detector.stats_manager = stats
    scores = []
    with video.open() as decoder:
        for index, (pts, image) in enumerate(decoder.frames_from_start(Timeline(), reference_only=False)):
            timecode = clock.timecode(pts, decoder.time_base)
            detector.process_frame(timecode, image)
            if index:
                scores.append(stats.get_metrics(timecode, [SCORE])[0])
    return scores


def main() -> None:
    media = Path(os.environ.get("HEIMDEX_MEDIA_DIR", "../shared/media/pyscenedetect"))
    print("| video | frames | fast: mean | fast: max | exact: mean | exact: max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sorted(media.glob("*.m[pk][4v]")):
        theirs = pyscenedetect_scores(path)
        cells = []
        for fast in (True, False):
            ours = heimdex_scores(path, fast)
            gaps = [abs(a - b) for a, b in zip(theirs, ours, strict=False)]
            cells += [f"{sum(gaps) / len(gaps):.2f}", f"{max(gaps):.2f}"]
        print(f"| {path.name} | {len(theirs)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
