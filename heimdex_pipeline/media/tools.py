"""Where the ffmpeg tools are, and how their failures are told apart."""

import os
import shutil
from pathlib import Path

from heimdex_pipeline.media.errors import TransientMediaError, UnreadableMediaError

FFMPEG = os.environ.get("HEIMDEX_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("HEIMDEX_FFPROBE", "ffprobe")


def tool_available(name: str) -> bool:
    """Whether an executable (ffmpeg, ffprobe) is on the PATH."""
    return shutil.which(name) is not None


def require_file(path: Path) -> None:
    """Fail transiently when the source is missing: an upload may be mid-rename."""
    if not path.is_file():
        raise TransientMediaError(f"source file is missing: {path}")


def failure(tool: str, path: Path, returncode: int | None, stderr: bytes) -> Exception:
    """The error for a failed ffmpeg/ffprobe run: transient when killed or the file vanished."""
    message = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = " | ".join(message[-3:]) if message else "no output"
    if returncode is not None and returncode < 0:
        return TransientMediaError(f"{tool} was killed by signal {-returncode} on {path.name}")
    if not path.is_file():
        return TransientMediaError(f"source file disappeared while {tool} read it: {path}")
    if not message:
        # ffprobe and ffmpeg always explain a bad input; silence means the process was cut off.
        return TransientMediaError(f"{tool} stopped without a message on {path.name}")
    return UnreadableMediaError(f"{tool} cannot read {path.name}: {tail}")
