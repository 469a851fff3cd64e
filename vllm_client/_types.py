"""Response types every endpoint shares: usage, tool calls, the completion base, stream events.

Response objects parse defensively: whatever JSON a server sends, either a typed object
comes out or a ``ResponseDecodeError`` that keeps the body, never an AttributeError or
KeyError from inside the SDK. The small ones are slotted dataclasses; completions wrap
their ``raw`` dict and read fields when first asked for. An endpoint's own response
types live in its module under ``_endpoints/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

import orjson

from . import _json
from ._exceptions import ResponseDecodeError
from ._observe import _json_copy, _Meta, _to_json

__all__ = [
    "Usage",
    "WeightVersionSpan",
    "ToolCall",
    "ChatMessage",
    "split_content",
    "ReasoningDelta",
    "ContentDelta",
    "RefusalDelta",
    "ToolCallDelta",
    "ToolCallComplete",
    "UsageEvent",
    "PartialParsed",
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

    def __add__(self, other: Usage) -> Usage:
        """The sum of two usages (``reasoning_tokens`` / ``cached_tokens``: None when neither has them)."""
        if not isinstance(other, Usage):
            return NotImplemented

        def opt(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.total_tokens + other.total_tokens, opt(self.reasoning_tokens, other.reasoning_tokens),
                     opt(self.cached_tokens, other.cached_tokens))

    def to_dict(self) -> dict[str, Any]:
        """The usage object as the server sent it (the counts, when it was summed or made here)."""
        if self.raw:
            raw: dict[str, Any] = _json_copy(self.raw)
            return raw
        d: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                             "total_tokens": self.total_tokens}
        if self.reasoning_tokens is not None:
            d["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_tokens is not None:
            d["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return d

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
class WeightVersionSpan:
    """Output tokens ``[start, end)`` of a choice were sampled by the weights labelled
    ``version`` (vLLM 0.33+, ``return_weight_versions``)."""

    version: str
    start: int
    end: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse_list(cls, value: Any) -> list[WeightVersionSpan] | None:
        """A choice's ``weight_versions``; None when absent or not a list."""
        if value.__class__ is not list:
            return None
        return [cls(str(d.get("version", "")), _int(d.get("start")) or 0, _int(d.get("end")) or 0, d)
                for d in value if d.__class__ is dict]


@dataclass(slots=True)
class ToolCall:
    """One function call the model asked for. ``arguments`` is the JSON text as sent.
    ``incomplete``: its turn ended by length (``finish_reason == "length"``, a Responses item
    ``status: "incomplete"``), so the arguments may be cut; ``run_tools()`` never runs it."""

    id: str | None
    name: str
    arguments: str
    type: str = "function"
    incomplete: bool = False

    def arguments_json(self) -> dict[str, Any]:
        """The arguments parsed as a JSON object (``{}`` for empty arguments).

        Raises ``ResponseDecodeError`` (with the text in ``.body``) when the model
        produced invalid JSON or something other than an object.
        """
        text = self.arguments.strip()
        if not text:
            return {}
        try:
            value = _json.loads(text)
        except orjson.JSONDecodeError as e:
            raise ResponseDecodeError(
                f"tool call {self.name!r}: arguments are not valid JSON ({e}): {text[:200]!r}", body=self.arguments
            ) from None
        if not isinstance(value, dict):
            raise ResponseDecodeError(
                f"tool call {self.name!r}: arguments are JSON but not an object: {text[:200]!r}", body=self.arguments
            )
        return value

    @property
    def function(self) -> ToolCall:
        """This call again, for openai-python's spelling ``tool_call.function.name`` / ``.arguments``."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form, as it goes back into a message history."""
        d: dict[str, Any] = {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}
        if self.id is None:
            del d["id"]
        return d

    @classmethod
    def from_dict(cls, d: Any, incomplete: bool = False) -> ToolCall:
        """Parse one ``tool_calls`` entry (arguments given as an object are re-encoded)."""
        d = _dict(d)
        fn = _dict(d.get("function"))
        args = fn.get("arguments")
        if args is None:
            args = ""
        elif not isinstance(args, str):
            args = _json.dumps(args).decode()
        return cls(id=_str(d.get("id")), name=_str(fn.get("name")) or "", arguments=args, type=_str(d.get("type")) or "function", incomplete=incomplete)


def add_usage(total: Usage | None, response: Any) -> Usage | None:
    """``total`` plus the usage of ``response`` (None when neither has any)."""
    usage: Usage | None = getattr(response, "usage", None)
    if usage is None:
        return total
    return usage if total is None else total + usage


def set_total_usage(response: Any, total: Usage | None) -> None:
    """Give a response the summed usage of the requests that led to it (``total_usage``)."""
    try:
        response._total_usage = total
    except AttributeError:  # a response type without total_usage
        pass


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


