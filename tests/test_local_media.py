"""Issue 31 item 8: local files only on request. A ``str`` image/audio/video is a URL and is never
read from disk; a local file is read only from a ``pathlib.Path`` (or ``data_url``), and must be a
regular file of the part's kind, within the size limit. Both clients."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import vllm_client
from vllm_client import InvalidRequestError, MockResponse, MockTransport, data_url

from ._both import CLIENTS, call, close, make

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(40)


def client_and_transport(kind: str) -> tuple[Any, MockTransport]:
    t = MockTransport(lambda r: MockResponse(json={"choices": [{"index": 0, "message": {"content": "ok"}}]}))
    return make(kind, "http://test.local/v1", transport=t, max_retries=0), t


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_string_is_a_url_never_a_file(kind: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    c, t = client_and_transport(kind)
    for s in ("/proc/self/environ", str(photo), "photo.png", "file:///etc/passwd", "ftp://x/y.png"):
        with pytest.raises(InvalidRequestError, match="not an http\\(s\\) or data URL.*pathlib.Path"):
            c.chat.completions().create().model("m").user_message("what?", images=[s])
        with pytest.raises(InvalidRequestError, match="never read from disk"):
            c.chat.completions().create().model("m").user_message("what?", audio=[s])
    assert t.requests == []  # refused before anything was sent
    # URLs go out as given
    b = c.chat.completions().create().model("m").user_message(
        "what?", images=["https://x/cat.jpg", "data:image/png;base64,AAAA"], audio=["http://x/a.wav"],
        videos=["https://x/v.mp4"])
    await call(kind, b, "send")
    parts = t.requests[0].json()["messages"][0]["content"]
    assert parts[1:] == [{"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                         {"type": "audio_url", "audio_url": {"url": "http://x/a.wav"}},
                         {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]
    await close(kind, c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_path_is_read_with_its_type_sniffed(kind: str, tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(PNG)
    (tmp_path / "really-a-jpeg.png").write_bytes(JPEG)  # the content decides, not the name
    (tmp_path / "hello.wav").write_bytes(WAV)
    (tmp_path / "clip.mp4").write_bytes(MP4)
    c, t = client_and_transport(kind)
    b = c.chat.completions().create().model("m").user_message(
        "what?", images=[tmp_path / "cat.png", tmp_path / "really-a-jpeg.png", JPEG],
        audio=[tmp_path / "hello.wav"], videos=[tmp_path / "clip.mp4"])
    await call(kind, b, "send")
    parts = t.requests[0].json()["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url", "audio_url", "video_url"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{b64(PNG)}"
    assert parts[2]["image_url"]["url"] == f"data:image/jpeg;base64,{b64(JPEG)}"
    assert parts[3]["image_url"]["url"] == f"data:image/jpeg;base64,{b64(JPEG)}"
    assert parts[4]["audio_url"]["url"] == f"data:audio/wav;base64,{b64(WAV)}"
    assert parts[5]["video_url"]["url"] == f"data:video/mp4;base64,{b64(MP4)}"
    await close(kind, c)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_path_of_the_wrong_kind_or_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    (tmp_path / "secrets.png").write_text("OPENAI_API_KEY=sk-live-123\n")  # a text file named .png
    (tmp_path / "cat.png").write_bytes(PNG)
    (tmp_path / "empty.png").write_bytes(b"")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    c, t = client_and_transport(kind)
    cases: list[tuple[str, Any, str]] = [
        ("images", tmp_path / "secrets.png", "not an image file"),
        ("images", tmp_path / "empty.png", "it is empty"),
        ("images", Path("/proc/self/environ"), "not an image file"),
        ("images", Path("/dev/zero"), "not a regular file"),
        ("images", fifo, "not a regular file"),  # (and no wait for a writer)
        ("images", tmp_path / "missing.png", "cannot read"),
        ("images", tmp_path, "not a regular file"),
        ("audio", tmp_path / "cat.png", "not an audio file"),
        ("videos", tmp_path / "cat.png", "not a video file"),
        ("images", b"OPENAI_API_KEY=sk-live-123", "bytes given are not an image"),
        ("images", 42, "not a URL, a pathlib.Path, bytes"),
    ]
    for arg, item, message in cases:
        with pytest.raises(InvalidRequestError, match=message) as e:
            c.chat.completions().create().model("m").user_message("what?", **{arg: [item]})
        assert "sk-live" not in str(e.value)  # the file's content is never shown
    with pytest.raises(InvalidRequestError, match="expected a list"):
        c.chat.completions().create().model("m").user_message("what?", images=tmp_path / "cat.png")  # type: ignore[arg-type]
    assert t.requests == []
    await close(kind, c)


def test_the_size_limit_is_documented_and_configurable(tmp_path: Path) -> None:
    assert vllm_client.MAX_MEDIA_BYTES == 32 * 1024 * 1024
    big = tmp_path / "big.png"
    with open(big, "wb") as f:  # a sparse file just over the limit: costs no disk
        f.write(PNG)
        f.truncate(vllm_client.MAX_MEDIA_BYTES + 1)
    c = vllm_client.VllmClient("http://test.local/v1", transport=MockTransport(lambda r: MockResponse(json={})))
    with pytest.raises(InvalidRequestError, match="more than the limit of 33554432"):
        c.chat.completions().create().user_message("x", images=[big])
    small = tmp_path / "small.png"
    small.write_bytes(PNG + bytes(1000))
    with pytest.raises(InvalidRequestError, match="more than the limit of 100 bytes"):
        data_url(small, "image", max_bytes=100)
    assert data_url(small, "image", max_bytes=2000).startswith("data:image/png;base64,")
    # data_url: the explicit helper takes a str path too (and bytes), checked the same way
    url = data_url(str(small))
    b = c.chat.completions().create().user_message("x", images=[url])
    assert b.build()["messages"][0]["content"][1]["image_url"]["url"] == url
    assert data_url(WAV, "audio") == f"data:audio/wav;base64,{b64(WAV)}"
    for bad, message in ((b"hello", "not an image"), ("/proc/self/environ", "not an image file"),
                         (str(small), "max_bytes=0")):
        with pytest.raises(InvalidRequestError, match=message):
            data_url(bad, max_bytes=0 if "max_bytes" in message else vllm_client.MAX_MEDIA_BYTES)
    with pytest.raises(InvalidRequestError, match="kind='text'"):
        data_url(small, "text")  # type: ignore[arg-type]
    c.close()


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "clip.wav"
    os.mkfifo(fifo)
    result: list[Any] = []

    def read() -> None:
        try:
            data_url(fifo, "audio")
        except InvalidRequestError as e:
            result.append(e)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    th.join(30)  # (a blocking open would wait for ever: fail, not hang)
    assert result and "not a regular file" in str(result[0])


@pytest.mark.parametrize("kind", CLIENTS)
async def test_transcription_files_are_checked_too(kind: str, tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("OPENAI_API_KEY=sk-live-123\n")
    (tmp_path / "hello.wav").write_bytes(WAV)
    c, t = client_and_transport(kind)
    b = c.audio.transcriptions().create().model("w")
    for bad, message in (("/proc/self/environ", "not an audio file"), (tmp_path / "notes.wav", "not an audio file"),
                         ("/dev/zero", "not a regular file")):
        with pytest.raises(InvalidRequestError, match=message):
            b.file(bad)
    with pytest.raises(InvalidRequestError, match="more than the limit of 10 bytes"):
        b.file(tmp_path / "hello.wav", max_bytes=10)
    b.file(str(tmp_path / "hello.wav"))  # file() is an explicit file setter: a str path is a path here
    assert t.requests == []
    t.handler = lambda r: MockResponse(json={"text": "hi"})
    r = await call(kind, b, "send")
    assert r.text == "hi"
    body = t.requests[0].body or b""
    assert b'filename="hello.wav"' in body and b"Content-Type: audio/wav" in body and WAV in body
    await close(kind, c)


@pytest.mark.parametrize(("data", "kind", "mime"), [
    (PNG, "image", "image/png"), (JPEG, "image", "image/jpeg"), (b"GIF89a" + bytes(10), "image", "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image", "image/webp"),
    (b"BM" + bytes(12) + (40).to_bytes(4, "little") + bytes(20), "image", "image/bmp"),
    (b"\x00\x00\x00\x1cftypavif" + bytes(8), "image", "image/avif"),
    (WAV, "audio", "audio/wav"), (b"ID3\x04\x00" + bytes(10), "audio", "audio/mpeg"),
    (b"\xff\xfb\x90\x00" + bytes(10), "audio", "audio/mpeg"), (b"\xff\xf1\x50\x80" + bytes(10), "audio", "audio/aac"),
    (b"fLaC" + bytes(10), "audio", "audio/flac"), (b"OggS" + bytes(10), "audio", "audio/ogg"),
    (b"\x00\x00\x00\x20ftypM4A " + bytes(8), "audio", "audio/mp4"),
    (MP4, "video", "video/mp4"), (b"\x00\x00\x00\x14ftypqt  " + bytes(8), "video", "video/quicktime"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "video", "video/webm"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video", "video/x-msvideo"),
])
def test_sniffing_by_kind(data: bytes, kind: str, mime: str) -> None:
    from vllm_client._media import sniff

    assert sniff(data, kind) == mime
    containers = data.startswith((b"OggS", b"\x1a\x45\xdf\xa3")) or data[4:8] == b"ftyp"  # audio or video
    for other in ("image", "audio", "video"):
        if other != kind and not (containers and other != "image"):
            assert sniff(data, other) is None, other
    assert sniff(b"OPENAI_API_KEY=sk-1\nHOME=/root\n", kind) is None
