"""Structured outputs into typed Python objects: a type given where a schema goes
(``response_format(T)``, ``json_schema(T)``, ``structured_outputs(json=T | choice=E)``).

One place for the whole path, pure (no I/O), used by both clients and by every endpoint
that takes an output type:

- ``structured_output(T)`` / ``choice_output(E)``: a ``StructuredOutput``, with the schema to
  send (from ``_schema.type_schema``, the converter behind ``tool(fn)``; strict mode) and the
  parse (pydantic's ``model_validate_json`` for a pydantic model, else ``orjson`` + the SDK's
  validating conversion ``_convert``). ``parse_reply(...)`` also knows refusals, tool calls
  and the ``length`` cut; ``apply(response)`` fills a chat response's ``parsed`` fields.
- ``PartialJSON``: an incremental JSON parser for the ``PartialParsed`` stream events,
  linear in the length of the text (each character is looked at once).
- ``reask_flow``: ``parse_retries(n)``, sending the validation error back to the model.
"""

from __future__ import annotations

import enum
import re
import typing
from collections.abc import Callable, Generator
from typing import Any

import orjson

from . import _json
from ._annotations import _is_enum, _is_pydantic, _isclass, _strip_annotated
from ._convert import ConversionError, _convert
from ._exceptions import InvalidRequestError, OutputParseError, ToolSchemaError
from ._schema import type_schema

__all__ = ["StructuredOutput", "structured_output", "choice_output", "PartialJSON", "reask_flow",
           "reask_message"]

_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _schema_name(tp: Any) -> str:
    name = getattr(tp, "__name__", None) if _isclass(tp) else None
    if not isinstance(name, str) or not name:
        return "output"
    return _NAME.sub("_", name)[:64]


def _unfence(text: str) -> str | None:
    """The JSON inside a Markdown code fence (what unconstrained models like to send), or None."""
    t = text.strip()
    if not t.startswith("```"):
        return None
    first = t.find("\n")
    if first < 0:
        return None
    body = t[first + 1:]
    end = body.rfind("```")
    return (body[:end] if end >= 0 else body).strip()


