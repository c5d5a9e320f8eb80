"""Crafted hostile inputs, made in the test from text and ffmpeg (nothing committed).

`playlists` writes one file per kind of playlist, manifest or script that libavformat would
follow to another file; `huge_mjpeg` makes an MJPEG AVI of enormous frames, and
`understate_avi_size` makes its header claim small ones.
"""

import shutil
import struct
import subprocess
from pathlib import Path

from heimdex_pipeline.media.tools import FFMPEG

# Kinds that no demuxer recognises (the URL is ours, never the file's): refused as unreadable.
NOT_A_FORMAT = {"concat-protocol"}


def _hls(segment: str) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n" \
           f"#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n"


def _dash(target: Path) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" minBufferTime="PT1S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>
  <AdaptationSet mimeType="video/mp4">
   <Representation id="1" bandwidth="100000" width="160" height="120" codecs="avc1.64000d">
    <BaseURL>{target.as_uri()}</BaseURL>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


SDP = ("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=heimdex\nc=IN IP4 127.0.0.1\nt=0 0\n"
       "m=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n")

# Each kind of file that names another file for libavformat to open, and the name it is
# uploaded as: HLS under the names it is found by, a master playlist, DASH, ffconcat (by
# absolute path, which its safe mode refuses, and by a neighbour's name, which it follows),
# the concat protocol as text, SDP (RTP over the network) and an image2 sequence pattern.
KINDS = {
    "hls": "playlist.m3u8",
    "hls-m3u": "playlist.m3u",
    "hls-named-mp4": "clip.mp4",
    "hls-named-mov": "clip.mov",
    "hls-named-ts": "clip.ts",
    "hls-named-mkv": "clip.mkv",
    "hls-file-url": "url.mp4",
    "hls-master": "master.mp4",
    "dash": "manifest.mpd",
    "dash-named-mp4": "manifest.mp4",
    "ffconcat-absolute": "script.mp4",
    "ffconcat-neighbour": "neighbour-script.mp4",
    "concat-protocol": "protocol.mp4",
    "sdp": "session.mp4",
    "image2-pattern": "frame%03d.jpg",
}


def crafted(kind: str, target: Path, scratch: Path) -> bytes:
    """The bytes of a `kind` file naming `target`; what it needs besides is kept in `scratch`."""
    if kind == "image2-pattern":
        _frames(target, scratch)
        return (scratch / "frame001.jpg").read_bytes()
    if kind == "hls-master":
        variant = scratch / "variant.m3u8"
        variant.write_text(_hls(str(target)))
        return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{variant}\n".encode()
    return {
        "hls-file-url": _hls(target.as_uri()),
        "dash": _dash(target),
        "dash-named-mp4": _dash(target),
        "ffconcat-absolute": f"ffconcat version 1.0\nfile '{target}'\nduration 2.0\n",
        "ffconcat-neighbour": "ffconcat version 1.0\nfile neighbour.mp4\nduration 2.0\n",
        "concat-protocol": f"concat:{target}|{target}\n",
        "sdp": SDP,
    }.get(kind, _hls(str(target))).encode()


def add_neighbours(kind: str, target: Path, folder: Path) -> None:
    """Put beside a `kind` file in `folder` the files it names by a relative name."""
    if kind == "ffconcat-neighbour":
        shutil.copyfile(target, folder / "neighbour.mp4")
    if kind == "image2-pattern":
        _frames(target, folder)


def playlists(target: Path, folder: Path) -> dict[str, Path]:
    """Every kind, written in `folder` under its upload name with its neighbours."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for kind, name in KINDS.items():
        made[kind] = folder / name
        made[kind].write_bytes(crafted(kind, target, folder))
        add_neighbours(kind, target, folder)
    return made


def _frames(target: Path, folder: Path) -> None:
    """frame001.jpg, frame002.jpg, frame003.jpg: what image2 reads for the name frame%03d.jpg."""
    if not (folder / "frame001.jpg").is_file():
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", str(target), "-frames:v", "3",
                        str(folder / "frame%03d.jpg")], check=True)


def huge_mjpeg(out: Path, size: int) -> Path:
    """A one-second MJPEG AVI of one `size`x`size` grey frame: a few MB that decode to hundreds."""
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=gray:size={size}x{size}:rate=1:duration=1", "-pix_fmt", "yuvj420p", "-c:v", "mjpeg",
                    "-q:v", "31", str(out)], check=True)
    return out


def understate_avi_size(avi: Path, out: Path, width: int, height: int) -> Path:
    """A copy of an AVI whose headers (avih and the stream's BITMAPINFOHEADER) claim `width`x`height`."""
    data = bytearray(avi.read_bytes())
    avih = data.index(b"avih") + 8  # dwWidth and dwHeight are its ninth and tenth fields
    data[avih + 32:avih + 40] = struct.pack("<II", width, height)
    strf = data.index(b"strf") + 8  # biWidth and biHeight follow biSize
    data[strf + 4:strf + 12] = struct.pack("<ii", width, height)
    out.write_bytes(bytes(data))
    return out
