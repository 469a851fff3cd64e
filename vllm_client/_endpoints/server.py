"""Server operations: models, health, version, tokenize / detokenize.

The flows here (pure, as every flow: see ``_core``) are run by both clients'
``models()``, ``health()``, ``version()``, ``tokenize()`` and ``detokenize()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config import Timeout
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    InvalidRequestError,
    ResponseDecodeError,
    route_missing,
)
from .._observe import _Meta, _MetaView, attach
from .._types import _dict, _int, _str
from .._validate import string

if TYPE_CHECKING:
    from .._core import ClientCore, Flow
    from .._transports.base import Response

__all__ = ["Model", "ModelList", "TokenizeResult", "Metrics", "models_flow", "health_flow", "version_flow",
           "tokenize_flow", "detokenize_flow", "load_flow", "metrics_flow", "parse_metrics", "load_lora_flow", "unload_lora_flow"]


@dataclass(slots=True)
class Model:
    """A model the server serves (``GET /v1/models``)."""

    id: str
    owned_by: str | None = None
    created: int | None = None
    max_model_len: int | None = None
    root: str | None = None
    parent: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Any) -> Model:
        """Parse one entry of the models list."""
        d = _dict(d)
        return cls(
            id=_str(d.get("id")) or "",
            owned_by=_str(d.get("owned_by")),
            created=_int(d.get("created")),
            max_model_len=_int(d.get("max_model_len")),
            root=_str(d.get("root")),
            parent=_str(d.get("parent")),
            raw=d,
        )


class ModelList(list[Model], _MetaView):
    """What ``models()`` returns: a list of ``Model`` that also carries the answer's
    ``timing``, ``headers``, ``status_code`` and ``request_id``."""

    __slots__ = ("_timing", "_headers", "_status")

    def _plain(self) -> Any:
        return {"object": "list", "data": [m.raw for m in self]}


@dataclass(slots=True)
class TokenizeResult(_Meta):
    """The answer of vLLM's ``/tokenize``."""

    tokens: list[int]
    count: int
    max_model_len: int | None = None
    token_strs: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizeResult:
        """Parse a ``/tokenize`` body."""
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise ResponseDecodeError("tokenize: 'tokens' should be a list", body=d)
        count = _int(d.get("count"))
        strs = d.get("token_strs")
        return cls(
            tokens=tokens,
            count=len(tokens) if count is None else count,
            max_model_len=_int(d.get("max_model_len")),
            token_strs=strs if isinstance(strs, list) else None,
            raw=d,
        )



def models_flow(client: ClientCore) -> Flow[ModelList]:
    """``GET /models`` as a list of ``Model`` (a ``ModelList``)."""
    def parse(obj: dict[str, Any]) -> ModelList:
        data = obj.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("models: expected a 'data' list", body=obj)
        return ModelList(Model.from_dict(m) for m in data)

    return (yield from client.json_flow(client.prepare("GET", "/models"), parse, "models"))


def health_flow(client: ClientCore, timeout: float) -> Flow[bool]:
    """``GET /health`` at the server root: True on 200, False otherwise (never raises)."""
    req = client.prepare("GET", "/health", root=True, timeout=Timeout(connect=timeout, read=timeout))
    try:
        response: Response = yield req
    except APIConnectionError:
        return False
    return response.status == 200


def version_flow(client: ClientCore) -> Flow[str]:
    """``GET /version`` at the server root."""
    def parse(obj: dict[str, Any]) -> str:
        return str(obj.get("version", ""))

    return (yield from client.json_flow(client.prepare("GET", "/version", root=True), parse, "version"))


def tokenize_flow(client: ClientCore, text_or_messages: Any, model: str | None, add_special_tokens: bool | None,
                  extra: Mapping[str, Any] | None) -> Flow[TokenizeResult]:
    """``POST /tokenize`` at the server root, with a prompt or chat messages."""
    from .._validate import messages as check_messages

    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = model
    if isinstance(text_or_messages, str):
        body["prompt"] = text_or_messages
    elif isinstance(text_or_messages, list):
        body["messages"] = check_messages("tokenize", text_or_messages)
    else:
        raise InvalidRequestError(f"tokenize({text_or_messages!r:.60}): expected text or a list of messages")
    if add_special_tokens is not None:
        body["add_special_tokens"] = bool(add_special_tokens)
    if extra:
        body.update(extra)
    req = client.prepare("POST", "/tokenize", body, root=True)
    return (yield from client.json_flow(req, TokenizeResult.from_dict, "tokenize"))


