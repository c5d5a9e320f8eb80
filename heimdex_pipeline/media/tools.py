"""Where the ffmpeg tools are, how every input is opened, and how their failures are told apart.

ffprobe, ffmpeg and PyAV open every input alike (`input_url`, `format_options`,
`decoder_options`): only through the protocols allowed for it, and only with the demuxers of
CONTAINER_FORMATS. libavformat otherwise guesses the format from the bytes, and some of the
formats it knows name other files or URLs for it to open: an HLS or DASH playlist, an
ffconcat script, an SDP description, an IMF composition, an image-sequence pattern. A
playlist uploaded by one org that names another org's file would then be read as its own.

An input is a local file (PROTOCOLS: `file` alone), or, for ffprobe only, an `http(s)://` URL
the store itself made for one object (`ObjectStore.probe_input`: a presigned GET of S3), opened
through URL_PROTOCOLS. A client-given URL never gets here: the API turns a client's URI into a
key of the store first. Decoding and thumbnails read local files only. Messages name an input
by its file (or object) name, never its folders, endpoint or a URL's signature.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

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
# Where a local input may be read from: its file only.
PROTOCOLS = ("file",)
# Where a URL input (a store's presigned GET) may be read from: HTTP(S) and what carries it.
URL_PROTOCOLS = ("http", "https", "tcp", "tls", "crypto")
URL_SCHEMES = ("http://", "https://")
# What libavformat may read to find the streams: its own defaults (5 MB, 5 s of media), set
# here so that neither a caller nor a later FFmpeg widens them.
PROBE_SIZE_BYTES = 5_000_000
ANALYZE_DURATION_US = 5_000_000
# How a local file is opened (decoding and thumbnails open nothing else).
FORMAT_OPTIONS = {
    "format_whitelist": ",".join(CONTAINER_FORMATS),
    "protocol_whitelist": ",".join(PROTOCOLS),
    "probesize": str(PROBE_SIZE_BYTES),
    "analyzeduration": str(ANALYZE_DURATION_US),
}
URL_FORMAT_OPTIONS = {**FORMAT_OPTIONS, "protocol_whitelist": ",".join(URL_PROTOCOLS)}

# FFmpeg's log prefixes carry the address of the context: "[mov,mp4 @ 0x55d0...]".
_CONTEXT_ADDRESS = re.compile(r" @ 0x[0-9a-f]+\]")
_OVERSIZED = re.compile(r"Picture size (\d+x\d+) exceeds specified max pixel count (\d+)")
# The folders of an absolute path (or file: URL) in a tool's message.
_FOLDERS = re.compile(r"(?<![\w/])(?:file:)?/(?:[^/\s'\"]+/)+")
# Any network URL in a tool's message (the input's, a redirect's, a connection's).
_URLS = re.compile(r"\b(?:https?|tcp|tls|crypto)://[^\s'\"]+")
# A store's signature parameters, should one be quoted apart from its URL.
_SIGNATURE = re.compile(r"[?&]?\b(?:X-Amz-[\w-]+|Signature|AWSAccessKeyId|Expires)=[^\s&'\"]*")
# What ffprobe tells when the store, not the file, failed: an HTTP error or no connection.
_STORE_FAILURE = re.compile(
    r"Server returned|HTTP error|Connection refused|Connection timed out|Connection reset|"
    r"Failed to resolve hostname|Network is unreachable|Operation timed out")
# How a message names the store behind a URL (its endpoint is not the client's business).
STORE = "the store"

Source = Path | str


def tool_available(name: str) -> bool:
    """Whether an executable (ffmpeg, ffprobe) is on the PATH."""
    return shutil.which(name) is not None


def is_url(source: Source) -> bool:
    """Whether an input is an `http(s)://` URL (a store's presigned GET) rather than a local file."""
    return isinstance(source, str) and source.startswith(URL_SCHEMES)


def as_source(source: Source) -> Source:
    """An input as the tools take it: a URL unchanged, anything else as a Path."""
    return source if is_url(source) else Path(source)


def source_name(source: Source) -> str:
    """How messages name an input: its file name, or the last segment of a URL's path (the object's
    name), never the folders, the endpoint or the query (a presigned URL's signature)."""
    if is_url(source):
        return unquote(urlsplit(str(source)).path.rsplit("/", 1)[-1]) or "the object"
    return Path(source).name


def input_url(source: Source) -> str:
    """The URL an input is opened by: a URL unchanged, a local file by an explicit `file:` one, so no
    part of its name reads as a protocol."""
    return str(source) if is_url(source) else f"file:{Path(source).absolute()}"


def format_options(source: Source) -> dict[str, str]:
    """The options an input is opened with: the same formats and probing limits for all, the
    protocols of a URL (URL_PROTOCOLS) or of a file (`file` alone)."""
    return URL_FORMAT_OPTIONS if is_url(source) else FORMAT_OPTIONS


def decoder_options(limits: MediaLimits) -> dict[str, str]:
    """Options of every decoder: libavcodec refuses a frame above the size limit before allocating it."""
    return {"max_pixels": str(limits.max_frame_pixels)}


def input_args(limits: MediaLimits, source: Source) -> list[str]:
    """The command-line options that open `source` as every input is opened (put before `-i`)."""
    options = {**format_options(source), **decoder_options(limits)}
    return [arg for name, value in options.items() for arg in (f"-{name}", value)]


def require_file(source: Source) -> None:
    """Fail transiently when a local source is missing: an upload may be mid-rename. A URL is the
    store's own, made for an object it has; a missing one shows when the tool opens it."""
    if not is_url(source) and not Path(source).is_file():
        raise TransientMediaError(f"source file is missing: {source_name(source)}")


def unsupported(source: Source) -> UnsupportedFormatError:
    """The error for an input that is no video container Heimdex reads."""
    return UnsupportedFormatError(
        f"{source_name(source)} is not a video container Heimdex reads (playlists, manifests, scripts, images and raw "
        f"streams are refused; accepted: {', '.join(CONTAINER_FORMATS.values())})")


def run_tool(tool: str, args: Sequence[str], path: Source, deadline: Deadline) -> bytes:
    """Run ffmpeg or ffprobe on `path` and answer its output; it is killed when the deadline passes."""
    return run_tool_logged(tool, args, path, deadline)[0]


def run_tool_logged(tool: str, args: Sequence[str], path: Source, deadline: Deadline) -> tuple[bytes, str]:
    """`run_tool`, answering its log (standard error) too: what ffmpeg's measuring filters report."""
    deadline.check(f"{tool} on {source_name(path)}")
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=max(0.0, deadline.remaining()))
    except subprocess.TimeoutExpired:
        raise MediaTimeoutError(
            f"{tool} on {source_name(path)} took longer than its limit of {deadline.seconds:.0f} s and was stopped") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if process.returncode != 0:
        raise failure(tool, path, process.returncode, stderr)
    # ffprobe gives a refused frame size as no size at all, and succeeds.
    log = stderr.decode("utf-8", "replace")
    if error := _oversized(path, log):
        raise error
    return stdout, log


