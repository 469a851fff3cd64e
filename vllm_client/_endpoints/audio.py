"""Audio transcription and translation (``POST /audio/transcriptions``, ``/audio/translations``,
Whisper-class models): multipart/form-data bodies built here (pure code: the request carries
bytes and headers like every other), the response type, the builders and ``client.audio``."""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from .. import _validate as v
from .._exceptions import InvalidRequestError, load_json_object
from .._media import MAX_MEDIA_BYTES, read_media
from .._observe import _Meta, attach
from .._stream import AsyncChatStream, ChatStream, StreamAccumulator
from .._types import Usage, _dict, _list, _str
from .._urls import redact_url
from .base import Creator, _Builder, endpoint

if TYPE_CHECKING:
    from .._core import ClientCore, Flow
    from .._transports.base import Response

__all__ = ["TranscriptionResponse", "TranscriptionBody", "TranscriptionBuilder", "AsyncTranscriptionBuilder",
           "TranslationBuilder", "AsyncTranslationBuilder", "Audio", "AsyncAudio", "encode_multipart"]

AB = TypeVar("AB", bound="TranscriptionBody")


@dataclass(slots=True)
class TranscriptionResponse(_Meta):
    """A transcription (or translation): ``text``; with ``response_format("verbose_json")`` also
    ``language``, ``duration`` and ``segments``; ``raw`` as received (``{"text": ...}`` for the
    plain-text formats text / srt / vtt)."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    finish_reason: str | None = None  # a streamed one's ("stop", "length")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TranscriptionResponse:
        """Parse a transcription JSON object."""
        duration = d.get("duration")
        return cls(
            text=_str(d.get("text")) or "",
            language=_str(d.get("language")),
            duration=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
            segments=[s for s in _list(d.get("segments")) if isinstance(s, dict)],
            words=[w for w in _list(d.get("words")) if isinstance(w, dict)],
            usage=_token_usage(d.get("usage")),
            raw=d,
        )

    @classmethod
    def from_stream(cls, d: dict[str, Any]) -> TranscriptionResponse:
        """From a streamed transcription accumulated as chat chunks (vLLM streams it so)."""
        choices = _list(d.get("choices"))
        first = _dict(choices[0]) if choices else {}
        message = _dict(first.get("message"))
        return cls(text=_str(message.get("content")) or "", usage=_token_usage(d.get("usage")), raw=d,
                   finish_reason=_str(first.get("finish_reason")))


def _token_usage(d: Any) -> Usage | None:
    """Token usage; None for vLLM's audio ``{"type": "duration", "seconds": n}`` (kept in ``raw``)."""
    return Usage.from_dict(d) if isinstance(d, dict) and ("prompt_tokens" in d or "total_tokens" in d) else None


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def encode_multipart(fields: Mapping[str, Any], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type: one part per field (a list value: one
    part per item, under ``name[]`` as OpenAI's servers read arrays), one per (name, filename,
    content type, bytes) file."""
    boundary = "vllm-client-" + secrets.token_hex(16)
    sep = f"--{boundary}\r\n".encode()
    out: list[bytes] = []
    for name, value in fields.items():
        items = [(f"{name}[]", x) for x in value] if isinstance(value, list) else [(name, value)]
        for key, x in items:
            out += [sep, f'Content-Disposition: form-data; name="{_quote(key)}"\r\n\r\n'.encode(),
                    _form_value(x).encode(), b"\r\n"]
    for name, filename, ctype, data in files:
        out += [sep, f'Content-Disposition: form-data; name="{_quote(name)}"; filename="{_quote(filename)}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n".encode(), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class TranscriptionBody(_Builder):
    """Setters of a transcription request (a form: the audio file and its fields)."""

    _path = "/audio/transcriptions"
    _what = "transcription"
    _parse = TranscriptionResponse.from_dict

    def __init__(self, client: ClientCore) -> None:
        super().__init__(client)
        self._file: tuple[str, str, str, bytes] | None = None

    def file(self: AB, audio: str | os.PathLike[str] | bytes, *, filename: str | None = None,
             content_type: str | None = None, max_bytes: int = MAX_MEDIA_BYTES) -> AB:
        """The audio: a file path or the file's bytes (wav, mp3, flac, ogg, m4a, webm...). A file
        must be a regular file of at most ``max_bytes`` whose content is audio (checked)."""
        if isinstance(audio, (bytes, bytearray, memoryview)):
            data = bytes(audio)
            name = filename or "audio.wav"
        elif isinstance(audio, (str, os.PathLike)) and os.fspath(audio):
            path = os.fspath(audio)
            sniffed, data = read_media(path, "audio", max_bytes=max_bytes, where="file(...)")
            name = filename or os.path.basename(path)
            content_type = content_type or sniffed
        else:
            raise InvalidRequestError(f"file({audio!r:.60}): expected a file path or bytes")
        if not data:
            raise InvalidRequestError("file(...): the audio is empty")
        ctype = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._file = ("file", name, ctype, data)
        return self

    def model(self: AB, model: str) -> AB:
        """The speech-to-text model's name."""
        return self._set("model", v.string("model", model))

    def language(self: AB, language: str) -> AB:
        """The spoken language (ISO-639-1, e.g. "en"): better accuracy and speed."""
        return self._set("language", v.string("language", language))

    def prompt(self: AB, text: str) -> AB:
        """Text to guide the style, or to continue a previous segment."""
        return self._set("prompt", v.string("prompt", text, empty_ok=True))

    def response_format(self: AB, fmt: str) -> AB:
        """"json" (default), "verbose_json" (segments), "text", "srt" or "vtt"."""
        if fmt not in ("json", "verbose_json", "text", "srt", "vtt"):
            raise InvalidRequestError(f"response_format({fmt!r}): expected 'json', 'verbose_json', 'text', 'srt' "
                                      "or 'vtt'")
        return self._set("response_format", fmt)

    def temperature(self: AB, value: float) -> AB:
        """Sampling temperature, 0-1."""
        return self._set("temperature", v.number("temperature", value, lo=0, hi=1))

    def timestamp_granularities(self: AB, values: list[str]) -> AB:
        """["segment"] and / or ["word"] (with verbose_json)."""
        value = v.str_or_str_list("timestamp_granularities", values)
        return self._set("timestamp_granularities", [value] if isinstance(value, str) else value)

    def _check(self, body: dict[str, Any]) -> None:
        if self._file is None:
            raise InvalidRequestError("no audio: call .file(path_or_bytes) first")
        v.check_finite(body)

    def _parse_answer(self, response: Response, url: str) -> TranscriptionResponse:
        if self._body.get("response_format") in ("text", "srt", "vtt"):
            text = response.body.decode("utf-8", "replace")
            result = TranscriptionResponse(text=text, raw={"text": text})
        else:
            result = TranscriptionResponse.from_dict(load_json_object(response.body, what=self._what, url=url,
                                                                      status=response.status))
        attach(result, response)
        return result

    def _accumulator(self, url: str) -> StreamAccumulator[TranscriptionResponse]:
        return StreamAccumulator(chat=True, url=url, parse=TranscriptionResponse.from_stream)


def audio_flow(client: ClientCore, builder: TranscriptionBody, stream: bool) -> Flow[tuple[Response, str]]:
    """Send the form (the model filled in when the builder set none); return the answer."""
    body, headers, timeout = builder._request_parts(stream)
    yield from client.model_flow(body)
    assert builder._file is not None
    data, ctype = encode_multipart(body, [builder._file])
    req = client.prepare("POST", builder._path, None, stream=stream, headers={**(headers or {}), "Content-Type": ctype},
                         timeout=timeout)
    req.body = data
    response = yield from client.send_flow(req)
    return response, redact_url(req.url)


def _send_flow(client: ClientCore, builder: TranscriptionBody) -> Flow[TranscriptionResponse]:
    response, url = yield from audio_flow(client, builder, False)
    return builder._parse_answer(response, url)


class TranscriptionBuilder(TranscriptionBody):
    """Builds one transcription request; ``send()`` or ``send_stream()``."""

    def send(self) -> TranscriptionResponse:
        """Send the audio; return the transcription."""
        c: Any = self._client
        return c._run(_send_flow(c, self))  # type: ignore[no-any-return]

    def send_stream(self) -> ChatStream[TranscriptionResponse]:
        """Stream the transcription: ``ContentDelta`` events, then ``Done``."""
        c: Any = self._client
        response, url = c._run(audio_flow(c, self, True))
        return ChatStream(response, self._accumulator(url))


class AsyncTranscriptionBuilder(TranscriptionBody):
    """Builds one transcription request; ``await send()`` or ``await send_stream()``."""

    async def send(self) -> TranscriptionResponse:
        """Send the audio; return the transcription."""
        c: Any = self._client
        return await c._run(_send_flow(c, self))  # type: ignore[no-any-return]

    async def send_stream(self) -> AsyncChatStream[TranscriptionResponse]:
        """Stream the transcription (``async for``)."""
        c: Any = self._client
        response, url = await c._run(audio_flow(c, self, True))
        return AsyncChatStream(response, self._accumulator(url))


class TranslationBuilder(TranscriptionBuilder):
    """Builds one translation (speech to English text) request."""

    _path = "/audio/translations"
    _what = "translation"


class AsyncTranslationBuilder(AsyncTranscriptionBuilder):
    """Builds one translation request (async)."""

    _path = "/audio/translations"
    _what = "translation"


TB = TypeVar("TB")
LB = TypeVar("LB")


class _AudioNamespace(Generic[TB, LB]):
    """``client.audio``: ``transcriptions()`` and ``translations()``."""

    def __init__(self, client: Any, transcription: Any, translation: Any) -> None:
        self._transcriptions: Creator[TB] = Creator(client, transcription)
        self._translations: Creator[LB] = Creator(client, translation)

    @endpoint
    def transcriptions(self) -> Creator[TB]:
        """Speech to text: ``.create().file(path_or_bytes).send()``."""
        return self._transcriptions

    @endpoint
    def translations(self) -> Creator[LB]:
        """Speech to English text: ``.create().file(path_or_bytes).send()``."""
        return self._translations


class Audio(_AudioNamespace[TranscriptionBuilder, TranslationBuilder]):
    """``VllmClient.audio``."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, TranscriptionBuilder, TranslationBuilder)


class AsyncAudio(_AudioNamespace[AsyncTranscriptionBuilder, AsyncTranslationBuilder]):
    """``AsyncVllmClient.audio``."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, AsyncTranscriptionBuilder, AsyncTranslationBuilder)