def detokenize_flow(client: ClientCore, tokens: Any, model: str | None) -> Flow[str]:
    """``POST /detokenize`` at the server root."""
    from .._validate import int_list

    body: dict[str, Any] = {"tokens": int_list("detokenize", tokens)}
    if model is not None:
        body["model"] = model

    def parse(obj: dict[str, Any]) -> str:
        prompt = obj.get("prompt")
        return prompt if isinstance(prompt, str) else ""

    return (yield from client.json_flow(client.prepare("POST", "/detokenize", body, root=True), parse, "detokenize"))


# -- load, metrics, LoRA adapters -------------------------------------------------------------


def load_flow(client: ClientCore) -> Flow[int]:
    """``GET /load`` at the server root: the requests in flight (vLLM's ``server_load``)."""
    def parse(obj: dict[str, Any]) -> int:
        load = _int(obj.get("server_load"))
        if load is None:
            raise ResponseDecodeError("load: expected an integer 'server_load'", body=obj)
        return load

    req = client.prepare("GET", "/load", root=True)
    try:
        return (yield from client.json_flow(req, parse, "load"))
    except APIStatusError as e:
        raise route_missing(e, "vLLM serves /load from 0.8.5 on") from None


# The sample line parser: each pattern is matched where the previous one ended and never
# rescans what it passed, so a line is read in linear time (a 1 MB label included).
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BLANKS = re.compile(r"[ \t]*")
_LABEL_CHARS = re.compile(r'[^"\\]*')
_TIMESTAMP = re.compile(r"-?[0-9]+")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def _sample(line: str) -> tuple[str, str, dict[str, str], float] | None:
    """(name, label text as written, labels, value) of a sample line; None when it is not one."""
    m = _METRIC_NAME.match(line)
    if m is None:
        return None
    name, i, n = m.group(), m.end(), len(line)
    labels: dict[str, str] = {}
    label_text = ""
    if i < n and line[i] == "{":
        start = i = i + 1
        while True:
            i = _BLANKS.match(line, i).end()  # type: ignore[union-attr]
            if i < n and line[i] == "}":
                break
            m = _LABEL_NAME.match(line, i)
            if m is None:
                return None
            i = _BLANKS.match(line, m.end()).end()  # type: ignore[union-attr]
            if line[i:i + 1] != "=":
                return None
            i = _BLANKS.match(line, i + 1).end()  # type: ignore[union-attr]
            if line[i:i + 1] != '"':
                return None
            i += 1
            parts: list[str] = []
            while True:
                j = _LABEL_CHARS.match(line, i).end()  # type: ignore[union-attr]
                parts.append(line[i:j])
                if j + 1 >= n:  # no closing quote (or a backslash at the end)
                    return None
                if line[j] == '"':
                    i = j + 1
                    break
                e = line[j + 1]  # a backslash escape: \\, \", \n; any other is kept as written
                parts.append(_UNESCAPE.get(e) or "\\" + e)
                i = j + 2
            labels[m.group()] = "".join(parts)
            i = _BLANKS.match(line, i).end()  # type: ignore[union-attr]
            if line[i:i + 1] == ",":
                i += 1
            elif line[i:i + 1] != "}":
                return None
        label_text = line[start:i]
        i += 1
    if i >= n or line[i] not in " \t":
        return None
    fields = line[i:].split()
    if not 1 <= len(fields) <= 2 or (len(fields) == 2 and _TIMESTAMP.fullmatch(fields[1]) is None):
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    return name, label_text, labels, value


