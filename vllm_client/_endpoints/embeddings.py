"""Embeddings (``POST /embeddings``): body, response, builders; the decoding of base64
vectors (float32, float16, bfloat16, fp8), shared with ``pooling``."""

from __future__ import annotations

import base64
import functools
import struct
import sys
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from .. import _validate as v
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._types import Usage, _int, _str
from .base import AsyncSender, B, Sender, _Builder
from .common import _choice, _PoolingInput

__all__ = ["EmbeddingResponse", "EmbeddingBody", "EmbeddingBuilder", "AsyncEmbeddingBuilder", "Vector",
           "decode_vector"]

Vector = Union[list[float], "array[float]"]
"""One embedding: a list of floats (JSON answers) or an ``array('f')`` (base64 answers)."""

_DTYPES = ("float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2")
_LITTLE_HOST = sys.byteorder == "little"


@functools.lru_cache(maxsize=2)
def _fp8_table(dtype: str) -> tuple[float, ...]:
    """The 256 values of an fp8 byte (e4m3: the "fn" variant, no infinities; e5m2: IEEE-like)."""
    if dtype == "fp8_e5m2":  # the top byte of a float16
        return struct.unpack("<256e", b"".join(bytes((0, b)) for b in range(256)))
    out = []
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        exp, mant = (b >> 3) & 0xF, b & 0x7
        if exp == 0xF and mant == 0x7:
            out.append(float("nan"))
        elif exp == 0:
            out.append(sign * mant / 8 * 2.0 ** -6)
        else:
            out.append(sign * (1 + mant / 8) * 2.0 ** (exp - 7))
    return tuple(out)


def decode_vector(text: str, dtype: str = "float32", big_endian: bool = False) -> array[float]:
    """A base64 vector as sent by vLLM (``embed_dtype``, ``endianness``) -> ``array('f')``."""
    try:
        raw = base64.b64decode(text)
    except ValueError as e:
        raise ResponseDecodeError(f"embedding: not base64 ({e})", body=text[:200]) from None
    swap = big_endian == _LITTLE_HOST
    if dtype == "float32":
        if len(raw) % 4:
            raise ResponseDecodeError(f"embedding: {len(raw)} bytes is not a whole number of float32", body=text[:200])
        a = array("f")
        a.frombytes(raw)
        if swap:
            a.byteswap()
        return a
    if dtype in ("float16", "bfloat16") and len(raw) % 2:
        raise ResponseDecodeError(f"embedding: {len(raw)} bytes is not a whole number of {dtype}", body=text[:200])
    if dtype == "float16":
        return array("f", struct.unpack(f"{'>' if big_endian else '<'}{len(raw) // 2}e", raw))
    if dtype == "bfloat16":  # the top half of a float32: put two zero bytes under each value
        wide = bytearray(2 * len(raw))
        hi, lo = (raw[0::2], raw[1::2]) if big_endian else (raw[1::2], raw[0::2])
        wide[2::4], wide[3::4] = lo, hi  # little-endian float32
        a = array("f")
        a.frombytes(bytes(wide))
        if not _LITTLE_HOST:
            a.byteswap()
        return a
    if dtype in ("fp8_e4m3", "fp8_e5m2"):
        table = _fp8_table(dtype)
        return array("f", [table[b] for b in raw])
    raise InvalidRequestError(f"embed_dtype {dtype!r}: expected one of {', '.join(_DTYPES)}")


def _vector(value: Any, dtype: str, big_endian: bool) -> Vector:
    if value.__class__ is list:
        return value
    if value.__class__ is str:
        return decode_vector(value, dtype, big_endian)
    raise ResponseDecodeError(f"embedding: expected a list of floats or base64 text, got {type(value).__name__}",
                              body=value)


def _is_matrix(value: Any) -> bool:
    """A token-embedding answer's ``embedding``: a list whose items are vectors (lists or base64)."""
    return value.__class__ is list and bool(value) and (value[0].__class__ is list or value[0].__class__ is str)


