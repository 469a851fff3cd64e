"""Every error the SDK raises, readable top to bottom.

::

    VllmError
    ├── InvalidRequestError (also ValueError)   bad input, caught before anything is sent
    ├── APIConnectionError                      no usable answer: refused, reset, DNS, TLS ...
    │   └── APITimeoutError                     connect / read / total timeout fired
    ├── APIStatusError                          the server answered 4xx / 5xx
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── ConflictError               409
    │   ├── UnprocessableEntityError    422
    │   ├── RateLimitError              429
    │   └── InternalServerError         5xx
    ├── ResponseDecodeError                     the body is not the JSON that was promised
    ├── StreamError                             a stream failed after it started (keeps .partial)
    │   └── StreamTimeoutError (also APITimeoutError)  the server went silent mid-stream
    ├── ToolLoopError                           the model still wanted tools after max_rounds
    └── OutputParseError (also ValueError)      structured output that is not the type asked for
    InvalidRequestError
    └── ToolSchemaError (also TypeError)        a function that cannot be a tool

Every error's ``url`` has its ``user:password@`` removed (``VllmError.url``).

``error_from_response`` turns a status, headers and body (in any of the error
shapes real servers send) into the right ``APIStatusError`` subclass;
``load_json_object`` reads a body that must be a JSON object (and may be an error
object under a 200).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from . import _json
from ._urls import redact_url

__all__ = [
    "VllmError",
    "InvalidRequestError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "NotSupportedError",
    "ResponseDecodeError",
    "StreamError",
    "StreamTimeoutError",
    "ToolLoopError",
    "IncompleteToolCallError",
    "ToolSchemaError",
    "OutputParseError",
    "error_from_response",
    "load_json_object",
]

# How much of a server's message goes into the one-line str(e).
_MAX_LINE = 500


def _one_line(text: str, limit: int = _MAX_LINE) -> str:
    """Collapse whitespace (vLLM's validation messages span lines) and trim."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


_FIELDS = ("status_code", "url", "method", "type", "code", "param", "request_id", "headers", "body", "content",
           "errors")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


class VllmError(Exception):
    """Base class of every error raised by vllm_client.

    ``url`` is the request's URL when the error has one, ``user:password@`` removed
    (assigning it redacts, so no subclass can keep credentials by mistake).
    """

    _url: str | None = None

    @property
    def url(self) -> str | None:
        """The URL of the request that failed (credentials removed), or None."""
        return self._url

    @url.setter
    def url(self, value: str | None) -> None:
        self._url = None if value is None else redact_url(value)

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: ``error`` (the class name), ``message``, and whichever of
        ``status_code``, ``url``, ``method``, ``type``, ``code``, ``param``, ``request_id``,
        ``headers``, ``body``, ``content``, ``errors`` it has; the response it carries
        (``partial`` of a ``StreamError``, ``response`` of an ``OutputParseError``) as that
        response's ``to_dict()``."""
        d: dict[str, Any] = {"error": type(self).__name__, "message": str(self)}
        for name in _FIELDS:
            value = getattr(self, name, None)
            if value is not None and value != [] and value != {}:
                d[name] = value
        for name in ("partial", "response"):
            value = getattr(self, name, None)
            if value is not None and callable(getattr(value, "to_dict", None)):
                d[name] = value.to_dict()
        return d

    def to_json(self) -> str:
        """``to_dict()`` as JSON text (a body that is not JSON goes as its text)."""
        import json

        return json.dumps(self.to_dict(), default=_jsonable)


class InvalidRequestError(VllmError, ValueError):
    """The request was rejected before sending: a setter got a bad value."""


class APIConnectionError(VllmError):
    """The server could not be reached, or the connection failed before a full answer.

    ``stale_connection`` is True when the request went out on a reused keep-alive connection
    that the server had closed, before any byte of an answer arrived: the server never
    answered it, so the client sends it again at once on a fresh connection, once, whatever
    ``max_retries`` says (a transport sets it; see ``_retry.resend_at_once``).
    """

    stale_connection: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class APITimeoutError(APIConnectionError):
    """A connect, read (gap between bytes) or total timeout fired."""


class TLSError(APIConnectionError):
    """The TLS handshake was refused for good: the server's certificate is not trusted (give
    its CA with ``verify=``), or the server refused the client certificate (``cert=``). Not
    retried: the same settings fail the same way."""


class APIStatusError(VllmError):
    """The server answered with an HTTP error status.

    ``message`` is the server's own message verbatim; ``body`` is the parsed JSON
    body when it was JSON, else its text; ``type``/``code``/``param`` come from
    the error object when the server sent one.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        type: str | None = None,
        code: Any = None,
        param: Any = None,
        url: str | None = None,
        method: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.type = type
        self.code = code
        self.param = param
        self.url = url
        self.method = method
        super().__init__(self._summary())

    def _summary(self) -> str:
        where = f" from {self.method} {self.url}" if self.url else ""
        msg = _one_line(self.message) if self.message else "(empty body)"
        hint = _HINTS.get(self.status_code) if self.status_code != 404 else self._hint_404()
        if hint is None and self.status_code >= 500:
            hint = "the server failed; retry later or check the server log"
        return f"HTTP {self.status_code}{where}: {msg}" + (f" ({hint})" if hint else "")

    def _hint_404(self) -> str | None:
        """A 404 blames the model only when the server said so; a framework 404 names the route."""
        msg = (self.message or "").lower()
        if self.param == "model" or ("model" in msg and ("not exist" in msg or "not found" in msg)):
            return "check the model name: `vllm-client models` or client.models() lists the served ones"
        if self.body == {"detail": "Not Found"} or not self.message or msg in ("not found", "404 not found"):
            from urllib.parse import urlsplit

            route = urlsplit(self.url).path if self.url else "this route"
            return (f"the server has no route {route}: check the base URL (vLLM serves its API under /v1) "
                    "and that the server supports it")
        return None

    @property
    def request_id(self) -> str | None:
        """The ``x-request-id`` response header, when the server sent one."""
        for k, v in self.headers.items():
            if k.lower() == "x-request-id":
                return v
        return None


class BadRequestError(APIStatusError):
    """HTTP 400: the server rejected the request's content."""


class AuthenticationError(APIStatusError):
    """HTTP 401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not do this."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown model or route."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the body did not validate."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests (retried per the client's policy first)."""


class InternalServerError(APIStatusError):
    """HTTP 5xx: the server failed (retried per the client's policy first)."""


class NotSupportedError(InternalServerError):
    """HTTP 501: the server does not implement this for its model (e.g. ``/v1/decisions`` on a
    model without a decisions strategy). Never retried."""


_HINTS = {
    401: "check the API key (api_key= or $VLLM_API_KEY)",
    403: "the API key is not allowed to do this",
    429: "rate limited; slow down or raise max_retries",
    501: "the server does not support this request for its model",
}

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    501: NotSupportedError,
}


