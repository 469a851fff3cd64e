"""The OpenAI Responses API (``POST /responses``, vLLM >= 0.10): the request body and its
setters, the response and its output items, the stream accumulator for its named SSE
events, the tool loop over function_call / function_call_output items, the builders, and
``client.responses()`` (``create()``, ``retrieve(id)``, ``cancel(id)``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote

import orjson

from .. import _json
from .. import _validate as v
from .._conversation import PreparedCall, ToolLoop
from .._exceptions import InvalidRequestError, ResponseDecodeError
from .._observe import _Meta
from .._sse import SSEEvent
from .._stream import StreamAccumulator
from .._types import (
    ContentDelta,
    Done,
    ReasoningDelta,
    ServerEvent,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
    UsageEvent,
    _dict,
    _int,
    _list,
    _str,
)
from .base import AsyncToolLoopSender, Creator, ToolLoopSender, _Builder, _copy
from .sampling import _SamplingMixin

if TYPE_CHECKING:
    from .._core import ClientCore, Flow
    from .._types import StreamEvent

__all__ = ["ResponseMessage", "ResponseFunctionCall", "ResponseReasoning", "ResponseOutputItem", "ResponseItem",
           "ResponsesResponse", "ResponsesBody", "ResponsesBuilder", "AsyncResponsesBuilder", "Responses",
           "AsyncResponses", "ResponsesAccumulator", "ResponsesToolLoop", "responses_tool",
           "retrieve_flow", "cancel_flow"]

RB = TypeVar("RB", bound="ResponsesBody")


# ---------------------------------------------------------------------------
# the response: output items and the response object


@dataclass(slots=True)
class ResponseMessage:
    """An assistant message of the output (``type: "message"``); ``text`` joins its output_text parts."""

    id: str | None
    status: str | None
    role: str
    text: str
    content: list[Any]
    refusal: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    type: str = "message"


@dataclass(slots=True)
class ResponseFunctionCall:
    """A function call of the output (``type: "function_call"``); answer it with its ``call_id``."""

    id: str | None
    status: str | None
    call_id: str | None
    name: str
    arguments: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    type: str = "function_call"

    def tool_call(self) -> ToolCall:
        """As a ``ToolCall`` (its ``id`` is the ``call_id``), the type chat responses use;
        ``incomplete`` when the item's status is "incomplete" (cut by ``max_output_tokens``)."""
        return ToolCall(id=self.call_id, name=self.name, arguments=self.arguments,
                        incomplete=self.status == "incomplete")


@dataclass(slots=True)
class ResponseReasoning:
    """A reasoning item of the output (``type: "reasoning"``): its text and its summary's."""

    id: str | None
    status: str | None
    text: str
    summary: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    type: str = "reasoning"


@dataclass(slots=True)
class ResponseOutputItem:
    """Any other output item (a built-in tool call, ...), kept as received."""

    type: str
    id: str | None
    status: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


ResponseItem = ResponseMessage | ResponseFunctionCall | ResponseReasoning | ResponseOutputItem


def _texts(parts: Any, *kinds: str) -> str:
    return "".join(p["text"] for p in _list(parts)
                   if p.__class__ is dict and p.get("type") in kinds and p.get("text").__class__ is str)


def _output_item(d: Any) -> ResponseItem:
    d = _dict(d)
    kind = _str(d.get("type")) or ""
    iid, status = _str(d.get("id")), _str(d.get("status"))
    if kind == "message":
        content = _list(d.get("content"))
        refusal = "".join(p["refusal"] for p in content if p.__class__ is dict and p.get("type") == "refusal"
                          and p.get("refusal").__class__ is str)
        return ResponseMessage(iid, status, _str(d.get("role")) or "assistant", _texts(content, "output_text"),
                               content, refusal or None, d)
    if kind == "function_call":
        args = d.get("arguments")
        if args is not None and args.__class__ is not str:
            args = _json.dumps(args).decode()
        return ResponseFunctionCall(iid, status, _str(d.get("call_id")), _str(d.get("name")) or "", args or "", d)
    if kind == "reasoning":
        return ResponseReasoning(iid, status, _texts(d.get("content"), "reasoning_text"),
                                 _texts(d.get("summary"), "summary_text"), d)
    return ResponseOutputItem(kind, iid, status, d)


