"""Responses, tool calls, usage and stream events, parsed from dicts: the small ones are slotted
dataclasses; completions wrap their ``raw`` dict and read fields when first asked for.

Parsing is defensive: whatever JSON a server sends, either a typed object comes
out or a ``ResponseDecodeError`` that keeps the body, never an AttributeError or
KeyError from inside the SDK.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import orjson

from ._exceptions import ResponseDecodeError

__all__ = [
    "Usage",
    "ToolCall",
    "Choice",
    "ChatCompletionResponse",
    "CompletionChoice",
    "CompletionResponse",
    "Model",
    "EmbeddingResponse",
    "TokenizeResult",
    "ReasoningDelta",
    "ContentDelta",
    "RefusalDelta",
    "ToolCallDelta",
    "ToolCallComplete",
    "UsageEvent",
    "Done",
    "ServerEvent",
    "StreamEvent",
]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


@dataclass(slots=True)
class Usage:
    """Token counts. ``reasoning_tokens`` / ``cached_tokens`` are None unless reported."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Any) -> Usage | None:
        """Parse a ``usage`` object; None for null or a non-object."""
        if d.__class__ is not dict:
            return None
        get = d.get
        prompt = get("prompt_tokens")
        if prompt.__class__ is not int:
            prompt = 0
        completion = get("completion_tokens")
        if completion.__class__ is not int:
            completion = 0
        total = get("total_tokens")
        if total.__class__ is not int:
            total = prompt + completion
        details = get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if details.__class__ is dict else None
        pdetails = get("prompt_tokens_details")
        cached = pdetails.get("cached_tokens") if pdetails.__class__ is dict else None
        if cached.__class__ is not int:
            cached = get("prompt_cache_hit_tokens")  # DeepSeek
            if cached.__class__ is not int:
                cached = None
        return cls(prompt, completion, total, reasoning if reasoning.__class__ is int else None, cached, d)


@dataclass(slots=True)
class ToolCall:
    """One function call the model asked for. ``arguments`` is the JSON text as sent."""

    id: str | None
    name: str
    arguments: str
    type: str = "function"

    def arguments_json(self) -> dict[str, Any]:
        """The arguments parsed as a JSON object (``{}`` for empty arguments).

        Raises ``ResponseDecodeError`` (with the text in ``.body``) when the model
        produced invalid JSON or something other than an object.
        """
        text = self.arguments.strip()
        if not text:
            return {}
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise ResponseDecodeError(
                f"tool call {self.name!r}: arguments are not valid JSON ({e}): {text[:200]!r}", body=self.arguments
            ) from None
        if not isinstance(value, dict):
            raise ResponseDecodeError(
                f"tool call {self.name!r}: arguments are JSON but not an object: {text[:200]!r}", body=self.arguments
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form, as it goes back into a message history."""
        d: dict[str, Any] = {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}
        if self.id is None:
            del d["id"]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> ToolCall:
        """Parse one ``tool_calls`` entry (arguments given as an object are re-encoded)."""
        d = _dict(d)
        fn = _dict(d.get("function"))
        args = fn.get("arguments")
        if args is None:
            args = ""
        elif not isinstance(args, str):
            args = orjson.dumps(args).decode()
        return cls(id=_str(d.get("id")), name=_str(fn.get("name")) or "", arguments=args, type=_str(d.get("type")) or "function")


def split_content(content: Any) -> tuple[str | None, str | None]:
    """(text, reasoning) from a message ``content``: a string, or a list of parts.

    Parts of type ``text`` make the text; Mistral's ``thinking`` parts (their
    ``thinking`` list of text parts) make reasoning.
    """
    if content is None or isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        return str(content), None
    text: list[str] = []
    thinking: list[str] = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
        elif isinstance(part, dict):
            ptype = part.get("type")
            if ptype == "thinking":
                inner = part.get("thinking")
                if isinstance(inner, str):
                    thinking.append(inner)
                else:
                    for p in _list(inner):
                        if isinstance(p, dict) and isinstance(p.get("text"), str):
                            thinking.append(p["text"])
            elif isinstance(part.get("text"), str):
                text.append(part["text"])
    return "".join(text), ("".join(thinking) if thinking else None)


@dataclass(slots=True)
class Choice:
    """One choice of a chat completion (one per ``n``)."""

    index: int
    content: str | None
    reasoning_content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    refusal: str | None = None
    logprobs: Any = None
    stop_reason: Any = None
    message: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, position: int = 0) -> Choice:
        """Parse a choice of a ``chat.completion`` body."""
        d = _dict(d)
        get = d.get
        msg = _dict(get("message"))
        mget = msg.get
        content = mget("content")
        part_reasoning = None
        if content is not None and content.__class__ is not str:
            content, part_reasoning = split_content(content)
        reasoning = mget("reasoning_content")
        if reasoning is None:
            reasoning = mget("reasoning")
            if reasoning is None:
                reasoning = part_reasoning
        index = get("index")
        tool_calls = mget("tool_calls")
        finish_reason = get("finish_reason")
        refusal = mget("refusal")
        return cls(
            position if index.__class__ is not int else index,
            content,
            reasoning if reasoning.__class__ is str else None,
            [ToolCall.from_dict(tc) for tc in tool_calls] if tool_calls and tool_calls.__class__ is list else [],
            finish_reason if finish_reason.__class__ is str else None,
            refusal if refusal.__class__ is str else None,
            get("logprobs"),
            get("stop_reason"),
            msg,
        )

    def history_message(self) -> dict[str, Any]:
        """The assistant message as a dict, ready to append to a conversation."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        elif out["content"] is None:
            out["content"] = ""
        return out


