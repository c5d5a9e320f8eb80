"""Errors raised by the media functions.

    MediaError
    ├── UnreadableMediaError        the file is not a video we can read: retrying will not help
    │   ├── UnsupportedFormatError  a playlist, manifest, script, image or stream, not a video container
    │   └── MediaLimitError         beyond a limit: frame size, duration or decoding time
    │       └── MediaTimeoutError   a tool or decoder ran past its wall-clock deadline and was stopped
    └── TransientMediaError         the tool was killed or the file was briefly missing: retry

Messages name a file by its name only, never by its path on the server.
"""


class MediaError(Exception):
    """Something went wrong while reading or processing a media file."""


class UnreadableMediaError(MediaError):
    """The input is not a readable video (corrupt, truncated, text, no video stream)."""


class UnsupportedFormatError(UnreadableMediaError):
    """The input is not one of the video containers Heimdex opens (an HLS or DASH playlist, say)."""


class MediaLimitError(UnreadableMediaError):
    """The video is beyond a limit: frames too large, too long, or too slow to decode."""


class MediaTimeoutError(MediaLimitError):
    """Reading the video took longer than its deadline; a crafted file would time out again."""


class TransientMediaError(MediaError):
    """A failure that may pass: ffmpeg killed by a signal, a file briefly missing."""
