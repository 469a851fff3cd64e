"""Streaming: SSE events -> typed events + accumulation -> the final response.

``StreamAccumulator`` is the pure core (bytes in, events out, no I/O), used by
both ``ChatStream`` (sync) and ``AsyncChatStream``; those two are thin loops
over the transport's byte iterator.

Hot path per event: SSE decode -> ``orjson.loads`` on bytes -> a few dict
lookups -> one event object; text fragments are collected in lists and joined
once at the end (never ``+=`` on a growing string). Hotter still: a chunk whose
bytes are the previous plain text chunk's around another plain string (vLLM's
chunks differ only in their text) is recognised by its bytes and not parsed at
all (``StreamAccumulator._learn``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from time import perf_counter
from types import TracebackType
from typing import Any, Generic, TypeVar

import orjson

from . import _json
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    StreamError,
    StreamTimeoutError,
    parse_error_object,
)
from ._json import exact_loads
from ._observe import Timing, attach, header
from ._sse import SSEDecoder, SSEEvent
from ._transports.base import Response
from ._types import (
    ContentDelta,
    Done,
    PartialParsed,
    ReasoningDelta,
    RefusalDelta,
    ServerEvent,
    StreamEvent,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    UsageEvent,
    split_content,
)

__all__ = ["StreamAccumulator", "ChatStream", "AsyncChatStream"]

R = TypeVar("R")  # the response type a stream accumulates into

_DONE = b"[DONE]"
_loads = orjson.loads
# Top-level chunk keys that are folded into the response's own fields; every
# other key (system_fingerprint, x_groq, timings, service_tier, ...) is kept as is.
_KNOWN = frozenset({"id", "object", "created", "model", "choices", "usage"})
# Likewise per choice and per delta: any other key (vLLM's weight_versions, ...) is kept on the
# choice / its message, the latest non-null value winning (a key only ever null stays, as null).
_CHOICE_KNOWN = frozenset({"index", "delta", "text", "logprobs", "finish_reason", "stop_reason", "token_ids"})
_DELTA_KNOWN = frozenset({"role", "content", "reasoning", "reasoning_content", "refusal", "tool_calls"})
_CHUNK_EVENTS = frozenset({"message", "answer"})  # FastGPT sends its chat chunks as "answer"
_TEXT_EVENTS = (ReasoningDelta, ContentDelta)
_PARTS = ""  # a _Choice.reasoning_key: the reasoning came in thinking content parts (Mistral)


class _Choice:
    """What has arrived so far for one choice index."""

    __slots__ = ("index", "content", "has_content", "reasoning", "reasoning_key", "refusal",
                 "tools", "finish_reason", "stop_reason", "logprobs", "done_tools", "token_ids",
                 "extra", "msg_extra")

    def __init__(self, index: int) -> None:
        self.index = index
        self.content: list[str] = []
        self.has_content = False  # a string (even "") was sent: content is "" not None
        self.reasoning: list[str] = []
        self.reasoning_key: str | None = None
        self.refusal: list[str] = []
        self.tools: dict[int, list[Any]] = {}  # tool index -> [id, type, name, [argument fragments]]
        self.finish_reason: str | None = None
        self.stop_reason: Any = None
        self.token_ids: list[Any] | None = None  # vLLM's return_token_ids: an id list per chunk
        self.logprobs: Any = None  # chat: the logprobs.content entries; completions: one merged object
        self.done_tools = False
        self.extra: dict[str, Any] | None = None  # the choice's keys not modelled above
        self.msg_extra: dict[str, Any] | None = None  # the deltas' keys not modelled above

    def tool_calls(self) -> list[ToolCall]:
        cut = self.finish_reason == "length"  # the turn ended by length: the calls may be cut
        return [ToolCall(id=t[0], name=t[2] or "", arguments="".join(t[3]), type=t[1] or "function",
                         incomplete=cut)
                for _, t in sorted(self.tools.items())]

    def message(self, chat: bool) -> dict[str, Any]:
        if not chat:
            return {"text": "".join(self.content)}
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) if self.has_content else None}
        if self.reasoning:
            if self.reasoning_key == _PARTS:  # Mistral: thinking content parts, as a non-streamed answer has them
                thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "".join(self.reasoning)}]}
                text = msg["content"]
                msg["content"] = [thinking, {"type": "text", "text": text}] if text else [thinking]
            else:
                msg[self.reasoning_key or "reasoning_content"] = "".join(self.reasoning)
        if self.refusal:
            msg["refusal"] = "".join(self.refusal)
        if self.tools:
            msg["tool_calls"] = [dict(tc.to_dict(), index=i) for i, tc in enumerate(self.tool_calls())]
        if self.msg_extra:
            msg.update(self.msg_extra)
        return msg


def _keep(store: dict[str, Any] | None, obj: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """``store`` (made when None) with ``obj``'s keys that are not ``known``: the latest
    non-null value wins; a key only ever null is kept as null."""
    if store is None:
        store = {}
    for k, v in obj.items():
        if k in known:
            continue
        if v is None:
            store.setdefault(k, None)
        else:
            store[k] = v
    return store


class StreamAccumulator(Generic[R]):
    """Turns the bytes of an SSE chat (or legacy completions) stream into typed events
    and the accumulated response. Pure: ``feed(bytes)`` and ``finish()`` return events
    or raise ``StreamError`` with ``.partial``.

    ``parse`` makes the response from the accumulated body: the endpoint's ``from_dict``
    (``ChatCompletionResponse.from_dict`` for chat, ``CompletionResponse.from_dict`` with
    ``chat=False``). Every key a chunk, a choice or a delta carries that is not modelled is
    kept in the accumulated body (the latest non-null value wins), as a non-streamed answer
    would hold it.

    ``output`` (a ``StructuredOutput``: the request had ``response_format(T)``) adds a
    ``PartialParsed`` event (a snapshot) after the content deltas of a read that grew the JSON
    read so far (at most one per choice and read), and
    fills ``parsed`` on the final response (``finish()`` raises ``OutputParseError`` when it
    does not validate; ``response()`` before the end stays unvalidated).
    """

    def __init__(self, *, parse: Callable[[dict[str, Any]], R], chat: bool = True, url: str | None = None,
                 output: Any = None) -> None:
        self.chat = chat
        self.url = url
        self._parse: Callable[[dict[str, Any]], R] = parse
        self._sse = SSEDecoder()
        self._choices: dict[int, _Choice] = {}
        self._meta: dict[str, Any] = {"id": None, "object": None, "created": None, "model": None}
        self._extras: dict[str, Any] = {}
        self._usage: Any = None
        self._first = True
        self.done = False  # [DONE] seen
        self.server_events: list[ServerEvent] = []
        self._final: Any = None  # the response, once the stream has finished
        self._output = output
        self._partials: dict[int, Any] | None = {} if output is not None and output.kind == "json" else None
        # Timings: when each token-bearing event (content, reasoning, refusal, tool call delta)
        # was read; _others counts the events that carry no tokens (server events, completed
        # tool calls), emitted off the hot path.
        self.marks: list[float] = []
        self._others = 0
        # The bytes around the text of a plain text chunk (see _learn): None until learned,
        # False when given up.
        self._tpl: Any = None
        self._tpl_tries = 0

    # -- feeding -------------------------------------------------------------

    def feed(self, data: bytes, now: float | None = None) -> list[StreamEvent]:
        """Decode a piece of the body (any split) into events; ``now``: when it was read
        (``time.perf_counter()``), noted for the timings when it carried tokens."""
        out: list[StreamEvent] = []
        others = self._others
        self._on_items(self._sse.feed_data(data), out)
        if out and now is not None:
            n = len(out) - self._others + others
            if n == 1:
                self.marks.append(now)
            elif n:
                self.marks.extend([now] * n)
        if self._partials is not None and out:
            return self._with_partials(out)
        return out

    def _with_partials(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """The events of one read with a ``PartialParsed`` (a snapshot of the value) after the
        last ``ContentDelta`` of each choice whose value grew during the read."""
        partials = self._partials
        assert partials is not None
        last: dict[int, int] = {}  # choice index -> position of its last ContentDelta that grew the value
        for pos, ev in enumerate(events):
            if ev.__class__ is ContentDelta:
                idx = ev.index
                p = partials.get(idx)
                if p is None:
                    p = partials[idx] = self._output.partial()
                if p.feed(ev.text):
                    last[idx] = pos
                elif idx in last:
                    last[idx] = pos
        if not last:
            return events
        after = {pos: idx for idx, pos in last.items()}
        out: list[StreamEvent] = []
        for pos, ev in enumerate(events):
            out.append(ev)
            grown = after.get(pos)
            if grown is not None:
                out.append(PartialParsed(partials[grown].snapshot(), grown))
        return out

    def _on_items(self, items: list[bytes | SSEEvent], out: list[StreamEvent]) -> None:
        choices = self._choices
        for item in items:
            if item.__class__ is not bytes or item == _DONE:
                self._on_event(item, out)  # [DONE] or a named event
                continue
            tpl = self._tpl
            if tpl:  # the bytes of the last plain text chunk around another text? (see _learn)
                prefix, suffix, start, stop, state, reasoning = tpl
                if len(item) >= stop and item.startswith(prefix) and item.endswith(suffix):
                    body = item[start:len(item) - stop + start]
                    if 34 not in body and 92 not in body:  # no '"' or '\\': the same string's body
                        try:
                            text = body.decode()
                        except UnicodeDecodeError:
                            text = "\0"  # not printable: parsed below, which reports it
                        if text.isprintable():  # JSON allows no control characters in strings
                            if text:
                                if reasoning:
                                    state.reasoning.append(text)
                                    out.append(ReasoningDelta(text, state.index))
                                else:
                                    state.content.append(text)
                                    out.append(ContentDelta(text, state.index))
                            continue
                else:  # another kind of chunk: learn again (a few times, then give up)
                    self._tpl = None if self._tpl_tries < 4 else False
            try:  # a plain event's data: a chunk
                obj = _loads(item)
            except orjson.JSONDecodeError as e:
                try:  # NaN / Infinity, a number beyond a double: the standard library reads them
                    obj = exact_loads(item, e)
                except orjson.JSONDecodeError:
                    raise self._not_json(item) from None
            # The hot path, nearly every chunk of a chat stream: one choice whose delta is text
            # and nothing else, after the first chunk (vLLM: {"choices": [{"index": 0, "delta":
            # {"content": "..."}, "logprobs": null, "finish_reason": null, "token_ids": null}]}).
            # Only look-ups here; any miss (a missing key, another type, an unknown choice)
            # means "not such a chunk" and _on_chunk, which handles every chunk, takes it.
            # (A measured repeat: _on_chunk's "plain text delta" branch does the same for the
            # chunks this one passes by, and _learn_reasoning checks the same "nothing but the
            # text" conditions for reasoning chunks; change them together.)
            try:
                (ch,) = obj["choices"]
                delta = ch["delta"]
                content = delta["content"]
                idx = ch["index"]
                state = choices[idx]
            except (KeyError, TypeError, ValueError):
                pass
            else:
                if (content.__class__ is str and len(delta) == 1 and idx.__class__ is int and not self._first
                        and ch.get("finish_reason") is None and not ch.get("logprobs") and not ch.get("token_ids")
                        and obj.get("usage") is None and obj.keys() <= _KNOWN and ch.keys() <= _CHOICE_KNOWN):
                    state.has_content = True
                    if content:
                        state.content.append(content)
                        out.append(ContentDelta(content, idx))
                        if self._tpl is None:
                            self._learn(item, b'"content":', content, state, False)
                    continue
            self._on_chunk(obj, out)
            if self._tpl is None and out and out[-1].__class__ in _TEXT_EVENTS:
                self._learn_plain(item, obj)

    def _learn_plain(self, item: bytes, obj: dict[str, Any]) -> None:
        """``_learn`` from a chunk that went the long way and whose only delta was text: reasoning
        (vLLM: ``reasoning``), or content beside keys the hot path leaves to ``_on_chunk``
        (vLLM 0.33's ``"kv_transfer_params": null``): those were kept, and the template's chunks
        carry the same bytes around their text, so the same values."""
        try:
            (ch,) = obj["choices"]
            ((key, text),) = ch["delta"].items()
            state = self._choices[ch["index"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            return
        if ((key == state.reasoning_key or key == "content") and text.__class__ is str
                and ch.get("finish_reason") is None and not ch.get("logprobs") and not ch.get("token_ids")
                and obj.get("usage") is None and "error" not in obj):
            self._learn(item, b'"' + key.encode() + b'":', text, state, key != "content")

    def _learn(self, item: bytes, key: bytes, text: str, state: _Choice, reasoning: bool) -> None:
        """Note where a plain text chunk's text (its delta's only field, ``key``) sits in its
        bytes (vLLM's chunks differ only there): a later chunk with the same bytes around a
        plain string body (no quote, backslash or control character) is the same chunk with
        another text, and skips ``orjson.loads``. Servers whose chunks differ elsewhere (a
        per-chunk field) miss; the template is then learned again a few times, then given up."""
        self._tpl_tries += 1
        self._tpl = False
        needle = key + orjson.dumps(text)
        at = item.find(needle)
        if at < 0 or item.find(needle, at + 1) >= 0:  # encoded otherwise, or not only once
            return
        start = at + len(key) + 1  # after the opening quote
        end = at + len(needle) - 1  # the closing quote
        self._tpl = (item[:start], item[end:], start, start + len(item) - end, state, reasoning)

    def _on_event(self, item: bytes | SSEEvent, out: list[StreamEvent]) -> None:
        """[DONE], and named events: FastGPT's chat chunks ("answer"), errors, anything else."""
        if item.__class__ is bytes:
            self.done = True  # [DONE]
            return
        assert isinstance(item, SSEEvent)
        name, data = item.event, item.data
        if data == _DONE:
            self.done = True
            return
        if name in _CHUNK_EVENTS:  # a chat chunk under another event name: as a plain one
            self._on_items([data], out)
            return
        try:
            parsed: Any = _json.loads_body(data)
        except orjson.JSONDecodeError:
            parsed = data.decode("utf-8", "replace")
        if name == "error":
            self._raise_server_error(parsed if isinstance(parsed, dict) else {"error": {"message": str(parsed)}})
        se = ServerEvent(name, parsed)
        self.server_events.append(se)
        self._others += 1
        out.append(se)

    def _not_json(self, data: bytes) -> StreamError:
        return self._error(f"the server sent a stream chunk that is not JSON: {_preview(data)}",
                           body=data.decode("utf-8", "replace"))

    def _on_chunk(self, obj: Any, out: list[StreamEvent]) -> None:
        """One parsed chat / completion chunk: events out, fragments kept."""
        if obj.__class__ is not dict:
            raise self._error(f"the server sent a stream chunk that is not a JSON object: {_preview(orjson.dumps(obj))}",
                              body=obj)
        special = self._first
        choices = obj.get("choices")
        if "error" in obj and obj["error"]:
            self._raise_server_error(obj)  # {"error": {...}}, even beside choices (OpenRouter)
        if choices:
            chat = self.chat
            for ch in choices:
                if ch.__class__ is not dict:
                    continue
                get = ch.get
                idx = get("index", 0)
                if idx.__class__ is not int:
                    idx = 0
                st = self._choices.get(idx)
                if st is None:
                    st = self._choices[idx] = _Choice(idx)
                if chat:
                    delta = get("delta")
                    if delta:
                        content = delta.get("content")
                        if content.__class__ is str and len(delta) == 1:
                            # a plain text delta and nothing else (the same as the hot path at
                            # the top of _on_items, which takes most such chunks; change both)
                            st.has_content = True
                            if content:
                                st.content.append(content)
                                out.append(ContentDelta(content, idx))
                        else:
                            self._on_delta(st, delta, out)
                else:
                    text = get("text")
                    if text and text.__class__ is str:
                        st.has_content = True
                        st.content.append(text)
                        out.append(ContentDelta(text, idx))
                lp = get("logprobs")
                if lp:
                    self._on_logprobs(st, lp)
                ids = get("token_ids")
                if ids:
                    if ids.__class__ is list:
                        if st.token_ids is None:
                            st.token_ids = []
                        st.token_ids.extend(ids)
                fr = get("finish_reason")
                if fr:
                    special = True
                    st.finish_reason = fr
                    sr = get("stop_reason")
                    if sr is not None:
                        st.stop_reason = sr
                    if st.tools and not st.done_tools:
                        st.done_tools = True
                        if fr != "length":  # a call cut by the token limit is never complete
                            calls = st.tool_calls()
                            self._others += len(calls)
                            out.extend(ToolCallComplete(idx, tc) for tc in calls)
                if not ch.keys() <= _CHOICE_KNOWN:
                    st.extra = _keep(st.extra, ch, _CHOICE_KNOWN)
        else:
            if obj.get("object") == "error":
                self._raise_server_error(obj)  # vLLM's flat error object
            special = True
        usage = obj.get("usage")
        if usage:
            self._usage = usage
            special = True
        if special:
            self._on_special(obj)
        if not obj.keys() <= _KNOWN:
            self._keep_top(obj)

    def _on_delta(self, st: _Choice, delta: Any, out: list[StreamEvent]) -> None:
        if delta.__class__ is not dict:
            return
        idx = st.index
        if not delta.keys() <= _DELTA_KNOWN:
            st.msg_extra = _keep(st.msg_extra, delta, _DELTA_KNOWN)
        content = delta.get("content")
        if content is not None:
            if content.__class__ is str:
                st.has_content = True
                if content:
                    st.content.append(content)
                    out.append(ContentDelta(content, idx))
            else:  # a list of content parts (Mistral): text parts and thinking parts
                text, thinking = split_content(content)
                if thinking:
                    if st.reasoning_key is None:
                        st.reasoning_key = _PARTS
                    st.reasoning.append(thinking)
                    out.append(ReasoningDelta(thinking, idx))
                if text is not None:
                    st.has_content = True
                    if text:
                        st.content.append(text)
                        out.append(ContentDelta(text, idx))
        reasoning = delta.get("reasoning_content")
        if reasoning is not None:
            st.reasoning_key = "reasoning_content"
        else:
            reasoning = delta.get("reasoning")
            if reasoning is not None and st.reasoning_key is None:
                st.reasoning_key = "reasoning"
        if reasoning:
            if reasoning.__class__ is not str:
                reasoning = str(reasoning)
            st.reasoning.append(reasoning)
            out.append(ReasoningDelta(reasoning, idx))
        refusal = delta.get("refusal")
        if refusal and refusal.__class__ is str:
            st.refusal.append(refusal)
            out.append(RefusalDelta(refusal, idx))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            self._on_tool_calls(st, tool_calls, out)

    def _on_tool_calls(self, st: _Choice, tool_calls: Any, out: list[StreamEvent]) -> None:
        if tool_calls.__class__ is not list:
            return
        for tc in tool_calls:
            if tc.__class__ is not dict:
                continue
            ti = tc.get("index", 0)
            if ti.__class__ is not int:
                ti = 0
            slot = st.tools.get(ti)
            if slot is None:
                slot = st.tools[ti] = [None, None, None, []]
            tid = tc.get("id")
            if tid and tid.__class__ is str:
                slot[0] = tid  # an empty id never overwrites an earlier one
            ttype = tc.get("type")
            if ttype and ttype.__class__ is str:
                slot[1] = ttype
            fn = tc.get("function")
            name = None
            args = ""
            if fn.__class__ is dict:
                name = fn.get("name")
                if name and name.__class__ is str:
                    slot[2] = name  # likewise an empty name
                else:
                    name = None
                a = fn.get("arguments")
                if a:
                    args = a if a.__class__ is str else orjson.dumps(a).decode()
                    slot[3].append(args)
            out.append(ToolCallDelta(st.index, ti, tid if tid and tid.__class__ is str else None, name, args))

    def _on_logprobs(self, st: _Choice, lp: Any) -> None:
        if not self.chat:  # legacy completions: merge {tokens, token_logprobs, top_logprobs, text_offset}
            if lp.__class__ is dict:
                if st.logprobs is None:
                    st.logprobs = {}
                merged = st.logprobs
                for k, v in lp.items():
                    cur = merged.get(k)
                    if v.__class__ is list:
                        if cur.__class__ is list:
                            cur.extend(v)
                        else:
                            merged[k] = list(v)
                    elif k not in merged:
                        merged[k] = v
            return
        if lp.__class__ is dict:
            content = lp.get("content")
            if content.__class__ is list:
                if st.logprobs is None:
                    st.logprobs = []
                st.logprobs.extend(content)

    def _on_special(self, obj: dict[str, Any]) -> None:
        """The first chunk, finish chunks and usage chunks carry the metadata: fold it in."""
        self._first = False
        meta = self._meta
        for k in ("id", "object", "created", "model"):
            v = obj.get(k)
            if v and not meta[k]:
                meta[k] = v

    def _keep_top(self, obj: dict[str, Any]) -> None:
        """A chunk's top-level keys that are not modelled: the latest non-null value wins (two
        objects are merged: Groq's ``x_groq`` carries its usage on the last chunk only)."""
        extras = self._extras
        for k, v in obj.items():
            if k in _KNOWN:
                continue
            if v is None:
                extras.setdefault(k, None)
                continue
            old = extras.get(k)
            extras[k] = {**old, **v} if old.__class__ is dict and v.__class__ is dict else v

    # -- ends ----------------------------------------------------------------

    def finish(self) -> list[StreamEvent]:
        """The body ended: flush, check the stream was complete, return the closing events."""
        out: list[StreamEvent] = []
        self._on_items(self._sse.flush_data(), out)
        if self._partials is not None and out:
            out = self._with_partials(out)
        if not self.done:
            unfinished = [c.index for c in self._choices.values() if not c.finish_reason]
            if not self._choices or unfinished:
                raise self._error("the stream ended before the server finished it "
                                  "(no [DONE] and no finish_reason): the connection was probably cut")
        for st in self._choices.values():
            if st.tools and not st.done_tools:
                st.done_tools = True
                out.extend(ToolCallComplete(st.index, tc) for tc in st.tool_calls() if not tc.incomplete)
        response: Any = self.response()
        self._final = response
        if self._output is not None:
            self._output.apply(response)  # OutputParseError (with .response) when it does not validate
        if response.usage is not None:
            out.append(UsageEvent(response.usage))
        out.append(Done(response.finish_reason, response))  # (the first choice's)
        return out

    def raw(self) -> dict[str, Any]:
        """The accumulated response as a non-streamed body would look."""
        meta = self._meta
        chat = self.chat
        choices = []
        for i in sorted(self._choices):
            st = self._choices[i]
            logprobs: Any = st.logprobs
            if chat and logprobs is not None:
                logprobs = {"content": logprobs}
            c: dict[str, Any] = {"index": i}
            if chat:
                c["message"] = st.message(True)
            else:
                c["text"] = "".join(st.content)
            c["logprobs"] = logprobs
            c["finish_reason"] = st.finish_reason
            if st.stop_reason is not None:
                c["stop_reason"] = st.stop_reason
            if st.token_ids is not None:
                c["token_ids"] = st.token_ids
            if st.extra:
                c.update(st.extra)
            choices.append(c)
        raw: dict[str, Any] = {
            "id": meta["id"],
            "object": ("chat.completion" if chat else "text_completion"),
            "created": meta["created"],
            "model": meta["model"],
            "choices": choices,
            "usage": self._usage,
        }
        raw.update(self._extras)
        return raw

    def response(self) -> R:
        """The response accumulated so far (``ChatCompletionResponse`` or ``CompletionResponse``)."""
        if self._final is not None:
            final: R = self._final
            return final
        return self._parse(self.raw())

    def _error(self, message: str, **kw: Any) -> StreamError:
        return StreamError(message, partial=self.response(), **kw)

    def _raise_server_error(self, obj: dict[str, Any]) -> None:
        message, typ, code, _ = parse_error_object(obj)
        text = message or "the server reported an error inside the stream"
        err = StreamError(
            text,  # .message: the server's own words, verbatim
            partial=self.response(), body=obj, type=typ, code=code,
            status_code=code if isinstance(code, int) else None,
        )
        err.args = (f"the server reported an error mid-stream: {' '.join(text.split())}",)  # str(e): one line
        raise err from None

    def connection_error(self, exc: APIConnectionError) -> StreamError:
        """The StreamError for a connection that broke or went silent mid-stream."""
        if isinstance(exc, APITimeoutError):
            return StreamTimeoutError(f"stream stalled: {exc}", partial=self.response(), url=self.url)
        return self._error(f"stream cut: {exc}")


def _preview(data: bytes) -> str:
    text = data[:120].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > 120 else ""))


