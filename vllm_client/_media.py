"""Media content parts (images, audio, video) and the one place local media files are read.

A ``str`` is a URL (``http``, ``https``, ``data``) and is never read from disk: an app that
passes user-supplied URLs through cannot be made to upload ``/proc/self/environ``. A local
file is read only when asked for explicitly, as a ``pathlib.Path`` (or ``data_url(path)``):
it must be a regular file of at most ``MAX_MEDIA_BYTES`` (or ``max_bytes=``) whose first bytes
show a type of the part's kind (``image/*``, ``audio/*``, ``video/*``; the magic bytes decide,
not the file name). Raw ``bytes`` are checked the same way (type only).
"""

from __future__ import annotations

import base64
import os
import stat
from typing import Any, Literal

from ._exceptions import InvalidRequestError

__all__ = ["MAX_MEDIA_BYTES", "MediaKind", "data_url", "media_part", "read_media", "sniff"]

MediaKind = Literal["image", "audio", "video"]
MAX_MEDIA_BYTES = 32 * 1024 * 1024  # per local file read for a content part (bytes, before base64)

_URL_SCHEMES = ("http://", "https://", "data:")
_PART_TYPES = {"image": "image_url", "audio": "audio_url", "video": "video_url"}
_KINDS = ("image", "audio", "video")
_A = {"image": "an image", "audio": "an audio", "video": "a video"}

# ISO base media (``ftyp`` boxes): brands that mean a still image; any other is audio or video.
_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def sniff(data: bytes, kind: str) -> str | None:
    """The MIME type of ``data`` when its first bytes show a format of ``kind`` ("image",
    "audio" or "video"); None otherwise."""
    head = data[:64]
    if kind == "image":
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if head.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return "image/gif"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "image/webp"
        if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
            return "image/bmp"  # (the DIB header's size: one of the known ones)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return "image/tiff"
        if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
            return "image/avif" if head[8:12] in (b"avif", b"avis") else "image/heic"
        return None
    if kind == "audio":
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return "audio/wav"
        if head.startswith(b"ID3") and head[3:4] in (b"\x02", b"\x03", b"\x04"):
            return "audio/mpeg"
        if len(head) >= 2 and head[0] == 0xFF:
            if head[1] & 0xF6 == 0xF0:  # ADTS (layer bits 00): AAC
                return "audio/aac"
            if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # an MPEG audio frame (layer I-III)
                return "audio/mpeg"
        if head.startswith(b"fLaC"):
            return "audio/flac"
        if head.startswith(b"OggS"):
            return "audio/ogg"
        if head.startswith(b"#!AMR"):
            return "audio/amr"
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return "audio/aiff"
        if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
            return "audio/mp4"
        if head.startswith(b"\x1a\x45\xdf\xa3"):
            return "audio/webm"
        return None
    if kind == "video":
        if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS | _AUDIO_BRANDS:
            return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
        if head.startswith(b"\x1a\x45\xdf\xa3"):
            return "video/webm" if b"webm" in head else "video/x-matroska"
        if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            return "video/x-msvideo"
        if head.startswith(b"OggS"):
            return "video/ogg"
        if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
            return "video/mpeg"
        if head.startswith(b"FLV\x01"):
            return "video/x-flv"
        if len(head) >= 1 and head[0] == 0x47 and data[188:189] == b"\x47":  # MPEG transport stream
            return "video/mp2t"
        return None
    raise InvalidRequestError(f"media kind {kind!r}: expected one of {', '.join(map(repr, _KINDS))}")


def _check_max(where: str, max_bytes: Any) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise InvalidRequestError(f"{where}: max_bytes={max_bytes!r}: expected a positive number of bytes")
    return max_bytes


def read_media(path: str | os.PathLike[str], kind: str, *, max_bytes: int = MAX_MEDIA_BYTES,
               where: str = "data_url") -> tuple[str, bytes]:
    """(MIME type, bytes) of a local media file: a regular file of at most ``max_bytes`` whose
    first bytes show a type of ``kind``; ``InvalidRequestError`` otherwise (before reading
    more than ``max_bytes + 1`` bytes: pseudo-files such as ``/proc/...`` report no size)."""
    max_bytes = _check_max(where, max_bytes)
    name = os.fspath(path)
    shown = os.path.basename(name) or name
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise InvalidRequestError(f"{where}: cannot read {shown!r}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidRequestError(f"{where}: {shown!r} is not a regular file")
        if st.st_size > max_bytes:
            raise InvalidRequestError(f"{where}: {shown!r} is {st.st_size} bytes, more than the limit of "
                                      f"{max_bytes} bytes (max_bytes=)")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise InvalidRequestError(f"{where}: cannot read {shown!r}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise InvalidRequestError(f"{where}: {shown!r} is more than the limit of {max_bytes} bytes (max_bytes=)")
    data = b"".join(chunks)
    mime = sniff(data, kind)
    if mime is None:
        raise InvalidRequestError(f"{where}: {shown!r} is not {_A[kind]} file (no {kind} format recognised "
                                  f"in its first bytes{'; it is empty' if not data else ''})")
    return mime, data


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def data_url(path: str | os.PathLike[str] | bytes, kind: MediaKind = "image", *,
             max_bytes: int = MAX_MEDIA_BYTES) -> str:
    """A ``data:`` URL of a local media file (or of raw bytes), for a content part: the file
    must be a regular file of at most ``max_bytes`` whose content is of ``kind`` ("image",
    "audio", "video"); ``InvalidRequestError`` otherwise. The explicit way to send a file
    given as a string path, or one larger than ``MAX_MEDIA_BYTES``."""
    if kind not in _KINDS:
        raise InvalidRequestError(f"data_url(kind={kind!r}): expected one of {', '.join(map(repr, _KINDS))}")
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path)
        mime = sniff(data, kind)
        if mime is None:
            raise InvalidRequestError(f"data_url(...): the bytes are not {_A[kind]} (no {kind} format recognised)")
        return _data_url(mime, data)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InvalidRequestError(f"data_url({path!r:.80}): expected a file path or bytes")
    return _data_url(*read_media(path, kind, max_bytes=max_bytes, where="data_url(...)"))


def media_part(item: Any, kind: str, where: str) -> dict[str, Any]:
    """The OpenAI/vLLM content part for one image/audio/video item: a content-part dict (as
    is), an http(s) or data URL, a ``pathlib.Path`` (read, checked), or raw bytes (checked)."""
    if isinstance(item, dict):
        return item
    part_type = _PART_TYPES[kind]
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        mime = sniff(data, kind)
        if mime is None:
            raise InvalidRequestError(f"{where}: the bytes given are not {_A[kind]} (no {kind} format recognised)")
        return {"type": part_type, part_type: {"url": _data_url(mime, data)}}
    if isinstance(item, os.PathLike):
        return {"type": part_type, part_type: {"url": _data_url(*read_media(item, kind, where=where))}}
    if isinstance(item, str) and item:
        if item.startswith(_URL_SCHEMES):
            return {"type": part_type, part_type: {"url": item}}
        raise InvalidRequestError(
            f"{where}: {item[:80]!r} is not an http(s) or data URL; a string is never read from disk: to send a "
            f"local file pass pathlib.Path(...) (or vllm_client.data_url(path, {kind!r}))")
    raise InvalidRequestError(f"{where}: {item!r:.80} is not a URL, a pathlib.Path, bytes or a content-part dict")
