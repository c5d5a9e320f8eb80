"""Where the ffmpeg tools are, how every input is opened, and how their failures are told apart.

ffprobe, ffmpeg and PyAV open every input alike (`input_url`, `FORMAT_OPTIONS`,
`decoder_options`): only through the protocols in PROTOCOLS, and only with the demuxers of
CONTAINER_FORMATS. libavformat otherwise guesses the format from the bytes, and some of the
formats it knows name other files or URLs for it to open: an HLS or DASH playlist, an
ffconcat script, an SDP description, an IMF composition, an image-sequence pattern. A
playlist uploaded by one org that names another org's file would then be read as its own.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from heimdex_pipeline.media.errors import (
    MediaError,
    MediaLimitError,
    MediaTimeoutError,
    TransientMediaError,
    UnreadableMediaError,
    UnsupportedFormatError,
)
from heimdex_pipeline.media.limits import Deadline, MediaLimits

FFMPEG = os.environ.get("HEIMDEX_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("HEIMDEX_FFPROBE", "ffprobe")

# The demuxers of the containers cameras, phones, screen recorders and encoders write, and
# what they hold. None of them opens another file or URL (mov's data references and
# absolute aliases stay off, their default). Raw streams and single images are left out
# too: they carry no timing for the scene times.
CONTAINER_FORMATS = {
    "mov": "MP4/MOV/3GP",
    "matroska": "Matroska/WebM",
    "avi": "AVI",
    "mpegts": "MPEG-TS/AVCHD",
    "mpeg": "MPEG-PS/VOB",
    "flv": "FLV",
    "asf": "ASF/WMV",
    "ogg": "Ogg",
    "mxf": "MXF",
    "dv": "DV",
}
# Where inputs may be read from: local files only. An object in a bucket is handed to the tools as
# a scratch copy (`S3Store.media_input`), so no network protocol is ever opened for an input.
PROTOCOLS = ("file",)
# What libavformat may read to find the streams: its own defaults (5 MB, 5 s of media), set
# here so that neither a caller nor a later FFmpeg widens them.
PROBE_SIZE_BYTES = 5_000_000
ANALYZE_DURATION_US = 5_000_000
FORMAT_OPTIONS = {
    "format_whitelist": ",".join(CONTAINER_FORMATS),
    "protocol_whitelist": ",".join(PROTOCOLS),
    "probesize": str(PROBE_SIZE_BYTES),
    "analyzeduration": str(ANALYZE_DURATION_US),
}

# FFmpeg's log prefixes carry the address of the context: "[mov,mp4 @ 0x55d0...]".
_CONTEXT_ADDRESS = re.compile(r" @ 0x[0-9a-f]+\]")
_OVERSIZED = re.compile(r"Picture size (\d+x\d+) exceeds specified max pixel count (\d+)")
# The folders of an absolute path (or file: URL) in a tool's message.
_FOLDERS = re.compile(r"(?<![\w/])(?:file:)?/(?:[^/\s'\"]+/)+")


def tool_available(name: str) -> bool:
    """Whether an executable (ffmpeg, ffprobe) is on the PATH."""
    return shutil.which(name) is not None


def input_url(path: Path) -> str:
    """The URL an input is opened by: an explicit `file:` one, so no part of the name reads as a protocol."""
    return f"file:{path.absolute()}"


def decoder_options(limits: MediaLimits) -> dict[str, str]:
    """Options of every decoder: libavcodec refuses a frame above the size limit before allocating it."""
    return {"max_pixels": str(limits.max_frame_pixels)}


def input_args(limits: MediaLimits) -> list[str]:
    """The command-line options that open an input as every input is opened (put before `-i`)."""
    options = {**FORMAT_OPTIONS, **decoder_options(limits)}
    return [arg for name, value in options.items() for arg in (f"-{name}", value)]


def require_file(path: Path) -> None:
    """Fail transiently when the source is missing: an upload may be mid-rename."""
    if not path.is_file():
        raise TransientMediaError(f"source file is missing: {path.name}")


def unsupported(path: Path) -> UnsupportedFormatError:
    """The error for an input that is no video container Heimdex reads."""
    return UnsupportedFormatError(
        f"{path.name} is not a video container Heimdex reads (playlists, manifests, scripts, images and raw "
        f"streams are refused; accepted: {', '.join(CONTAINER_FORMATS.values())})")


def run_tool(tool: str, args: Sequence[str], path: Path, deadline: Deadline) -> bytes:
    """Run ffmpeg or ffprobe on `path` and answer its output; it is killed when the deadline passes."""
    deadline.check(f"{tool} on {path.name}")
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=max(0.0, deadline.remaining()))
    except subprocess.TimeoutExpired:
        raise MediaTimeoutError(
            f"{tool} on {path.name} took longer than its limit of {deadline.seconds:.0f} s and was stopped") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if process.returncode != 0:
        raise failure(tool, path, process.returncode, stderr)
    # ffprobe gives a refused frame size as no size at all, and succeeds.
    if error := _oversized(path, stderr.decode("utf-8", "replace")):
        raise error
    return stdout


def _scrub(message: str, path: Path) -> str:
    """A tool's message with every absolute path cut down to its file name."""
    for spelling in sorted({input_url(path), str(path.absolute()), str(path.resolve())}, key=len, reverse=True):
        message = message.replace(spelling, path.name)
    return _FOLDERS.sub("", _CONTEXT_ADDRESS.sub("]", message))


def _oversized(path: Path, message: str) -> MediaLimitError | None:
    """The error for a frame the decoder refused by its size limit (`max_pixels`), if the message tells of one."""
    if oversized := _OVERSIZED.search(message):
        size, limit = oversized.groups()
        return MediaLimitError(f"{path.name} has {size} frames, more than the limit of {limit} pixels")
    return None


def failure(tool: str, path: Path, returncode: int | None, stderr: bytes) -> MediaError:
    """The error for a failed ffmpeg/ffprobe run: transient when killed or the file vanished."""
    text = _scrub(stderr.decode("utf-8", "replace"), path)
    message = text.strip().splitlines()
    tail = " | ".join(message[-3:]) if message else "no output"
    if returncode is not None and returncode < 0:
        return TransientMediaError(f"{tool} was killed by signal {-returncode} on {path.name}")
    if not path.is_file():
        return TransientMediaError(f"source file disappeared while {tool} read it: {path.name}")
    if "not on whitelist" in text:
        return unsupported(path)
    if error := _oversized(path, text):
        return error
    if not message:
        # ffprobe and ffmpeg always explain a bad input; silence means the process was cut off.
        return TransientMediaError(f"{tool} stopped without a message on {path.name}")
    return UnreadableMediaError(f"{tool} cannot read {path.name}: {tail}")