class _StreamBase(Generic[R]):
    """What ChatStream and AsyncChatStream share: the response's metadata and timings, and
    what happens when the stream ends (finished, broken or closed)."""

    def __init__(self, response: Response, accumulator: StreamAccumulator[R]) -> None:
        self.response_headers = response.headers
        self.status_code = response.status
        self._response = response
        self._acc = accumulator
        self._closed = False
        # Called with the final response once the stream finished well, before the
        # closing events are yielded (a conversation commits its turn here).
        self.on_complete: Callable[[R], None] | None = None
        timing = response.timing
        if timing is None:  # a stream made from a Response by hand (not by a client)
            now = perf_counter()
            timing = response.timing = Timing(now, response.received_at or now, queued=response.queued)
        timing._marks = accumulator.marks
        self.timing: Timing = timing
        self._span: Any = timing._span

    @property
    def headers(self) -> Any:
        """The response headers (``response_headers``)."""
        return self.response_headers

    @property
    def request_id(self) -> str | None:
        """The server's ``x-request-id`` header, when it sent one."""
        return header(self.response_headers, "x-request-id")

    @property
    def server_events(self) -> list[ServerEvent]:
        """Named events that were not chat chunks (e.g. FastGPT ``flowResponses``)."""
        return self._acc.server_events

    def partial(self) -> R:
        """What has been accumulated so far."""
        return self._acc.response()

    def _finished(self) -> None:
        """The stream ended well: stamp the end, give the final response its metadata."""
        acc = self._acc
        timing = self.timing
        timing._end = perf_counter()
        attach(acc.response(), self._response)
        if timing._usage is None:
            timing._usage = acc._usage
        self._ended(None)

    def _ended(self, error: BaseException | None) -> None:
        """The stream ended (finished, broke with ``error``, or closed): stamp it, end the span."""
        timing = self.timing
        if timing._end is None:
            timing._end = perf_counter()
        span = self._span
        if span is not None:
            self._span = None
            span.end_stream(self._acc, error)