def _usage(d: Any) -> Usage | None:
    """The Responses usage object (``input_tokens`` / ``output_tokens``) as a ``Usage``."""
    if d.__class__ is not dict:
        return None
    prompt = _int(d.get("input_tokens")) or 0
    completion = _int(d.get("output_tokens")) or 0
    total = _int(d.get("total_tokens"))
    return Usage(prompt, completion, prompt + completion if total is None else total,
                 _int(_dict(d.get("output_tokens_details")).get("reasoning_tokens")),
                 _int(_dict(d.get("input_tokens_details")).get("cached_tokens")), d)


class ResponsesResponse(_Meta):
    """A response of the Responses API. ``raw`` is the JSON object as received; the typed
    fields are read from it. ``parsed`` is the ``text_format(T)`` instance (None without a type)."""

    __slots__ = ("raw", "_output", "parsed", "_total_usage")
    _total_usage: Usage | None

    def __init__(self, raw: dict[str, Any]) -> None:
        output = raw.get("output")
        if output is not None and output.__class__ is not list:
            raise ResponseDecodeError(f"response: 'output' should be a list, got {type(output).__name__}", body=raw)
        self.raw: dict[str, Any] = raw
        self._output: list[ResponseItem] | None = None
        self.parsed: Any = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResponsesResponse:
        """Wrap a ``response`` object."""
        return cls(d)

    @property
    def id(self) -> str | None:
        """The response id (``resp_...``): for ``retrieve``, ``cancel`` and ``previous_response_id``."""
        return _str(self.raw.get("id"))

    @property
    def status(self) -> str | None:
        """"completed", "incomplete", "in_progress", "queued", "failed" or "cancelled"."""
        return _str(self.raw.get("status"))

    @property
    def model(self) -> str | None:
        """The model that answered."""
        return _str(self.raw.get("model"))

    @property
    def created_at(self) -> int | None:
        """Creation time, Unix seconds."""
        return _int(self.raw.get("created_at"))

    @property
    def output(self) -> list[ResponseItem]:
        """The output items, typed: ``ResponseMessage``, ``ResponseFunctionCall``, ``ResponseReasoning``
        (any other kind as ``ResponseOutputItem``)."""
        if self._output is None:
            self._output = [_output_item(i) for i in self.raw.get("output") or ()]
        return self._output

    @property
    def output_text(self) -> str:
        """The text of every assistant message, joined ("" when the model only called tools)."""
        return "".join(i.text for i in self.output if isinstance(i, ResponseMessage))

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning text (else the reasoning summary), None when there was none."""
        items = [i for i in self.output if isinstance(i, ResponseReasoning)]
        text = "".join(i.text or i.summary for i in items)
        return text if items else None

    @property
    def refusal(self) -> str | None:
        """The refusal text when the model refused."""
        parts = [i.refusal for i in self.output if isinstance(i, ResponseMessage) and i.refusal]
        return "".join(parts) if parts else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The function calls as ``ToolCall``s (``id`` = ``call_id``); an empty list when none."""
        return [i.tool_call() for i in self.output if isinstance(i, ResponseFunctionCall)]

    @property
    def usage(self) -> Usage | None:
        """Token counts (input -> ``prompt_tokens``, output -> ``completion_tokens``)."""
        return _usage(self.raw.get("usage"))

    @property
    def incomplete_details(self) -> dict[str, Any] | None:
        """Why the response is incomplete, e.g. ``{"reason": "max_output_tokens"}``."""
        d = self.raw.get("incomplete_details")
        return d if d.__class__ is dict else None

    @property
    def error(self) -> dict[str, Any] | None:
        """The error object of a failed response."""
        d = self.raw.get("error")
        return d if d.__class__ is dict else None

    @property
    def finish_reason(self) -> str | None:
        """The chat-style reason: "length" (an incomplete response cut by max_output_tokens, tool
        calls or not), "tool_calls", "stop", else the status."""
        status = self.status
        if status == "incomplete":
            reason = _str((self.incomplete_details or {}).get("reason"))
            return "length" if reason in (None, "max_output_tokens") else reason
        if self.tool_calls:
            return "tool_calls"
        return "stop" if status == "completed" else status

    def __eq__(self, other: Any) -> bool:
        return bool(other.__class__ is self.__class__ and other.raw == self.raw)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"ResponsesResponse(id={self.id!r}, status={self.status!r}, output_text={self.output_text!r:.80}, "
                f"tool_calls={self.tool_calls!r}, usage={self.usage!r})")

    @property
    def total_usage(self) -> Usage | None:
        """The usage of every request that led to this response, summed (``run_tools()``'s rounds);
        for a single request, its ``usage``."""
        try:
            total: Usage | None = self._total_usage
        except AttributeError:
            return self.usage
        return total