@dataclass(slots=True)
class EmbeddingResponse(_Meta):
    """Embeddings in input order. JSON answers give lists of floats; base64 answers are
    decoded (``embed_dtype``, ``endianness`` as requested) into ``array('f')`` vectors:
    sequences of float32 that index, iterate and ``len()`` like lists, use 4 bytes a value
    (``list(v)`` / ``v.tolist()`` makes a list). ``numpy()`` stacks them (needs numpy).

    A token-embedding server (vLLM 0.33+, pooler task ``token_embed``) answers a matrix per
    input, one vector per token (or per chunk with ``late_chunking_params``): ``multi_vector``
    is True, ``multi_vectors[i]`` is input i's matrix (``tokens_i`` vectors of ``dim``),
    ``late_chunking[i]`` what the server said of its chunks, and ``embeddings`` is empty."""

    raw: dict[str, Any] = field(repr=False)
    embeddings: list[Vector]
    model: str | None
    usage: Usage | None
    id: str | None = None
    multi_vectors: list[list[Vector]] | None = None
    late_chunking: list[Any] | None = None

    @property
    def multi_vector(self) -> bool:
        """True when the server answered a matrix per input (token embeddings)."""
        return self.multi_vectors is not None

    @classmethod
    def from_dict(cls, d: dict[str, Any], dtype: str = "float32", big_endian: bool = False) -> EmbeddingResponse:
        """Parse an embeddings ``list`` object (a vector, or a matrix, per input)."""
        data = d.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("embeddings: 'data' should be a list", body=d)
        items = [x for x in data if x.__class__ is dict]
        if any(x.get("index") != i for i, x in enumerate(items)):  # vLLM sends them in order
            items.sort(key=lambda x: _int(x.get("index")) or 0)
        model, usage, rid = _str(d.get("model")), Usage.from_dict(d.get("usage")), _str(d.get("id"))
        if items and _is_matrix(items[0].get("embedding")):
            matrices = []
            for i, x in enumerate(items):
                rows = x.get("embedding")
                if rows.__class__ is not list:
                    raise ResponseDecodeError(f"embeddings: data[{i}] of a token-embedding answer is not a matrix",
                                              body=d)
                matrices.append([_vector(r, dtype, big_endian) for r in rows])
            chunking = [x.get("late_chunking") for x in items]
            return cls(raw=d, embeddings=[], model=model, usage=usage, id=rid, multi_vectors=matrices,
                       late_chunking=chunking if any(c is not None for c in chunking) else None)
        return cls(raw=d, embeddings=[_vector(x.get("embedding"), dtype, big_endian) for x in items],
                   model=model, usage=usage, id=rid)

    def numpy(self) -> Any:
        """The embeddings as one ``(n, dim)`` float32 ``numpy.ndarray`` (numpy must be installed).

        A multi-vector answer gives a list of ``(tokens_i, dim)`` arrays, one per input (inputs
        differ in length: never one ragged array)."""
        try:
            import numpy as np  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ImportError("EmbeddingResponse.numpy() needs numpy: pip install numpy") from None
        if self.multi_vectors is not None:
            return [np.array(m, dtype=np.float32) if m else np.zeros((0, 0), np.float32) for m in self.multi_vectors]
        return np.array(self.embeddings, dtype=np.float32)


class _VectorParser:
    """A body's ``_parse``: on the class, the response type's ``from_dict`` (``batch()``'s dict
    requests); on a builder, that told the dtype and byte order the builder asks for."""

    def __init__(self, parse: Callable[..., Any]) -> None:
        self.parse = parse

    def __get__(self, obj: Any, owner: Any = None) -> Callable[[dict[str, Any]], Any]:
        if obj is None:
            return self.parse
        get = {**obj._body, **obj._extra}.get
        dtype = get("embed_dtype") or "float32"
        big = get("endianness") == "big" or (get("endianness") == "native" and not _LITTLE_HOST)
        if dtype == "float32" and not big:
            return self.parse
        return functools.partial(self.parse, dtype=dtype, big_endian=big)


class _EncodedOutput(_Builder):
    """How vectors come back (embeddings and pooling): dimensions, encoding, dtype, byte order."""

    def dimensions(self: B, value: int) -> B:
        """Truncate embeddings to this many dimensions (Matryoshka models)."""
        return self._set("dimensions", v.integer("dimensions", value, lo=1))

    def encoding_format(self: B, fmt: str) -> B:
        """"float" (JSON numbers) or "base64" (smaller and faster; decoded for you). vLLM's
        "bytes" formats answer with a binary body and are not supported here."""
        if fmt not in ("float", "base64"):
            raise InvalidRequestError(f"encoding_format({fmt!r}): expected 'float' or 'base64'")
        return self._set("encoding_format", fmt)

    def embed_dtype(self: B, dtype: str) -> B:
        """The dtype of base64 vectors: "float32" (default), "float16", "bfloat16", "fp8_e4m3",
        "fp8_e5m2" (vLLM); decoded to float32 either way."""
        return self._set("embed_dtype", _choice("embed_dtype", dtype, _DTYPES))

    def endianness(self: B, order: str) -> B:
        """Byte order of base64 vectors: "native" (the server's; default), "little" or "big" (vLLM)."""
        return self._set("endianness", _choice("endianness", order, ("native", "little", "big")))


class EmbeddingBody(_EncodedOutput, _PoolingInput):
    """Setters of an embeddings request: ``input`` (texts or token ids) or ``messages``
    (chat-style, for multimodal embedding models)."""

    _path = "/embeddings"
    _what = "embeddings"
    _parse = _VectorParser(EmbeddingResponse.from_dict)

    def late_chunking_params(self: B, params: Mapping[str, Any]) -> B:
        """Late chunking on a token-embedding server (vLLM 0.33+): the whole document is
        embedded, then pooled per chunk, e.g. ``{"chunk_size": 128}`` (tokens, > 0)."""
        p = v.mapping("late_chunking_params", params)
        if "chunk_size" not in p:
            raise InvalidRequestError("late_chunking_params: give {'chunk_size': tokens}")
        v.integer("late_chunking_params chunk_size", p["chunk_size"], lo=1)
        return self._set("late_chunking_params", dict(p))


class EmbeddingBuilder(EmbeddingBody, Sender[EmbeddingResponse]):
    """Builds one embeddings request."""


class AsyncEmbeddingBuilder(EmbeddingBody, AsyncSender[EmbeddingResponse]):
    """Builds one embeddings request (async)."""