class StructuredOutput:
    """What an output type means for a request: ``schema`` (the JSON schema to send; for a
    choice, ``choices``: the strings to choose from), ``name`` (for ``json_schema``), and
    ``parse(text)`` -> the validated instance (raises ``OutputParseError``).

    ``kind`` is ``"json"`` (JSON text parsed into ``type``) or ``"choice"`` (the text is one
    of ``choices``; the result the Enum member or Literal value)."""

    __slots__ = ("type", "kind", "schema", "name", "strict", "choices", "_values", "_pydantic", "_parsers")

    def __init__(self, tp: Any, kind: str, schema: dict[str, Any] | None, name: str, strict: bool,
                 choices: list[str] | None = None, values: dict[str, Any] | None = None) -> None:
        self.type = tp
        self.kind = kind
        self.schema = schema
        self.name = name
        self.strict = strict
        self.choices = choices
        self._values = values or {}
        self._pydantic = _is_pydantic(tp) and callable(getattr(tp, "model_validate_json", None))
        self._parsers: dict[Any, Callable[[dict[str, Any]], Any]] = {}

    def __repr__(self) -> str:
        return f"StructuredOutput({getattr(self.type, '__name__', self.type)!r}, kind={self.kind!r})"

    # -- parsing -----------------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The validated instance for the model's text; ``OutputParseError`` (``.response`` None)
        when it is not JSON, does not validate, or (a choice) is not one of the choices."""
        if self.kind == "choice":
            return self._choose(text)
        if self._pydantic:
            return self._parse_pydantic(text)
        try:
            value = _json.loads(text)
        except orjson.JSONDecodeError as e:
            inner = _unfence(text)
            if inner is None:
                raise _not_json(text, str(e)) from None
            try:
                value = _json.loads(inner)
            except orjson.JSONDecodeError as e2:
                raise _not_json(text, str(e2)) from None
        try:
            return _convert(value, self.type)
        except ConversionError as e:
            raise OutputParseError(f"the model's output does not validate as {self._type_name()}: {e}",
                                   content=text, errors=e.errors) from None

    def _parse_pydantic(self, text: str, retry: bool = True) -> Any:
        try:
            return self.type.model_validate_json(text)
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            found = getattr(e, "errors", None)
            errors = [dict(x) for x in found(include_url=False)] if callable(found) else [{"loc": [], "msg": str(e)}]
            for x in errors:
                x["loc"] = list(x.get("loc") or ())
                x.pop("ctx", None)  # may hold exception objects: keep the errors JSON-friendly
            if errors and errors[0].get("type") == "json_invalid":
                inner = _unfence(text) if retry else None
                if inner is not None:
                    try:
                        return self._parse_pydantic(inner, retry=False)
                    except OutputParseError as e2:
                        e2.content = text
                        raise
                raise OutputParseError(f"the model's output is not valid JSON ({errors[0].get('msg')}): "
                                       f"{_preview(text)}", content=text, errors=errors) from None
            summary = "; ".join(_error_line(x) for x in errors[:10])
            raise OutputParseError(f"the model's output does not validate as {self._type_name()}: {summary}",
                                   content=text, errors=errors) from None

    def _choose(self, text: str) -> Any:
        values = self._values
        if text in values:
            return values[text]
        t = text.strip()
        if t in values:
            return values[t]
        msg = f"expected one of {self.choices!r}, got {_preview(text)}"
        raise OutputParseError(f"the model's output is not one of the choices: {msg}", content=text,
                               errors=[{"loc": [], "msg": msg}])

    def _type_name(self) -> str:
        return getattr(self.type, "__name__", None) or repr(self.type).replace("typing.", "")

    def parse_reply(self, content: str | None, *, refusal: str | None = None, finish_reason: str | None = None,
                    has_tool_calls: bool = False) -> Any:
        """``parse`` for one reply of the model: None for a refusal, or for tool calls without
        text (a tool-loop round); ``OutputParseError`` for a reply cut at ``max_tokens``
        (``finish_reason == "length"``) or without text."""
        if refusal:
            return None
        if has_tool_calls and not content:
            return None
        if finish_reason == "length":
            err = OutputParseError(
                "the output was cut at max_tokens (finish_reason 'length') before it was complete: "
                "raise max_tokens / max_completion_tokens", content=content,
                errors=[{"loc": [], "msg": "output cut at max_tokens (finish_reason 'length')"}])
            err._cut = True
            raise err
        if content is None:
            raise OutputParseError("the model sent no text to parse (content is null)", content=None,
                                   errors=[{"loc": [], "msg": "no content"}])
        return self.parse(content)

    def apply(self, response: Any) -> Any:
        """Fill ``parsed`` on every choice of a chat response; return it. An ``OutputParseError``
        gets ``.response`` (the whole response, every choice kept)."""
        for c in response.choices:
            try:
                c.parsed = self.parse_reply(c.content, refusal=c.refusal, finish_reason=c.finish_reason,
                                            has_tool_calls=bool(c.tool_calls))
            except OutputParseError as e:
                e.response = response
                if len(response.choices) > 1:
                    e.args = (f"choice {c.index}: {e.args[0]}",)
                raise
        return response

    def __getstate__(self) -> dict[str, Any]:  # (a pickled builder): the parsers are made again
        return {k: getattr(self, k) for k in self.__slots__ if k != "_parsers"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, val in state.items():
            setattr(self, k, val)
        self._parsers = {}

    def parser(self, parse: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """``parse`` (an endpoint's ``from_dict``) followed by ``apply``: a builder's ``_parse``."""
        found = self._parsers.get(parse)
        if found is None:
            apply = self.apply

            def parse_typed(d: dict[str, Any]) -> Any:
                return apply(parse(d))

            found = self._parsers[parse] = parse_typed
        return found

    def partial(self) -> PartialJSON | None:
        """A fresh incremental parser for the streamed text (None for a choice: not JSON)."""
        return PartialJSON() if self.kind == "json" else None


def _not_json(text: str, why: str) -> OutputParseError:
    return OutputParseError(f"the model's output is not valid JSON ({why}): {_preview(text)}", content=text,
                            errors=[{"loc": [], "msg": f"invalid JSON: {why}"}])


def _preview(text: str) -> str:
    return repr(text[:200] + ("..." if len(text) > 200 else ""))


def _error_line(error: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in error.get("loc") or ())
    return f"{loc}: {error.get('msg')}" if loc else str(error.get("msg"))


_CACHE: dict[tuple[Any, bool], StructuredOutput] = {}


def structured_output(tp: Any, *, strict: bool = True, where: str = "response_format") -> StructuredOutput:
    """The ``StructuredOutput`` of a type: a pydantic model, a dataclass, a TypedDict, an Enum or
    any annotation ``tool(fn)`` accepts (``list[Item]``, ``Item | None``, ...). Cached per type.
    Raises ``ToolSchemaError`` (an ``InvalidRequestError``) for a type that has no JSON schema."""
    key = (tp, bool(strict))
    try:
        found = _CACHE.get(key)
    except TypeError:  # an unhashable annotation (Annotated with a dict, say): not cached
        key, found = None, None  # type: ignore[assignment]
    if found is not None:
        return found
    if isinstance(tp, (str, bytes)) or tp is None:
        raise InvalidRequestError(f"{where}({tp!r:.60}): expected a schema dict or a type")
    schema = type_schema(tp, strict=strict, where=where)
    out = StructuredOutput(tp, "json", schema, _schema_name(tp), strict)
    if key is not None and len(_CACHE) < 1024:
        _CACHE[key] = out
    return out


def _choice_text(value: Any) -> str:
    return value if isinstance(value, str) else _json.dumps(value).decode()


def choice_output(tp: Any, *, where: str = "structured_outputs(choice=)") -> StructuredOutput:
    """The ``StructuredOutput`` of an Enum subclass or a ``Literal[...]``: the strings to choose
    from (the values; non-strings as JSON text) and their members / values back."""
    inner = _strip_annotated(tp)
    if _is_enum(inner):
        members: list[Any] = list(inner)
        raw = [m.value for m in members]
    elif typing.get_origin(inner) is typing.Literal:
        members = list(typing.get_args(inner))
        raw = [m.value if isinstance(m, enum.Enum) else m for m in members]
    else:
        raise InvalidRequestError(f"{where}: expected a list of strings, an Enum subclass or a Literal[...], "
                                  f"got {tp!r:.80}")
    values: dict[str, Any] = {}
    for m, r in zip(members, raw, strict=True):
        if not isinstance(r, (str, int, float, bool)) or r is None:
            raise ToolSchemaError(f"{where}: the value {r!r} of {tp!r:.60} is not a string or a JSON scalar")
        values.setdefault(_choice_text(r), m)
    if not values:
        raise InvalidRequestError(f"{where}: {tp!r:.60} has no values")
    return StructuredOutput(tp, "choice", None, _schema_name(inner), True, list(values), values)


# -- re-asking -------------------------------------------------------------------------------

def reask_message(error: OutputParseError) -> str:
    """The user message that sends a validation error back to the model."""
    lines = "; ".join(_error_line(x) for x in error.errors[:10]) or str(error)
    return (f"Your previous answer could not be used: {lines}. Answer again with only the corrected "
            "output, matching the requested format exactly.")


def reask_flow(client: Any, builder: Any, retries: int) -> Generator[Any, Any, Any]:
    """``send()`` with ``parse_retries(n)``: on an ``OutputParseError`` (not a ``length`` cut),
    send the conversation again with the model's answer and the error appended; at most
    ``retries`` times (``retries + 1`` requests). The last error is raised as is."""
    from ._conversation import clone_with_messages
    from ._types import add_usage, set_total_usage

    b = builder
    messages = list(builder.build().get("messages") or [])
    attempt = 0
    total = None  # the usage of every attempt (total_usage of the response, or of the error's)
    while True:
        try:
            response = yield from client.builder_flow(b, b._parse, b._what)
            set_total_usage(response, add_usage(total, response))
            return response
        except OutputParseError as e:
            total = add_usage(total, e.response)
            if e.response is not None:
                set_total_usage(e.response, total)
            if attempt >= retries or e._cut:
                raise
            attempt += 1
            messages = [*messages, {"role": "assistant", "content": e.content or ""},
                        {"role": "user", "content": reask_message(e)}]
            b = clone_with_messages(builder, messages)


# -- partial JSON ------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\r\n]*")
_STR_CHUNK = re.compile(r'[^"\\]*')
_NUMBER = re.compile(r"[-+.eE0-9]*")  # the characters of a number (checked when it ends)
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
# what the parser expects next
_VALUE, _VALUE_OR_END, _KEY, _KEY_OR_END, _COLON, _COMMA_OR_END, _DONE = range(7)
_SHOW_ALWAYS = 4096  # an open string shorter than this is shown after every piece


class PartialJSON:
    """Incremental JSON: ``feed(text)`` returns whether ``value`` grew; ``value`` is the JSON
    read so far, open strings and containers closed (plain dicts, lists and scalars; a number
    or literal shows once it is complete). ``value`` is one object updated in place as text
    arrives (copy it to keep a snapshot). Text before the first ``{`` / ``[`` / ``"`` (a code
    fence) and after the value ends is ignored; on invalid JSON the value stops growing.

    Linear time: each character is looked at once; an open string longer than 4 KB is
    re-joined only when it has grown by an eighth since last shown."""

    __slots__ = ("value", "started", "failed", "_skipped", "_want", "_stack", "_keys", "_buf", "_in_str", "_parts",
                 "_str_len", "_shown_len", "_slot", "_num")

    def __init__(self) -> None:
        self.value: Any = None
        self.started = False
        self.failed = False
        self._skipped = False
        self._want = _VALUE
        self._stack: list[Any] = []  # open containers, innermost last
        self._keys: list[Any] = []  # per open dict: the key being read; per list: None
        self._buf = ""  # an incomplete token carried to the next feed
        self._in_str = 0  # 0: not in a string; 1: a key; 2: a value
        self._parts: list[str] = []
        self._str_len = 0
        self._shown_len = 0
        self._slot: Any = None  # (container, key/index) of the open value string, None at the root
        self._num: list[str] | None = None  # the pieces of a number that may go on in the next feed

    def _attach(self, v: Any) -> None:
        stack = self._stack
        if not stack:
            self.value = v
            self.started = True
            return
        top = stack[-1]
        if top.__class__ is list:
            top.append(v)
        else:
            top[self._keys[-1]] = v

    def _after_value(self) -> None:
        self._want = _COMMA_OR_END if self._stack else _DONE

    def _show_string(self) -> None:
        text = "".join(self._parts)
        self._parts = [text]
        self._shown_len = self._str_len
        slot = self._slot
        if slot is None:
            self.value = text
        else:
            slot[0][slot[1]] = text

    def _number(self, text: str) -> bool:
        """Attach a complete number (an integer exactly, whatever its size up to Python's 4300
        digits); False when it is not a JSON number."""
        try:
            num = int(text) if _INT.fullmatch(text) else _json.loads(text)
        except (ValueError, orjson.JSONDecodeError):  # (JSONDecodeError is a ValueError)
            return False
        if num.__class__ is not float and num.__class__ is not int:
            return False
        self._attach(num)
        self._after_value()
        return True

    def feed(self, text: str) -> bool:
        """Read the next piece of the text; True when ``value`` changed."""
        if self.failed or self._want == _DONE:
            return False
        grew = False
        num = self._num
        if num is not None:  # a number that may go on: only the new text is scanned (linear)
            j = _NUMBER.match(text).end()  # type: ignore[union-attr]
            if j >= len(text):
                num.append(text)
                return False
            self._num = None
            num.append(text[:j])
            if not self._number("".join(num)):
                self.failed = True
                return False
            grew = True
            text = text[j:]
        s = self._buf + text if self._buf else text
        self._buf = ""
        n = len(s)
        i = 0
        str_grew = False
        stack = self._stack
        while i < n:
            if self._in_str:
                j = _STR_CHUNK.match(s, i).end()  # type: ignore[union-attr]
                if j > i:
                    self._parts.append(s[i:j])
                    self._str_len += j - i
                    str_grew = True
                    i = j
                if i >= n:
                    break
                if s[i] == '"':  # the string ends
                    i += 1
                    value = "".join(self._parts)
                    key = self._in_str == 1
                    self._in_str = 0
                    self._parts = []
                    str_grew = False
                    if key:
                        self._keys[-1] = value
                        self._want = _COLON
                    else:
                        slot = self._slot
                        if slot is None:
                            self.value = value
                        else:
                            slot[0][slot[1]] = value
                        if self._str_len != self._shown_len:
                            grew = True
                        self._after_value()
                    continue
                # a backslash escape
                if i + 1 >= n:
                    self._buf = s[i:]
                    break
                e = s[i + 1]
                if e == "u":
                    if i + 6 > n:
                        self._buf = s[i:]
                        break
                    try:
                        code = int(s[i + 2:i + 6], 16)
                    except ValueError:
                        self.failed = True
                        break
                    step = 6
                    if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                        if i + 12 > n:
                            self._buf = s[i:]
                            break
                        if s[i + 6:i + 8] == "\\u":
                            try:
                                low = int(s[i + 8:i + 12], 16)
                            except ValueError:
                                low = 0
                            if 0xDC00 <= low < 0xE000:
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                                step = 12
                    ch = chr(code)
                    i += step
                else:
                    ch = _ESCAPES.get(e, "")
                    if not ch:
                        self.failed = True
                        break
                    i += 2
                self._parts.append(ch)
                self._str_len += len(ch)
                str_grew = True
                continue
            c = s[i]
            if c in " \t\r\n":
                i = _WS.match(s, i).end()  # type: ignore[union-attr]
                continue
            want = self._want
            if not self.started and not stack and c not in '{["':
                if self._skipped or not (c == "-" or "0" <= c <= "9" or c in _LITERALS):
                    self._skipped = True  # before the value (a code fence, a word): skipped
                    i += 1
                    continue
            if want == _VALUE or want == _VALUE_OR_END:
                if c == "{":
                    d: dict[str, Any] = {}
                    self._attach(d)
                    stack.append(d)
                    self._keys.append(None)
                    self._want = _KEY_OR_END
                    grew = True
                    i += 1
                elif c == "[":
                    lst: list[Any] = []
                    self._attach(lst)
                    stack.append(lst)
                    self._keys.append(None)
                    self._want = _VALUE_OR_END
                    grew = True
                    i += 1
                elif c == '"':
                    self._attach("")
                    if stack:
                        top = stack[-1]
                        self._slot = (top, len(top) - 1) if top.__class__ is list else (top, self._keys[-1])
                    else:
                        self._slot = None
                    self._in_str = 2
                    self._parts = []
                    self._str_len = self._shown_len = 0
                    grew = True
                    i += 1
                elif c == "-" or "0" <= c <= "9":
                    j = _NUMBER.match(s, i).end()  # type: ignore[union-attr]
                    if j >= n:  # it may go on in the next piece
                        self._num = [s[i:]]
                        break
                    if not self._number(s[i:j]):
                        self.failed = True
                        break
                    grew = True
                    i = j
                elif c in _LITERALS:
                    word, lit = _LITERALS[c]
                    if s.startswith(word, i):
                        self._attach(lit)
                        grew = True
                        self._after_value()
                        i += len(word)
                    elif word.startswith(s[i:]):
                        self._buf = s[i:]
                        break
                    else:
                        self.failed = True
                        break
                elif c == "]" and want == _VALUE_OR_END:
                    self._close()
                    i += 1
                else:
                    self.failed = True
                    break
            elif want == _KEY or want == _KEY_OR_END:
                if c == '"':
                    self._in_str = 1
                    self._parts = []
                    self._str_len = 0
                    i += 1
                elif c == "}" and want == _KEY_OR_END:
                    self._close()
                    i += 1
                else:
                    self.failed = True
                    break
            elif want == _COLON:
                if c != ":":
                    self.failed = True
                    break
                self._want = _VALUE
                i += 1
            elif want == _COMMA_OR_END:
                top = stack[-1]
                if c == ",":
                    self._want = _VALUE if top.__class__ is list else _KEY
                    i += 1
                elif (c == "}" and top.__class__ is dict) or (c == "]" and top.__class__ is list):
                    self._close()
                    i += 1
                else:
                    self.failed = True
                    break
            else:  # _DONE: the value is complete; what follows is ignored
                break
        if str_grew and self._in_str == 2 and (
                self._str_len < _SHOW_ALWAYS or (self._str_len - self._shown_len) * 8 >= self._shown_len):
            self._show_string()
            grew = True
        return grew

    def _close(self) -> None:
        self._stack.pop()
        self._keys.pop()
        self._after_value()

    def snapshot(self) -> Any:
        """``value`` as it is now, never changed by later ``feed``s: the open containers (the
        only ones that change) are copied, the closed ones shared (so a copy costs the size of
        the open containers, not of the whole value)."""
        stack = self._stack
        if not stack:
            return self.value  # complete (or a scalar): never changed again
        copies = [c.copy() for c in stack]
        keys = self._keys
        for i in range(1, len(copies)):
            parent = copies[i - 1]
            if parent.__class__ is list:
                parent[-1] = copies[i]
            else:
                parent[keys[i - 1]] = copies[i]
        return copies[0]