def _parser(output: Any) -> Callable[[dict[str, Any]], ResponsesResponse]:
    """``from_dict`` that also fills ``parsed`` with the output text as an instance of the
    ``text_format(T)`` type: the chat completions' parse path (``_structured.StructuredOutput``),
    so pydantic models, dataclasses, TypedDicts... validate alike and a bad answer raises
    ``OutputParseError`` (``.response`` set; an ``incomplete`` response counts as cut)."""
    from .._exceptions import OutputParseError

    def parse(d: dict[str, Any]) -> ResponsesResponse:
        r = ResponsesResponse(d)
        if r.status not in ("completed", "incomplete"):
            return r  # queued / in progress / failed: nothing to parse yet
        try:
            r.parsed = output.parse_reply(r.output_text or None, refusal=r.refusal,
                                          finish_reason="length" if r.status == "incomplete" else None,
                                          has_tool_calls=bool(r.tool_calls))
        except OutputParseError as e:
            e.response = r
            raise
        return r

    return parse


# ---------------------------------------------------------------------------
# the stream: named events -> the chat events people know


_TEXT_DELTA = "response.output_text.delta"
_REASONING_DELTAS = frozenset({"response.reasoning_text.delta", "response.reasoning.delta",
                               "response.reasoning_summary_text.delta"})