_UNPARSED: Any = object()


def _nonempty_str(v: Any) -> str | None:
    return v if v and v.__class__ is str else None


_C = TypeVar("_C", bound="_Completion")


class _Completion:
    """What chat and legacy completions share: ``raw`` is kept as received, and the typed
    fields are read from it when first asked for (``choices`` and ``usage`` are parsed once,
    then kept), so a caller that reads only ``.content`` pays for nothing else.
    ``choices`` is checked to be a list up front: a malformed body fails in ``send()``."""

    __slots__ = ("raw", "_choices", "_usage")
    _what: ClassVar[str]
    _choice: ClassVar[Any]  # the choice class, with from_dict(d, position)

    def __init__(self, raw: dict[str, Any]) -> None:
        choices = raw.get("choices")
        if choices is not None and choices.__class__ is not list:
            raise ResponseDecodeError(
                f"{self._what}: 'choices' should be a list, got {type(choices).__name__}", body=raw
            )
        self.raw: dict[str, Any] = raw
        self._choices: list[Any] | None = None
        self._usage: Any = _UNPARSED

    @classmethod
    def from_dict(cls: type[_C], d: dict[str, Any]) -> _C:
        """Wrap a completion object (already checked to be a dict)."""
        return cls(d)

    @property
    def id(self) -> str | None:
        """The response id."""
        return _nonempty_str(self.raw.get("id"))

    @property
    def object(self) -> str | None:
        """``chat.completion`` or ``text_completion`` (as the server sent it)."""
        return _nonempty_str(self.raw.get("object"))

    @property
    def created(self) -> int | None:
        """Creation time, Unix seconds."""
        return _int(self.raw.get("created"))

    @property
    def model(self) -> str | None:
        """The model that answered."""
        return _nonempty_str(self.raw.get("model"))

    @property
    def usage(self) -> Usage | None:
        """Token counts; None when the server sent none."""
        usage = self._usage
        if usage is _UNPARSED:
            usage = self._usage = Usage.from_dict(self.raw.get("usage"))
        return usage  # type: ignore[no-any-return]

    def _parsed_choices(self) -> list[Any]:
        choices = self._choices
        if choices is None:
            parse = self._choice.from_dict
            choices = self._choices = [parse(c, i) for i, c in enumerate(self.raw.get("choices") or ())]
        return choices

    def __eq__(self, other: Any) -> bool:
        return bool(other.__class__ is self.__class__ and other.raw == self.raw)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses it replaced

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(id={self.id!r}, object={self.object!r}, created={self.created!r}, "
                f"model={self.model!r}, choices={self._parsed_choices()!r}, usage={self.usage!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.raw,))


class ChatCompletionResponse(_Completion):
    """A chat completion. Top-level ``content``/``reasoning_content``/``tool_calls``/
    ``finish_reason``/``refusal``/``message`` are those of the first choice."""

    __slots__ = ()
    _what = "chat completion"
    _choice = Choice

    @property
    def choices(self) -> list[Choice]:
        """One ``Choice`` per ``n``, in the server's order."""
        return self._parsed_choices()

    @property
    def _first(self) -> Choice | None:
        choices = self._parsed_choices()
        return choices[0] if choices else None

    @property
    def content(self) -> str | None:
        """The text of the first choice (None when the model sent none)."""
        if self._choices is None:  # not parsed yet: plain text is read as is, without parsing
            choices = self.raw.get("choices")
            first = choices[0] if choices else None
            message = first.get("message") if first.__class__ is dict else None
            text = message.get("content") if message.__class__ is dict else None
            if text.__class__ is str:
                return text
        c = self._first
        return c.content if c else None

    @property
    def reasoning_content(self) -> str | None:
        """The reasoning ("thinking") text, from ``reasoning_content`` or ``reasoning``."""
        c = self._first
        return c.reasoning_content if c else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls of the first choice; an empty list when none."""
        c = self._first
        return c.tool_calls if c else []

    @property
    def finish_reason(self) -> str | None:
        """Why generation stopped: "stop", "length", "tool_calls", ..."""
        c = self._first
        return c.finish_reason if c else None

    @property
    def refusal(self) -> str | None:
        """The refusal text when the model refused."""
        c = self._first
        return c.refusal if c else None

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message as a dict, ready to append to a history."""
        c = self._first
        return c.history_message() if c else {"role": "assistant", "content": ""}


@dataclass(slots=True)
class CompletionChoice:
    """One choice of a legacy text completion."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None
    stop_reason: Any = None

    @classmethod
    def from_dict(cls, d: Any, position: int = 0) -> CompletionChoice:
        """Parse a choice of a ``text_completion`` body."""
        d = _dict(d)
        index = _int(d.get("index"))
        return cls(
            index=position if index is None else index,
            text=_str(d.get("text")) or "",
            finish_reason=_str(d.get("finish_reason")),
            logprobs=d.get("logprobs"),
            stop_reason=d.get("stop_reason"),
        )


class CompletionResponse(_Completion):
    """A legacy text completion; ``text``/``finish_reason`` are the first choice's."""

    __slots__ = ()
    _what = "completion"
    _choice = CompletionChoice

    @property
    def choices(self) -> list[CompletionChoice]:
        """One ``CompletionChoice`` per prompt and ``n``, in the server's order."""
        return self._parsed_choices()

    @property
    def text(self) -> str:
        """The text of the first choice."""
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        """Why generation of the first choice stopped."""
        return self.choices[0].finish_reason if self.choices else None


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


def _decode_embedding(v: Any) -> list[float]:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        import struct

        raw = base64.b64decode(v)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
    raise ResponseDecodeError(f"embedding: expected a list of floats or base64 text, got {type(v).__name__}", body=v)


@dataclass(slots=True)
class EmbeddingResponse:
    """Embeddings in input order; base64 answers are decoded (little-endian float32)."""

    raw: dict[str, Any] = field(repr=False)
    embeddings: list[list[float]]
    model: str | None
    usage: Usage | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingResponse:
        """Parse an embeddings ``list`` object."""
        data = d.get("data")
        if not isinstance(data, list):
            raise ResponseDecodeError("embeddings: 'data' should be a list", body=d)
        items = sorted((x for x in data if isinstance(x, dict)), key=lambda x: _int(x.get("index")) or 0)
        return cls(
            raw=d,
            embeddings=[_decode_embedding(x.get("embedding")) for x in items],
            model=_str(d.get("model")),
            usage=Usage.from_dict(d.get("usage")),
        )


@dataclass(slots=True)
class TokenizeResult:
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


# ---------------------------------------------------------------------------
# stream events


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking") text."""

    type: ClassVar[Literal["reasoning"]] = "reasoning"
    text: str
    index: int = 0


@dataclass(slots=True)
class ContentDelta:
    """A piece of the answer text."""

    type: ClassVar[Literal["content"]] = "content"
    text: str
    index: int = 0


@dataclass(slots=True)
class RefusalDelta:
    """A piece of a refusal message."""

    type: ClassVar[Literal["refusal"]] = "refusal"
    text: str
    index: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams in (``arguments`` is this fragment only)."""

    type: ClassVar[Literal["tool_call_delta"]] = "tool_call_delta"
    index: int
    tool_index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class ToolCallComplete:
    """A tool call whose arguments are final."""

    type: ClassVar[Literal["tool_call"]] = "tool_call"
    index: int
    tool_call: ToolCall


@dataclass(slots=True)
class UsageEvent:
    """Token usage, sent once before ``Done`` when the server reported it."""

    type: ClassVar[Literal["usage"]] = "usage"
    usage: Usage


@dataclass(slots=True)
class Done:
    """The last event of every finished stream, with the whole accumulated response."""

    type: ClassVar[Literal["done"]] = "done"
    finish_reason: str | None
    response: Any  # ChatCompletionResponse, or CompletionResponse for legacy completions


@dataclass(slots=True)
class ServerEvent:
    """A named SSE event that is not a chat chunk (e.g. FastGPT's ``flowResponses``)."""

    type: ClassVar[Literal["event"]] = "event"
    event: str
    data: Any


StreamEvent = (
    ReasoningDelta | ContentDelta | RefusalDelta | ToolCallDelta | ToolCallComplete | UsageEvent | Done | ServerEvent
)
