"""PySceneDetect's own command line, `scenedetect -i FILE detect-<name> list-scenes`, and its CSV read back."""

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

# The venv's `scenedetect`, beside the Python running the tests.
SCENEDETECT = str(Path(sys.executable).with_name("scenedetect"))


def list_scenes(path: Path, *detect: str, min_scene_len: int = 15) -> str:
    """The CSV `list-scenes` writes for `path` with the `detect-...` command and options given."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([SCENEDETECT, "--quiet", "-i", str(path), "--min-scene-len", str(min_scene_len),
                        "-o", folder, *detect, "list-scenes"], check=True, timeout=300)
        (written,) = Path(folder).glob("*.csv")
        return written.read_text()


def cut_times(listing: str) -> list[float]:
    """Where each scene after the first starts, in seconds, from a `list-scenes` CSV."""
    rows = list(csv.reader(listing.splitlines()))
    # The cut list comes first: a blank line when there is no cut.
    assert rows[0][:1] in (["Timecode List:"], []) and rows[1][3] == "Start Time (seconds)", rows[:2]
    return [float(row[3]) for row in rows[3:]]