_ENDS = frozenset({"response.completed", "response.incomplete"})
_STARTS = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesAccumulator(StreamAccumulator[Any]):
    """Turns a Responses SSE stream (``event: response.*``) into typed events and the
    accumulated ``ResponsesResponse``. Pure, like the chat accumulator it extends:
    ``feed(bytes)``/``finish()`` return events or raise ``StreamError`` with ``.partial``.

    Text deltas -> ``ContentDelta``, reasoning deltas -> ``ReasoningDelta``, a function call
    -> ``ToolCallDelta``s then ``ToolCallComplete``; every other event -> ``ServerEvent``;
    ``Done`` after ``response.completed`` (or ``response.incomplete``). An ``error`` or
    ``response.failed`` event, or a body that ends before the response did, raises.
    """

    def __init__(self, *, url: str | None = None,
                 parse: Callable[[dict[str, Any]], Any] = ResponsesResponse.from_dict) -> None:
        super().__init__(chat=True, url=url, parse=parse)
        self._base: dict[str, Any] = {}  # the response object of response.created / in_progress
        self._items: dict[int, dict[str, Any]] = {}  # output_index -> the item as added / done
        self._text: dict[int, list[str]] = {}  # output_index -> text (or reasoning) fragments
        self._args: dict[int, list[str]] = {}  # output_index -> argument fragments
        self._tools: dict[int, int] = {}  # output_index -> tool index (0, 1, ... in call order)
        self._finished_tools: set[int] = set()
        self._end: dict[str, Any] | None = None

    def _on_items(self, items: list[bytes | SSEEvent], out: list[StreamEvent]) -> None:
        for item in items:
            if item.__class__ is bytes:
                name, data = None, item
            else:
                assert isinstance(item, SSEEvent)
                name, data = item.event, item.data
            if data == b"[DONE]":
                continue
            try:
                obj = _json.loads_body(data)
            except orjson.JSONDecodeError:
                raise self._not_json(data) from None
            if obj.__class__ is not dict:
                raise self._error(f"the server sent a stream event that is not a JSON object: {data[:120]!r}",
                                  body=obj)
            if name is None:  # an unnamed event: its "type" names it
                kind = obj.get("type")
                name = kind if isinstance(kind, str) else "message"
            self._on_named(name, obj, out)

    def _on_named(self, name: str, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        idx = obj.get("output_index")
        if idx.__class__ is not int:
            idx = 0
        if name == _TEXT_DELTA or name in _REASONING_DELTAS:
            text = obj.get("delta")
            if text and text.__class__ is str:
                if idx not in self._items:
                    self._items[idx] = {"type": "message" if name == _TEXT_DELTA else "reasoning"}
                self._text.setdefault(idx, []).append(text)
                out.append(ContentDelta(text) if name == _TEXT_DELTA else ReasoningDelta(text))
            return
        if name == "response.function_call_arguments.delta":
            delta = obj.get("delta")
            if delta and delta.__class__ is str:
                self._args.setdefault(idx, []).append(delta)
                out.append(ToolCallDelta(0, self._tool_index(idx), None, None, delta))
            return
        item = obj.get("item")
        if name in ("response.output_item.added", "response.output_item.done") and item.__class__ is dict:
            self._items[idx] = item
            if item.get("type") == "function_call":
                ti = self._tool_index(idx)
                if name == "response.output_item.added":
                    args = _str(item.get("arguments")) or ""
                    if args:
                        self._args[idx] = [args]
                    out.append(ToolCallDelta(0, ti, _str(item.get("call_id")), _str(item.get("name")), args))
                else:
                    self._args.pop(idx, None)  # the item has the final arguments
                    self._complete_tool(idx, out)
                return
            if name == "response.output_item.done":
                self._text.pop(idx, None)  # the item has the final content
        elif name in _ENDS or name in _STARTS:
            response = obj.get("response")
            if response.__class__ is dict:
                if name in _ENDS:
                    self._end = response
                    self.done = self.ended = True
                    if name == "response.completed":  # (response.incomplete: an open call was cut)
                        for i in sorted(self._tools):
                            self._complete_tool(i, out)
                    return
                self._base = response
        elif name == "response.failed":
            response = _dict(obj.get("response"))
            self._end = None
            err = response.get("error")
            self._raise_server_error({"error": err if err.__class__ is dict else {"message": "the response failed"}})
        elif name == "error":
            self._raise_server_error(obj if "error" in obj else {"error": obj})
        elif name == "response.function_call_arguments.done":
            final = obj.get("arguments")
            if isinstance(final, str):
                self._args[idx] = [final]
        se = ServerEvent(name, obj)
        self.server_events.append(se)
        self._others += 1  # (no tokens: not a mark for the timings)
        out.append(se)

    def _tool_index(self, idx: int) -> int:
        ti = self._tools.get(idx)
        if ti is None:
            ti = self._tools[idx] = len(self._tools)
        return ti

    def _complete_tool(self, idx: int, out: list[StreamEvent]) -> None:
        if idx in self._finished_tools:
            return
        self._finished_tools.add(idx)
        call = _output_item(self._item(idx))
        if isinstance(call, ResponseFunctionCall) and call.status != "incomplete":
            self._others += 1
            out.append(ToolCallComplete(0, call.tool_call()))

    def _item(self, idx: int) -> dict[str, Any]:
        """An output item as received, with the fragments that arrived since folded in."""
        item = dict(self._items.get(idx) or {})
        text = self._text.get(idx)
        if text is not None:
            kind = "output_text" if item.get("type") == "message" else "reasoning_text"
            item["content"] = [{"type": kind, "text": "".join(text)}]
            item.setdefault("role", "assistant")
        args = self._args.get(idx)
        if args is not None:
            item["arguments"] = "".join(args)
        return item

    def finish(self) -> list[StreamEvent]:
        """The body ended: check the response completed, return ``UsageEvent`` and ``Done``."""
        out: list[StreamEvent] = []
        self._on_items(self._sse.flush_data(), out)
        if self._end is None:
            raise self._error("the stream ended before response.completed: the connection was probably cut")
        response: Any = self._parse(self._end)
        self._final = response
        if response.usage is not None:
            out.append(UsageEvent(response.usage))
        out.append(Done(response.finish_reason, response))
        return out

    def raw(self) -> dict[str, Any]:
        """The response so far: the final object once it came, else the first one with the items so far."""
        if self._end is not None:
            return self._end
        raw = dict(self._base)
        raw.setdefault("object", "response")
        raw["status"] = raw.get("status") or "in_progress"
        raw["output"] = [self._item(i) for i in sorted(self._items)]
        return raw

    def response(self) -> Any:
        """The response accumulated so far (the final one once the stream finished)."""
        if self._final is not None:
            return self._final
        return ResponsesResponse(self.raw())  # (a partial one is never parsed into the type)


# ---------------------------------------------------------------------------
# the tool loop over the Responses API


class ResponsesToolLoop(ToolLoop):
    """``ToolLoop`` over input items: the model's function_call items and a function_call_output
    per call go back in ``input`` (no server-side store needed)."""

    def _history(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        given = body.get("input")
        return [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])

    def _reply(self, response: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for item in response.output:
            if isinstance(item, ResponseReasoning):
                if self.reasoning:  # the model's reasoning goes back as the item it sent
                    reasoning = {k: x for k, x in item.raw.items() if x is not None}
                    reasoning.setdefault("summary", [])
                    items.append(reasoning)
            elif isinstance(item, ResponseFunctionCall):
                items.append({"type": "function_call", "call_id": item.call_id, "name": item.name,
                              "arguments": item.arguments})
            elif isinstance(item, ResponseMessage) and item.text:
                items.append({"role": "assistant", "content": item.text})
        return items

    def _result(self, call_id: str, content: str) -> dict[str, Any]:
        return {"type": "function_call_output", "call_id": call_id, "output": content}

    def next_builder(self) -> Any:
        b = copy.copy(self.builder)
        b._body = dict(self.builder._body)
        b._body["input"] = list(self.messages)
        b._extra = {k: x for k, x in self.builder._extra.items() if k != "input"}
        b._headers = dict(self.builder._headers)
        return self._with_budget(b)

    def after(self, response: Any) -> list[PreparedCall] | None:
        """Take the model's reply; the calls to run next, or None when it is the final answer."""
        return super().after(response)


# ---------------------------------------------------------------------------
# the request body


def responses_tool(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A chat tool dict (``{"type": "function", "function": {...}}``) in the Responses API's
    flat shape (``{"type": "function", "name": ..., "parameters": ...}``); other tools as given."""
    fn = schema.get("function")
    if schema.get("type") != "function" or not isinstance(fn, Mapping):
        return dict(schema)
    out: dict[str, Any] = {"type": "function", "name": fn["name"]}
    for k in ("description", "parameters", "strict"):
        if k in fn:
            out[k] = fn[k]
    return out


def _text_schema(fmt: Any, strict: bool) -> tuple[dict[str, Any], Any]:
    """(JSON schema, the ``StructuredOutput`` to parse into or None) for ``text_format``."""
    if isinstance(fmt, Mapping):
        return dict(v.mapping("text_format", dict(fmt))), None
    from .._structured import structured_output

    output = structured_output(fmt, strict=strict, where="text_format")
    return output.schema or {}, output


class ResponsesBody(_Builder):
    """Setters of a Responses API request (OpenAI fields + vLLM's extensions)."""

    _path = "/responses"
    _what = "response"
    _parse = ResponsesResponse.from_dict
    _toolset: Any = None  # the ToolSet given to tools(), for run_tools()
    _tool_loop_class: ClassVar[type[ToolLoop]] = ResponsesToolLoop  # run_tools() over input items

    def input(self: RB, value: str | list[Any]) -> RB:
        """The input: a text, or a list of input items (messages ``{"role", "content"}``,
        ``function_call`` / ``function_call_output`` items, ...)."""
        if isinstance(value, str):
            return self._set("input", value)
        if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            for i, item in enumerate(value):
                if "role" not in item and not isinstance(item.get("type"), str):
                    raise InvalidRequestError(f"input[{i}]: an input item needs a 'role' (a message) or a 'type'")
            return self._set("input", [dict(i) for i in value])
        raise InvalidRequestError(f"input({value!r:.80}): expected text or a non-empty list of input item dicts")

    def instructions(self: RB, text: str) -> RB:
        """The system (developer) instructions."""
        return self._set("instructions", v.string("instructions", text, empty_ok=True))

    def max_output_tokens(self: RB, value: int) -> RB:
        """Most tokens to generate (reasoning included)."""
        return self._set("max_output_tokens", v.integer("max_output_tokens", value, lo=1))

    def max_tool_calls(self: RB, value: int) -> RB:
        """Most built-in tool calls in one response."""
        return self._set("max_tool_calls", v.integer("max_tool_calls", value, lo=0))

    def tools(self: RB, tools: Iterable[Callable[..., Any] | Mapping[str, Any]]) -> RB:
        """Tools the model may call: Python functions (schema from their signature, as in chat),
        chat tool dicts or Responses tool dicts."""
        from .._tools import ToolSet

        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
            raise InvalidRequestError("tools(...): expected a list of functions or tool dicts")
        given = list(tools)
        flat = [t for t in given if isinstance(t, Mapping) and t.get("type") == "function" and "name" in t]
        ts = ToolSet([t for t in given if not any(t is f for f in flat)])
        self._toolset = ts
        return self._set("tools", [responses_tool(s) for s in ts.schemas] + [dict(t) for t in flat])

    def tool_choice(self: RB, choice: str | Mapping[str, Any]) -> RB:
        """"auto", "none", "required", a function name, or a tool_choice dict."""
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                choice = {"type": "function", "name": choice}
        elif isinstance(choice, Mapping):
            choice = dict(choice)
        else:
            raise InvalidRequestError(f"tool_choice({choice!r}): expected 'auto', 'none', 'required', a name or a dict")
        return self._set("tool_choice", choice)

    def parallel_tool_calls(self: RB, value: bool) -> RB:
        """Allow several tool calls in one response."""
        return self._set("parallel_tool_calls", v.boolean("parallel_tool_calls", value))

    def text_format(self: RB, fmt: Any, *, name: str = "output", strict: bool = True) -> RB:
        """Ask for JSON matching a schema (``text.format`` of type json_schema): a schema dict, or a
        type (dataclass, TypedDict, pydantic model, ``list[X]``...), then ``.parsed`` is an instance."""
        schema, tp = _text_schema(fmt, v.boolean("text_format(strict=)", strict))
        text = dict(_dict(self._body.get("text")))
        text["format"] = {"type": "json_schema", "name": v.string("text_format(name=)", name), "schema": schema,
                          "strict": v.boolean("text_format(strict=)", strict)}
        self.__dict__["_parse"] = _parser(tp) if tp is not None else ResponsesResponse.from_dict
        return self._set("text", text)

    def text(self: RB, config: Mapping[str, Any]) -> RB:
        """The whole ``text`` config as a dict (``{"format": {"type": "json_object"}}``, ``verbosity``)."""
        return self._set("text", _copy(v.mapping("text", config)))

    def reasoning(self: RB, effort: str | None = None, *, summary: str | None = None) -> RB:
        """Reasoning options: ``effort`` ("low", "medium", "high"), ``summary`` ("auto", "concise", "detailed")."""
        r: dict[str, Any] = {}
        if effort is not None:
            r["effort"] = v.string("reasoning(effort=)", effort)
        if summary is not None:
            r["summary"] = v.string("reasoning(summary=)", summary)
        return self._set("reasoning", r)

    def include_reasoning(self: RB, value: bool) -> RB:
        """Send the reasoning back (vLLM; default True)."""
        return self._set("include_reasoning", v.boolean("include_reasoning", value))

    def previous_response_id(self: RB, response_id: str) -> RB:
        """Continue from a stored response (the server needs its response store enabled)."""
        return self._set("previous_response_id", v.string("previous_response_id", response_id))

    def store(self: RB, value: bool = True) -> RB:
        """Keep the response on the server (for retrieve / previous_response_id)."""
        return self._set("store", v.boolean("store", value))

    def background(self: RB, value: bool = True) -> RB:
        """Run in the background (needs ``store``): ``send()`` returns at once; poll with ``retrieve``."""
        return self._set("background", v.boolean("background", value))

    def stream(self: RB, value: bool) -> RB:
        """Ask for a stream (``send()`` then consumes it and returns the final response)."""
        return self._set("stream", v.boolean("stream", value))

    def metadata(self: RB, value: Mapping[str, str]) -> RB:
        """Up to 16 string key/value pairs kept with the response."""
        return self._set("metadata", _copy(v.mapping("metadata", value)))

    def include(self: RB, fields: list[str]) -> RB:
        """Extra output to include, e.g. ``["reasoning.encrypted_content"]``."""
        value = v.str_or_str_list("include", fields)
        return self._set("include", [value] if isinstance(value, str) else value)

    def top_logprobs(self: RB, value: int) -> RB:
        """How many top alternatives per output token (0-20)."""
        return self._set("top_logprobs", v.integer("top_logprobs", value, lo=0, hi=20))

    def truncation(self: RB, value: str) -> RB:
        """"auto" (drop the oldest input to fit) or "disabled"."""
        if value not in ("auto", "disabled"):
            raise InvalidRequestError(f"truncation({value!r}): expected 'auto' or 'disabled'")
        return self._set("truncation", value)

    def service_tier(self: RB, value: str) -> RB:
        """"auto", "default", "flex", "scale" or "priority"."""
        return self._set("service_tier", v.string("service_tier", value))

    def prompt_cache_key(self: RB, value: str) -> RB:
        """A key for prefix caching (vLLM maps it to ``cache_salt``)."""
        return self._set("prompt_cache_key", v.string("prompt_cache_key", value))

    def cache_salt(self: RB, value: str) -> RB:
        """Salt for vLLM's prefix cache (requests share cache entries only with the same salt)."""
        return self._set("cache_salt", v.string("cache_salt", value))

    def prompt_cache_options(self: RB, options: Mapping[str, Any]) -> RB:
        """Prompt-cache options, e.g. ``{"mode": "explicit", "prewarm": True}`` (vLLM 0.33+;
        ``mode`` "implicit" or "explicit", ``ttl``, ``prewarm``, ``comparison_response_id``)."""
        opts = v.mapping("prompt_cache_options", options)
        if "mode" in opts and opts["mode"] not in ("implicit", "explicit"):
            raise InvalidRequestError(f"prompt_cache_options mode {opts['mode']!r}: expected 'implicit' or 'explicit'")
        v.check_finite(opts, "prompt_cache_options")
        return self._set("prompt_cache_options", dict(opts))

    def prompt_cache_retention(self: RB, value: str) -> RB:
        """How long the prompt cache is kept, e.g. "in-memory" or "24h" (OpenAI's field; vLLM 0.33+)."""
        return self._set("prompt_cache_retention", v.string("prompt_cache_retention", value))

    def safety_identifier(self: RB, value: str) -> RB:
        """A stable id of your end user for abuse detection (at most 128 characters; vLLM 0.33+)."""
        text = v.string("safety_identifier", value)
        if len(text) > 128:
            raise InvalidRequestError(f"safety_identifier: {len(text)} characters, at most 128")
        return self._set("safety_identifier", text)

    def spaces_between_special_tokens(self: RB, value: bool) -> RB:
        """Put spaces between special tokens in the output (vLLM 0.33+)."""
        return self._set("spaces_between_special_tokens", v.boolean("spaces_between_special_tokens", value))

    def chat_template_kwargs(self: RB, kwargs: Mapping[str, Any]) -> RB:
        """Extra variables for the chat template, e.g. ``{"enable_thinking": False}`` (vLLM)."""
        return self._set("chat_template_kwargs", _copy(v.mapping("chat_template_kwargs", kwargs)))

    # The sampling setters the Responses request shares with chat (same fields, same checks).
    model = _SamplingMixin.model
    temperature = _SamplingMixin.temperature
    top_p = _SamplingMixin.top_p
    top_k = _SamplingMixin.top_k
    min_p = _SamplingMixin.min_p
    seed = _SamplingMixin.seed
    stop = _SamplingMixin.stop
    presence_penalty = _SamplingMixin.presence_penalty
    frequency_penalty = _SamplingMixin.frequency_penalty
    repetition_penalty = _SamplingMixin.repetition_penalty
    logit_bias = _SamplingMixin.logit_bias
    user = _SamplingMixin.user
    ignore_eos = _SamplingMixin.ignore_eos
    stop_token_ids = _SamplingMixin.stop_token_ids
    skip_special_tokens = _SamplingMixin.skip_special_tokens
    thinking_token_budget = _SamplingMixin.thinking_token_budget  # vLLM 0.34+ on this route
    include_stop_str_in_output = _SamplingMixin.include_stop_str_in_output
    priority = _SamplingMixin.priority
    request_id = _SamplingMixin.request_id

    def _check(self, body: dict[str, Any]) -> None:
        if not body.get("input"):
            raise InvalidRequestError("no input: call .input('...') first")

    def _accumulator(self, url: str) -> ResponsesAccumulator:
        return ResponsesAccumulator(url=url, parse=self._parse)


# ---------------------------------------------------------------------------
# the builders and client.responses()


class ResponsesBuilder(ResponsesBody, ToolLoopSender[ResponsesResponse]):
    """Builds one Responses API request; ``send()`` or ``send_stream()`` it."""


class AsyncResponsesBuilder(ResponsesBody, AsyncToolLoopSender[ResponsesResponse]):
    """Builds one Responses API request; ``await send()`` or ``await send_stream()``."""


def _id_path(response_id: Any, suffix: str = "") -> str:
    rid = v.string("response_id", response_id)
    return f"/responses/{quote(rid, safe='')}{suffix}"


def retrieve_flow(client: ClientCore, response_id: str) -> Flow[ResponsesResponse]:
    """``GET /responses/{id}``."""
    req = client.prepare("GET", _id_path(response_id))
    return (yield from client.json_flow(req, ResponsesResponse.from_dict, "response"))


def cancel_flow(client: ClientCore, response_id: str) -> Flow[ResponsesResponse]:
    """``POST /responses/{id}/cancel`` (a background response that is queued or in progress)."""
    req = client.prepare("POST", _id_path(response_id, "/cancel"))
    return (yield from client.json_flow(req, ResponsesResponse.from_dict, "response"))


class Responses(Creator[ResponsesBuilder]):
    """``VllmClient.responses()``: ``create()`` a request, ``retrieve(id)``, ``cancel(id)``."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, ResponsesBuilder)

    def retrieve(self, response_id: str) -> ResponsesResponse:
        """A stored response by id (the server needs its response store enabled)."""
        return self._client._run(retrieve_flow(self._client, response_id))  # type: ignore[no-any-return]

    def cancel(self, response_id: str) -> ResponsesResponse:
        """Cancel a background response; returns it as it now stands."""
        return self._client._run(cancel_flow(self._client, response_id))  # type: ignore[no-any-return]


class AsyncResponses(Creator[AsyncResponsesBuilder]):
    """``AsyncVllmClient.responses()``: the same, awaitable."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, AsyncResponsesBuilder)

    async def retrieve(self, response_id: str) -> ResponsesResponse:
        """A stored response by id."""
        return await self._client._run(retrieve_flow(self._client, response_id))  # type: ignore[no-any-return]

    async def cancel(self, response_id: str) -> ResponsesResponse:
        """Cancel a background response."""
        return await self._client._run(cancel_flow(self._client, response_id))  # type: ignore[no-any-return]