class ChatMessage(dict[str, Any]):
    """A chat message: the dict the server sent (``msg["content"]`` and every dict operation),
    with its fields also as attributes: ``role``, ``content``, ``tool_calls`` (typed: ``ToolCall``),
    ``reasoning`` (``reasoning_content`` or ``reasoning``), ``refusal``; any other key too
    (``msg.annotations``). A missing field reads as None (``tool_calls``: ``[]``)."""

    __slots__ = ()

    @property
    def role(self) -> str | None:
        """"assistant", "user", ..."""
        return _str(self.get("role"))

    @property
    def content(self) -> Any:
        """The content as sent: text, a list of parts, or None."""
        return self.get("content")

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls, typed (``tc.name`` or ``tc.function.name``, ``tc.arguments``)."""
        calls = self.get("tool_calls")
        return [ToolCall.from_dict(c) for c in calls] if calls.__class__ is list else []

    @property
    def reasoning(self) -> str | None:
        """The reasoning text: ``reasoning_content`` or ``reasoning`` (vLLM's names)."""
        r = self.get("reasoning_content")
        if r is None:
            r = self.get("reasoning")
        return _str(r)

    @property
    def refusal(self) -> str | None:
        """The refusal text when the model refused."""
        return _str(self.get("refusal"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"message has no field {name!r} (it has {sorted(self)})") from None


_UNPARSED: Any = object()


def _nonempty_str(v: Any) -> str | None:
    return v if v and v.__class__ is str else None


_C = TypeVar("_C", bound="_Completion")


class _Completion(_Meta):
    """What chat and legacy completions share: ``raw`` is kept as received, and the typed
    fields are read from it when first asked for (``choices`` and ``usage`` are parsed once,
    then kept), so a caller that reads only ``.content`` pays for nothing else.
    ``choices`` is checked to be a list up front: a malformed body fails in ``send()``.
    ``timing``, ``headers``, ``status_code`` and ``request_id`` come from the HTTP answer."""

    __slots__ = ("raw", "_choices", "_usage", "_total_usage")
    _total_usage: Usage | None
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

    @property
    def prompt_token_ids(self) -> list[int] | None:
        """The prompt's token ids (vLLM chat, with ``return_token_ids``; completions have them per choice)."""
        ids = self.raw.get("prompt_token_ids")
        return ids if isinstance(ids, list) else None

    @property
    def prompt_text(self) -> str | None:
        """The prompt the chat template made (vLLM, with ``return_prompt_text``)."""
        return _str(self.raw.get("prompt_text"))

    @property
    def kv_transfer_params(self) -> dict[str, Any] | None:
        """KV-transfer parameters for the next step of disaggregated serving (vLLM)."""
        p = self.raw.get("kv_transfer_params")
        return p if isinstance(p, dict) else None

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

    @property
    def total_usage(self) -> Usage | None:
        """The usage of every request that led to this response, summed: ``run_tools()`` rounds,
        ``parse_retries()`` re-asks, a Conversation turn's tool rounds; for a single request,
        its ``usage``. None when the server reported none."""
        try:
            total: Usage | None = self._total_usage
        except AttributeError:
            return self.usage
        return total

    def _pickle_state(self) -> dict[str, Any]:
        state = super()._pickle_state()
        if state.get("_usage") is _UNPARSED:
            del state["_usage"]
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        self._usage = _UNPARSED
        super()._restore(state)



# ---------------------------------------------------------------------------
# stream events


def _plain(value: Any) -> Any:
    """A field of an event as JSON-ready data."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if to_dict is not None and not isinstance(value, type) else value


class _Event:
    """``to_dict()`` / ``to_json()`` of the stream events."""

    __slots__ = ()
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """``{"type": ..., field: value, ...}``: a tool call, usage or response as its own ``to_dict()``."""
        import dataclasses

        d: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            d[f.name] = _plain(getattr(self, f.name))
        return _json_copy(d)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """``to_dict()`` as JSON text."""
        return _to_json(self.to_dict())


@dataclass(slots=True)
class ReasoningDelta(_Event):
    """A piece of the model's reasoning ("thinking") text."""

    type: ClassVar[Literal["reasoning"]] = "reasoning"
    text: str
    index: int = 0


@dataclass(slots=True)
class ContentDelta(_Event):
    """A piece of the answer text."""

    type: ClassVar[Literal["content"]] = "content"
    text: str
    index: int = 0


@dataclass(slots=True)
class RefusalDelta(_Event):
    """A piece of a refusal message."""

    type: ClassVar[Literal["refusal"]] = "refusal"
    text: str
    index: int = 0


@dataclass(slots=True)
class ToolCallDelta(_Event):
    """A fragment of a tool call as it streams in (``arguments`` is this fragment only)."""

    type: ClassVar[Literal["tool_call_delta"]] = "tool_call_delta"
    index: int
    tool_index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class ToolCallComplete(_Event):
    """A tool call whose arguments are final."""

    type: ClassVar[Literal["tool_call"]] = "tool_call"
    index: int
    tool_call: ToolCall


@dataclass(slots=True)
class UsageEvent(_Event):
    """Token usage, sent once before ``Done`` when the server reported it."""

    type: ClassVar[Literal["usage"]] = "usage"
    usage: Usage


@dataclass(slots=True)
class PartialParsed(_Event):
    """The structured output read so far (a stream with ``response_format(T)``): ``value`` is the
    JSON parsed so far, open strings and containers closed, as plain dicts / lists / scalars, not
    yet validated. At most one per network read, when the value grew during it; each ``value`` is
    a snapshot of that moment (later events never change it)."""

    type: ClassVar[Literal["partial"]] = "partial"
    value: Any
    index: int = 0


R = TypeVar("R")


@dataclass(slots=True)
class Done(_Event, Generic[R]):
    """The last event of every finished stream, with the whole accumulated response
    (a ``ChatCompletionResponse``; a ``CompletionResponse`` for legacy completions)."""

    type: ClassVar[Literal["done"]] = "done"
    finish_reason: str | None
    response: R


@dataclass(slots=True)
class ServerEvent(_Event):
    """A named SSE event that is not a chat chunk (e.g. FastGPT's ``flowResponses``)."""

    type: ClassVar[Literal["event"]] = "event"
    event: str
    data: Any


StreamEvent = (
    ReasoningDelta | ContentDelta | RefusalDelta | ToolCallDelta | ToolCallComplete | UsageEvent | PartialParsed
    | Done[Any] | ServerEvent
)