class ChatStream(_StreamBase[R]):
    """An iterator of typed stream events, and a context manager that closes the connection.

    Events: ``ReasoningDelta``, ``ContentDelta``, ``RefusalDelta``, ``ToolCallDelta``,
    ``ToolCallComplete``, ``PartialParsed`` (with an output type), ``ServerEvent``,
    ``UsageEvent``, and ``Done`` last.
    """

    def __init__(self, response: Response, accumulator: StreamAccumulator[R]) -> None:
        super().__init__(response, accumulator)
        self._it = self._events()

    def _events(self) -> Generator[StreamEvent, None, None]:
        acc = self._acc
        clock = perf_counter
        try:
            try:
                for piece in self._response.iter_bytes():
                    events = acc.feed(piece, clock())
                    if events:
                        yield from events
            except APIConnectionError as e:
                raise acc.connection_error(e) from e
            closing = acc.finish()
            self._finished()
            if self.on_complete is not None:
                self.on_complete(acc.response())
            yield from closing
        except BaseException as e:
            self._ended(e)
            raise
        finally:
            self.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._it

    def __next__(self) -> StreamEvent:
        return next(self._it)

    def text_stream(self) -> Iterator[str]:
        """Only the content text, piece by piece."""
        for ev in self._it:
            if ev.__class__ is ContentDelta:
                yield ev.text

    text = text_stream

    def final_response(self) -> R:
        """Consume the rest of the stream; return the accumulated response."""
        for _ in self._it:
            pass
        return self._acc.response()

    def close(self) -> None:
        """Stop reading and release the connection."""
        if not self._closed:
            self._closed = True
            self._ended(None)
            self._response.close()

    def __enter__(self) -> ChatStream[R]:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        self._it.close()


