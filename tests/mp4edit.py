"""Edit the metadata of small MP4 files written by ``cv2.VideoWriter`` (test helper, no FFmpeg CLI).

OpenCV cannot write rotation metadata or variable frame rates, so tests write an ordinary MP4 and then
rewrite two ISO-BMFF boxes: the track header's display matrix (``tkhd``, how phones store portrait
orientation) and the decoding time-to-sample table (``stts``, per-frame durations). OpenCV's muxer
puts ``moov`` after ``mdat``, so growing ``moov`` moves no sample data and chunk offsets stay valid.
"""

import struct
from pathlib import Path

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def _parse(data: bytes) -> list:
    """Boxes as [type, payload-or-children] lists."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = len(data) - offset
        payload = data[offset + header : offset + size]
        boxes.append([kind, _parse(payload) if kind in _CONTAINERS else payload])
        offset += size
    return boxes


def _serialise(boxes: list) -> bytes:
    out = b""
    for kind, content in boxes:
        payload = _serialise(content) if isinstance(content, list) else content
        if len(payload) + 8 < 2**32:
            out += struct.pack(">I4s", len(payload) + 8, kind) + payload
        else:
            out += struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload
    return out


def _find(boxes: list, path: list[bytes]) -> list:
    """All boxes at ``path`` (a list of types) below ``boxes``."""
    found = [box for box in boxes if box[0] == path[0]]
    if len(path) == 1:
        return found
    return [hit for box in found for hit in _find(box[1], path[1:])]


def _video_track(boxes: list) -> list:
    for trak in _find(boxes, [b"moov", b"trak"]):
        hdlr = _find(trak[1], [b"mdia", b"hdlr"])[0][1]
        if hdlr[8:12] == b"vide":
            return trak
    raise ValueError("no video track")


def _rewrite(path: Path, edit) -> None:
    boxes = _parse(path.read_bytes())
    order = [box[0] for box in boxes]
    assert order.index(b"mdat") < order.index(b"moov"), "moov before mdat: offsets would move"
    edit(boxes)
    path.write_bytes(_serialise(boxes))


def set_rotation(path: str | Path, degrees: int) -> None:
    """Store a display rotation of ``degrees`` clockwise (0, 90, 180, 270) in the video track."""
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees % 360]

    def edit(boxes: list) -> None:
        tkhd = _find(_video_track(boxes)[1], [b"tkhd"])[0]
        payload = bytearray(tkhd[1])
        matrix_at = 4 + (32 if payload[0] == 1 else 20) + 8 + 8
        fixed = [cos, sin, 0, -sin, cos, 0, 0, 0, 0]  # a b u c d v x y w (16.16 / 2.30)
        values = [v * 0x10000 for v in fixed[:8]] + [0x40000000]
        payload[matrix_at : matrix_at + 36] = struct.pack(">9i", *values)
        tkhd[1] = bytes(payload)

    _rewrite(Path(path), edit)


def _put_duration(box: list, at_v0: int, at_v1: int, value: int) -> None:
    """Overwrite the duration field of a full box (32-bit in version 0, 64-bit in version 1)."""
    payload = bytearray(box[1])
    if payload[0] == 1:
        payload[at_v1 : at_v1 + 8] = struct.pack(">Q", value)
    else:
        payload[at_v0 : at_v0 + 4] = struct.pack(">I", value)
    box[1] = bytes(payload)


def _set_durations(boxes: list, mdhd: list, seconds: float) -> None:
    """Make the movie, track, edit list and media durations all ``seconds`` long, so no demuxer
    cuts the stream at the old length."""
    mvhd = _find(boxes, [b"moov", b"mvhd"])[0]
    movie_scale = struct.unpack(">I", mvhd[1][20:24] if mvhd[1][0] == 1 else mvhd[1][12:16])[0]
    media_scale = struct.unpack(">I", mdhd[1][20:24] if mdhd[1][0] == 1 else mdhd[1][12:16])[0]
    movie, media = round(seconds * movie_scale), round(seconds * media_scale)
    _put_duration(mvhd, 16, 24, movie)
    _put_duration(mdhd, 16, 24, media)
    trak = _video_track(boxes)
    _put_duration(_find(trak[1], [b"tkhd"])[0], 20, 28, movie)
    for elst in _find(trak[1], [b"edts", b"elst"]):
        payload = bytearray(elst[1])
        if struct.unpack(">I", payload[4:8])[0] == 1:  # one segment: stretch it over the clip
            fmt = ">Q" if payload[0] == 1 else ">I"
            payload[8 : 8 + struct.calcsize(fmt)] = struct.pack(fmt, movie)
        elst[1] = bytes(payload)


def set_frame_durations(path: str | Path, durations_s: list[float]) -> None:
    """Give frame ``i`` the duration ``durations_s[i]`` seconds (one per frame): variable frame rate."""

    def edit(boxes: list) -> None:
        mdia = _find(_video_track(boxes)[1], [b"mdia"])[0]
        mdhd = _find(mdia[1], [b"mdhd"])[0]
        version = mdhd[1][0]
        timescale_at = 4 + (16 if version == 1 else 8)
        timescale = struct.unpack(">I", mdhd[1][timescale_at : timescale_at + 4])[0]
        stts = _find(mdia[1], [b"minf", b"stbl", b"stts"])[0]
        count = sum(
            struct.unpack(">I", stts[1][8 + 8 * i : 12 + 8 * i])[0]
            for i in range(struct.unpack(">I", stts[1][4:8])[0])
        )
        assert count == len(durations_s), f"video has {count} frames, got {len(durations_s)}"
        deltas = [max(1, round(d * timescale)) for d in durations_s]
        entries = b"".join(struct.pack(">II", 1, delta) for delta in deltas)
        stts[1] = stts[1][:4] + struct.pack(">I", len(deltas)) + entries
        _set_durations(boxes, mdhd, sum(deltas) / timescale)

    _rewrite(Path(path), edit)