class Metrics(Mapping[str, float], _Meta):
    """The server's Prometheus metrics (``GET /metrics``): a mapping of each sample as written
    (``'vllm:num_requests_running{engine="0",model_name="m"}'``, or a bare name when it has no
    labels) to its value, plus ``samples`` (name, labels, value) and the vLLM gauges people read
    most as properties (summed over engines and models; None when the server reports none);
    ``timing``, ``headers``, ``status_code`` and ``request_id`` as on every response."""

    def __init__(self, samples: list[tuple[str, dict[str, str], float]], keys: list[str], text: str) -> None:
        self.samples = samples
        self.text = text
        self._values = dict(zip(keys, (s[2] for s in samples), strict=True))

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def _plain(self) -> Any:
        return dict(self._values)  # (to_dict(): each sample as written -> its value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (f"Metrics({len(self)} samples, num_requests_running={self.num_requests_running}, "
                f"num_requests_waiting={self.num_requests_waiting}, kv_cache_usage_perc={self.kv_cache_usage_perc})")

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every sample named ``name`` whose labels include ``labels``."""
        return [(lb, val) for n, lb, val in self.samples
                if n == name and all(lb.get(k) == x for k, x in labels.items())]

    def total(self, name: str, **labels: str) -> float | None:
        """The sum of the samples named ``name`` (with those labels); None when there is none."""
        found = self.find(name, **labels)
        return sum(val for _, val in found) if found else None

    @property
    def num_requests_running(self) -> float | None:
        """Requests being generated now (``vllm:num_requests_running``)."""
        return self.total("vllm:num_requests_running")

    @property
    def num_requests_waiting(self) -> float | None:
        """Requests queued (``vllm:num_requests_waiting``)."""
        return self.total("vllm:num_requests_waiting")

    @property
    def kv_cache_usage_perc(self) -> float | None:
        """KV-cache use, 0-1 (``vllm:kv_cache_usage_perc``; the fullest engine's when several)."""
        found = self.find("vllm:kv_cache_usage_perc") or self.find("vllm:gpu_cache_usage_perc")
        return max(val for _, val in found) if found else None


def parse_metrics(text: str) -> Metrics:
    """Parse the Prometheus text exposition format (comments and blank lines skipped; a line
    that is not a sample raises ``ResponseDecodeError``)."""
    samples: list[tuple[str, dict[str, str], float]] = []
    keys: list[str] = []
    for n, line in enumerate(text.split("\n"), 1):  # (only \n ends a line: a label may hold a \r)
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sample = _sample(line)
        if sample is None:
            raise ResponseDecodeError(f"metrics: line {n} is not a Prometheus sample: {line[:120]!r}", body=text)
        name, label_text, labels, value = sample
        samples.append((name, labels, value))
        keys.append(f"{name}{{{label_text}}}" if label_text else name)
    return Metrics(samples, keys, text)


def metrics_flow(client: ClientCore) -> Flow[Metrics]:
    """``GET /metrics`` at the server root, parsed."""
    req = client.prepare("GET", "/metrics", root=True, headers={"Accept": "text/plain"})
    response = yield from client.send_flow(req)
    result = parse_metrics(response.body.decode("utf-8", "replace"))
    attach(result, response)
    return result


_LORA_HINT = "start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora to load adapters at runtime"


def _lora_flow(client: ClientCore, path: str, body: dict[str, Any]) -> Flow[str]:
    req = client.prepare("POST", path, body)
    try:
        response = yield from client.send_flow(req)
    except APIStatusError as e:
        raise route_missing(e, _LORA_HINT) from None
    return response.body.decode("utf-8", "replace")


def load_lora_flow(client: ClientCore, name: str, path: str, load_inplace: bool | None) -> Flow[str]:
    """``POST /load_lora_adapter``: the server's answer text."""
    body: dict[str, Any] = {"lora_name": string("load_lora_adapter(name=)", name),
                            "lora_path": string("load_lora_adapter(path=)", path)}
    if load_inplace is not None:
        body["load_inplace"] = bool(load_inplace)
    return (yield from _lora_flow(client, "/load_lora_adapter", body))


def unload_lora_flow(client: ClientCore, name: str) -> Flow[str]:
    """``POST /unload_lora_adapter``: the server's answer text."""
    return (yield from _lora_flow(client, "/unload_lora_adapter",
                                  {"lora_name": string("unload_lora_adapter(name=)", name)}))