def _scrub(message: str, path: Source) -> str:
    """A tool's message with every absolute path cut down to its file name; for a URL input, the URL
    (and its signature) cut down to the object's name, and any other URL or the endpoint's host
    to STORE."""
    name = source_name(path)
    if is_url(path):
        url = urlsplit(str(path))
        message = _URLS.sub(lambda found: name if urlsplit(found.group()).path == url.path else STORE, message)
        message = _SIGNATURE.sub("", message)
        for spelling in sorted({url.netloc, url.hostname or ""} - {""}, key=len, reverse=True):
            message = message.replace(spelling, STORE)
    else:
        for spelling in sorted({input_url(path), str(Path(path).absolute()), str(Path(path).resolve())},
                               key=len, reverse=True):
            message = message.replace(spelling, name)
    return _FOLDERS.sub("", _CONTEXT_ADDRESS.sub("]", message))


def _oversized(path: Source, message: str) -> MediaLimitError | None:
    """The error for a frame the decoder refused by its size limit (`max_pixels`), if the message tells of one."""
    if oversized := _OVERSIZED.search(message):
        size, limit = oversized.groups()
        return MediaLimitError(f"{source_name(path)} has {size} frames, more than the limit of {limit} pixels")
    return None


def failure(tool: str, path: Source, returncode: int | None, stderr: bytes) -> MediaError:
    """The error for a failed ffmpeg/ffprobe run: transient when killed, the file vanished or the
    store behind a URL failed."""
    name = source_name(path)
    text = _scrub(stderr.decode("utf-8", "replace"), path)
    message = text.strip().splitlines()
    tail = " | ".join(message[-3:]) if message else "no output"
    if returncode is not None and returncode < 0:
        return TransientMediaError(f"{tool} was killed by signal {-returncode} on {name}")
    if not is_url(path) and not Path(path).is_file():
        return TransientMediaError(f"source file disappeared while {tool} read it: {name}")
    if is_url(path) and _STORE_FAILURE.search(text):
        return TransientMediaError(f"{tool} could not read {name} from the store: {tail}")
    if "not on whitelist" in text:
        return unsupported(path)
    if error := _oversized(path, text):
        return error
    if not message:
        # ffprobe and ffmpeg always explain a bad input; silence means the process was cut off.
        return TransientMediaError(f"{tool} stopped without a message on {name}")
    return UnreadableMediaError(f"{tool} cannot read {name}: {tail}")