class AsyncChatStream(_StreamBase[R]):
    """The async twin of ``ChatStream``: ``async for``, ``async with``, ``await final_response()``."""

    def __init__(self, response: Response, accumulator: StreamAccumulator[R]) -> None:
        super().__init__(response, accumulator)
        self._it = self._events()

    async def _events(self) -> AsyncGenerator[StreamEvent, None]:
        acc = self._acc
        clock = perf_counter
        try:
            try:
                async for piece in self._response.aiter_bytes():
                    events = acc.feed(piece, clock())
                    for ev in events:
                        yield ev
            except APIConnectionError as e:
                raise acc.connection_error(e) from e
            closing = acc.finish()
            self._finished()
            if self.on_complete is not None:
                self.on_complete(acc.response())
            for ev in closing:
                yield ev
        except BaseException as e:
            self._ended(e)
            raise
        finally:
            await self.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._it

    async def __anext__(self) -> StreamEvent:
        return await self._it.__anext__()

    async def text_stream(self) -> AsyncIterator[str]:
        """Only the content text, piece by piece."""
        async for ev in self._it:
            if ev.__class__ is ContentDelta:
                yield ev.text

    text = text_stream

    async def final_response(self) -> R:
        """Consume the rest of the stream; return the accumulated response."""
        async for _ in self._it:
            pass
        return self._acc.response()

    async def close(self) -> None:
        """Stop reading and release the connection."""
        if not self._closed:
            self._closed = True
            self._ended(None)
            r = self._response.close()
            if inspect.isawaitable(r):
                await r

    async def __aenter__(self) -> AsyncChatStream[R]:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
        await self._it.aclose()