def status_class(status: int) -> type[APIStatusError]:
    """The ``APIStatusError`` subclass for an HTTP status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    return cls


class ResponseDecodeError(VllmError):
    """The server's body was not the JSON the SDK expected; ``body`` keeps what arrived."""

    def __init__(
        self, message: str, *, body: Any = None, status_code: int | None = None, url: str | None = None
    ) -> None:
        super().__init__(message)
        self.body = body
        self.status_code = status_code
        self.url = url


class StreamError(VllmError):
    """A stream failed after it started.

    ``partial`` is the response accumulated from every event received before the
    failure (a ``ChatCompletionResponse`` or ``CompletionResponse``), so no token is
    lost. For an error the server sent inside the stream, ``message``/``type``/
    ``code`` are the server's and ``body`` is the error object.
    """

    def __init__(
        self,
        message: str,
        *,
        partial: Any = None,
        body: Any = None,
        type: str | None = None,
        code: Any = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial
        self.body = body
        self.type = type
        self.code = code
        self.status_code = status_code


class StreamTimeoutError(StreamError, APITimeoutError):
    """The server went silent mid-stream for longer than the read timeout.

    Both a ``StreamError`` (``.partial`` keeps what arrived) and an ``APITimeoutError``.
    """

    def __init__(self, message: str, *, partial: Any = None, url: str | None = None) -> None:
        StreamError.__init__(self, message, partial=partial)
        self.url = url


class ToolSchemaError(InvalidRequestError, TypeError):
    """A function cannot be turned into a tool (an unsupported or missing annotation, ``*args``...).

    A ``TypeError`` (and an ``InvalidRequestError``, the SDK's "rejected before sending" error).
    """


class ToolLoopError(VllmError):
    """The model still asked for tools after ``max_rounds``; ``messages`` holds the history."""

    def __init__(self, message: str, *, messages: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or []


class IncompleteToolCallError(ToolLoopError):
    """A tool call was cut by the token limit (its turn ended by length): it is never run.
    ``response`` is the response that carried it, ``messages`` the history so far; ask again
    with a larger ``max_tokens``."""

    def __init__(self, message: str, *, response: Any = None, messages: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, messages=messages)
        self.response = response


class OutputParseError(VllmError, ValueError):
    """Structured output (``response_format(T)``) that is not a ``T``: not JSON, failed
    validation, or cut at ``max_tokens``. ``content`` is the raw text, ``response`` the whole
    response (None when parsing outside a request), ``errors`` what did not validate (dicts
    with ``loc`` and ``msg``; pydantic's own error dicts for pydantic models)."""

    def __init__(self, message: str, *, content: str | None = None, response: Any = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.content = content
        self.response = response
        self.errors: list[dict[str, Any]] = errors or []
        self._cut = False  # finish_reason "length": not re-asked (the answer would be cut again)


# ---------------------------------------------------------------------------
# error bodies -> typed errors

_TAG = re.compile(rb"<[^>]*>")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


def _text_message(body: bytes) -> str:
    """A readable message from a non-JSON body (plain text or an HTML page)."""
    head = body[:200].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in body[:2000].lower():
        m = _TITLE.search(body)
        raw = m.group(1) if m else _TAG.sub(b" ", body)
        return _one_line(raw.decode("utf-8", "replace"), 300)
    return body.decode("utf-8", "replace").strip()


def parse_error_object(obj: Any) -> tuple[str | None, str | None, Any, Any]:
    """(message, type, code, param) from any error shape we meet, or Nones.

    Shapes: OpenAI / vLLM ``{"error": {"message", "type", "code", "param"}}``;
    ``{"error": "text"}`` (Ollama, llama.cpp); vLLM's older flat
    ``{"object": "error", "message", "type", "code"}``; FastGPT
    ``{"code", "statusText", "message"}``; FastAPI ``{"detail": ...}``;
    anything with a ``message`` string.
    """
    if not isinstance(obj, dict):
        return None, None, None, None
    err = obj.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        if msg is None and isinstance(err.get("msg"), str):
            msg = err["msg"]
        return (
            msg if isinstance(msg, str) else (None if msg is None else str(msg)),
            err.get("type") if isinstance(err.get("type"), str) else None,
            err.get("code"),
            err.get("param"),
        )
    if isinstance(err, str) and err:
        return err, obj.get("type") if isinstance(obj.get("type"), str) else None, obj.get("code"), None
    msg = obj.get("message")
    if isinstance(msg, str):
        typ = obj.get("type")
        if not isinstance(typ, str):
            typ = obj.get("statusText") if isinstance(obj.get("statusText"), str) else None
        return msg, typ, obj.get("code"), obj.get("param")
    detail = obj.get("detail")
    if isinstance(detail, str):
        return detail, None, None, None
    if isinstance(detail, list) and detail:
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x is not None)
                parts.append(f"{loc}: {d.get('msg', d)}" if loc else str(d.get("msg", d)))
            else:
                parts.append(str(d))
        return "; ".join(parts), None, None, None
    return None, None, None, None


def decode_body(body: bytes) -> Any:
    """The parsed JSON when the body is JSON, else its text."""
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            return _json.loads_body(body)
        except orjson.JSONDecodeError:
            pass
    return body.decode("utf-8", "replace")


def error_from_response(
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes,
    *,
    url: str | None = None,
    method: str | None = None,
) -> APIStatusError:
    """The typed error for an HTTP error answer, whatever shape its body has."""
    parsed = decode_body(body)
    if isinstance(parsed, str):
        return status_error(status, parsed, headers, message=_text_message(body) if body else "",
                            url=url, method=method)
    return status_error(status, parsed, headers, url=url, method=method,
                        fallback=_one_line(body.decode("utf-8", "replace"), 300))


def status_error(status: int, body: Any, headers: Mapping[str, str] | None = None, *, message: str | None = None,
                 fallback: str = "", url: str | None = None, method: str | None = None) -> APIStatusError:
    """The typed error for a status and a (parsed) error body; the message comes from the body
    unless given, else ``fallback``."""
    typ = code = param = None
    if message is None:
        message, typ, code, param = parse_error_object(body)
    return status_class(status)(message if message is not None else fallback, status_code=status, body=body,
                                headers=headers, type=typ, code=code, param=param, url=url, method=method)


def raise_for_error_object(obj: dict[str, Any], *, url: str | None = None, status: int = 200) -> None:
    """A 200 body that is really an error (``{"error": ...}`` or ``{"object": "error"}``) raises."""
    if "error" in obj or obj.get("object") == "error":
        message, typ, code, param = parse_error_object(obj)
        if message is None and "error" in obj and not obj["error"]:
            return  # "error": null / "" is not an error
        status_code = code if isinstance(code, int) and 400 <= code <= 599 else status
        raise status_error(status_code, obj, url=url, fallback="the server answered with an error object")


def load_json_object(body: bytes, *, what: str, url: str | None = None, status: int = 200) -> dict[str, Any]:
    """Parse a response body that must be a JSON object; typed errors otherwise (``url`` is
    redacted before it goes into one)."""
    try:
        obj = orjson.loads(body)  # (_json.loads_body, inlined: the per-request path)
    except orjson.JSONDecodeError as e:
        try:  # NaN / Infinity, a number beyond a double: the standard library reads them
            obj = _json.exact_loads(body, e)
        except orjson.JSONDecodeError:
            preview = body[:200].decode("utf-8", "replace")
            raise ResponseDecodeError(
                f"{what}: the server's body is not valid JSON ({e}); it starts {preview!r}",
                body=body.decode("utf-8", "replace"),
                status_code=status,
                url=url,
            ) from None
    if obj.__class__ is not dict:
        raise ResponseDecodeError(
            f"{what}: expected a JSON object, got {type(obj).__name__}", body=obj, status_code=status, url=url
        )
    raise_for_error_object(obj, url=url, status=status)
    return obj


def route_missing(error: APIStatusError, hint: str) -> APIStatusError:
    """Say what a 404 of a missing route means (the framework's ``{"detail": "Not Found"}``, not
    an error object such as an unknown model's): ``hint`` replaces the generic 404 advice."""
    if error.status_code == 404 and error.body == {"detail": "Not Found"}:
        where = f" from {error.method} {error.url}" if error.url else ""
        error.args = (f"HTTP 404{where}: the server does not serve this route ({hint})",)
    return error
