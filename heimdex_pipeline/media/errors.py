"""Errors raised by the media functions.

    MediaError
    ├── UnreadableMediaError   the file is not a video we can read: retrying will not help
    └── TransientMediaError    the tool was killed or the file was briefly missing: retry
"""


class MediaError(Exception):
    """Something went wrong while reading or processing a media file."""


class UnreadableMediaError(MediaError):
    """The input is not a readable video (corrupt, truncated, text, no video stream)."""


class TransientMediaError(MediaError):
    """A failure that may pass: ffmpeg killed by a signal, a file briefly missing."""
