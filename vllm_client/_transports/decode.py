"""Content-Encoding for the sync transport, which reads the body itself (piece by piece as it
arrives, whatever the framing): the decoders it has, and the ``Accept-Encoding`` that
advertises exactly those (br and zstd only where their library is installed)."""

from __future__ import annotations

import zlib
from importlib.util import find_spec
from typing import Any

__all__ = ["accept_encoding", "decoder"]


def _has(*modules: str) -> str | None:
    for m in modules:
        try:
            if find_spec(m) is not None:
                return m
        except (ImportError, ValueError):
            continue
    return None


_BROTLI: str | None = None  # the module that decodes br / zstd here, once looked for (_libraries)
_ZSTD: str | None = None
_looked = False


def _libraries() -> None:
    """Look for the br and zstd libraries once (on first use: not at ``import vllm_client``)."""
    global _BROTLI, _ZSTD, _looked
    if not _looked:
        _BROTLI = _has("brotli", "brotlicffi")
        _ZSTD = _has("compression.zstd", "backports.zstd", "zstandard")
        if _BROTLI:
            _DECODERS["br"] = _Brotli
        if _ZSTD:
            _DECODERS["zstd"] = _Zstd
        _looked = True


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value: what ``decoder`` can decode here."""
    _libraries()
    return "gzip, deflate" + (", br" if _BROTLI else "") + (", zstd" if _ZSTD else "")


class _Deflate:
    """``deflate``: zlib-wrapped as the RFC says, or raw deflate as some servers send it."""

    __slots__ = ("_d", "_first")

    def __init__(self) -> None:
        self._d: Any = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._d.decompress(data)  # type: ignore[no-any-return]
            except zlib.error:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._d.decompress(data)  # type: ignore[no-any-return]

    def flush(self) -> bytes:
        return self._d.flush()  # type: ignore[no-any-return]


class _Brotli:
    __slots__ = ("_d",)

    def __init__(self) -> None:
        import importlib

        self._d = importlib.import_module(_BROTLI or "brotli").Decompressor()

    def decompress(self, data: bytes) -> bytes:
        d = self._d
        out = d.process(data) if hasattr(d, "process") else d.decompress(data)
        return out  # type: ignore[no-any-return]

    def flush(self) -> bytes:
        return b""


class _Zstd:
    __slots__ = ("_d", "_new")

    def __init__(self) -> None:
        import importlib

        mod = importlib.import_module(_ZSTD or "zstandard")
        if _ZSTD == "zstandard":
            self._new = mod.ZstdDecompressor().decompressobj
        else:
            self._new = mod.ZstdDecompressor
        self._d = self._new()

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:  # a body may hold several frames
            out.append(self._d.decompress(data))
            if not getattr(self._d, "eof", False):
                break
            data = self._d.unused_data
            self._d = self._new()
        return b"".join(out)

    def flush(self) -> bytes:
        return b""


def _gzip() -> Any:
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


_DECODERS: dict[str, Any] = {"gzip": _gzip, "x-gzip": _gzip, "deflate": _Deflate}


class _Chain:
    """Several codings (``Content-Encoding: gzip, br``), undone last first."""

    __slots__ = ("_ds",)

    def __init__(self, ds: list[Any]) -> None:
        self._ds = ds

    def decompress(self, data: bytes) -> bytes:
        for d in self._ds:
            data = d.decompress(data)
        return data

    def flush(self) -> bytes:
        out = b""
        for d in self._ds:
            out = d.decompress(out) + d.flush() if out else d.flush()
        return out


def decoder(content_encoding: str) -> Any:
    """A decoder (``decompress(bytes)``, ``flush()``) for a ``Content-Encoding`` value, None for
    ``identity``; raises ``LookupError`` (naming the coding) for one it cannot decode."""
    names = [n.strip().lower() for n in content_encoding.split(",")]
    names = [n for n in names if n and n != "identity"]
    if not names:
        return None
    _libraries()
    try:
        ds = [_DECODERS[n]() for n in reversed(names)]
    except KeyError as e:
        raise LookupError(str(e.args[0])[:40]) from None
    return ds[0] if len(ds) == 1 else _Chain(ds)
