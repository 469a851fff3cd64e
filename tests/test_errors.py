"""One owner for errors: every error's ``url`` loses its user:password@, and the error types
live (and are exported) in one place."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vllm_client
from vllm_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncVllmClient,
    InvalidRequestError,
    MockResponse,
    MockTransport,
    NotFoundError,
    ResponseDecodeError,
    StreamError,
    StreamTimeoutError,
    ToolSchemaError,
    VllmClient,
    VllmError,
)
from vllm_client._exceptions import error_from_response, load_json_object

SECRET_URL = "http://alice:s3cret@example.test:8000/v1/chat/completions"


@pytest.mark.parametrize("make", [
    lambda: APIConnectionError("x", url=SECRET_URL),
    lambda: APITimeoutError("x", url=SECRET_URL),
    lambda: error_from_response(404, {}, b'{"error": {"message": "nope"}}', url=SECRET_URL, method="POST"),
    lambda: ResponseDecodeError("x", body=b"", url=SECRET_URL),
    lambda: StreamTimeoutError("x", url=SECRET_URL),
])
def test_every_error_redacts_its_url(make):
    e = make()
    assert isinstance(e, VllmError)
    assert e.url == "http://***@example.test:8000/v1/chat/completions"
    assert "s3cret" not in str(e) and "alice" not in repr(e.url)


def test_a_url_set_later_is_redacted_too():
    e = StreamError("cut")
    assert e.url is None
    e.url = SECRET_URL
    assert "s3cret" not in (e.url or "")


def test_load_json_object_gives_typed_errors_with_redacted_url():
    with pytest.raises(ResponseDecodeError) as info:
        load_json_object(b"<html>", what="chat completion", url=SECRET_URL)
    assert info.value.body == "<html>" and "s3cret" not in (info.value.url or "")
    with pytest.raises(NotFoundError) as status:  # an error object under a 200
        load_json_object(b'{"object": "error", "message": "no model", "code": 404}', what="x", url=SECRET_URL)
    assert status.value.message == "no model" and "s3cret" not in (status.value.url or "")


def test_stream_timeout_and_tool_schema_errors_are_exported_with_their_bases():
    assert issubclass(StreamTimeoutError, StreamError) and issubclass(StreamTimeoutError, APITimeoutError)
    assert issubclass(ToolSchemaError, InvalidRequestError) and issubclass(ToolSchemaError, TypeError)
    assert {"StreamTimeoutError", "ToolSchemaError"} <= set(vllm_client.__all__)
    with pytest.raises(ToolSchemaError):
        vllm_client.tool(lambda *args: None)


@pytest.mark.parametrize("module", ["vllm_client._urls", "vllm_client._exceptions", "vllm_client._config"])
def test_error_and_url_modules_import_alone(module):
    # No import circle: each of these imports first, in a fresh interpreter.
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_status_error_from_either_client_carries_the_url_without_credentials(kind):
    mock = MockTransport(lambda req: MockResponse(404, json={"error": {"message": "no such model"}}))
    url = "http://alice:s3cret@example.test:8000/v1"
    if kind == "sync":
        with VllmClient(url, transport=mock, max_retries=0) as c:
            with pytest.raises(NotFoundError) as info:
                c.chat.completions().create().model("m").user_message("hi").send()
    else:
        async with AsyncVllmClient(url, transport=mock, max_retries=0) as ac:
            with pytest.raises(NotFoundError) as info:
                await ac.chat.completions().create().model("m").user_message("hi").send()
    # The client takes user:password@ out of the base URL up front (sent as Authorization), so the
    # request's URL, and the error's, never had them.
    assert info.value.url == "http://example.test:8000/v1/chat/completions"
    assert "s3cret" not in str(info.value) and "alice" not in str(info.value)
