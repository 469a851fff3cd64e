"""The ``vllm-client`` command: chat, models, complete, responses, server-info, rerank, embed,
health, batch, demo.

Errors are one line on stderr and exit status 1 (``--debug`` shows the traceback).
Imports stay lazy so ``vllm-client --help`` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._connection import cli_connection
from ._printer import Printer, stats_line


def _client(args: argparse.Namespace) -> Any:
    from . import VllmClient

    return VllmClient(args.base_url, api_key=args.api_key, default_model=args.model,
                      timeout=getattr(args, "timeout", None), **cli_connection(args))


def _chat_builder(client: Any, args: argparse.Namespace, builder: Any) -> Any:
    if args.temperature is not None:
        builder.temperature(args.temperature)
    if args.max_tokens is not None:
        builder.max_tokens(args.max_tokens)
    if getattr(args, "stats", False) and not getattr(args, "json", False):  # tokens/s needs usage
        builder.stream_options({"include_usage": True})
    return builder


def cmd_chat(args: argparse.Namespace) -> int:
    """Stream one reply, or an interactive multi-turn session when no prompt is given."""
    import orjson

    prompt = " ".join(args.prompt)
    if not prompt and not _is_terminal(sys.stdin):  # piped: the whole input is one message
        prompt = sys.stdin.read()
        if not prompt.strip():
            sys.stderr.write("vllm-client: nothing to send: the piped input is empty\n")
            return 1
    with _client(args) as client:
        conv = client.chat.conversation(system=args.system)
        if prompt:
            if args.json:
                r = conv.send(prompt, builder=_chat_builder(client, args, conv.builder()))
                sys.stdout.write(orjson.dumps(r.raw, option=orjson.OPT_INDENT_2).decode() + "\n")
                return 0
            printer = Printer()
            with conv.stream(prompt, builder=_chat_builder(client, args, conv.builder())) as stream:
                for ev in stream:
                    printer.event(ev)
            if args.stats:
                printer.end()
                sys.stderr.write(f"[{stats_line(stream.timing)}]\n")
            return 0
        return _interactive(client, conv, args)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or not a real file
        return False


def _interactive(client: Any, conv: Any, args: argparse.Namespace) -> int:
    printer = Printer()
    err = sys.stderr
    err.write(f"Chatting with {client.base_url} (/reset clears the history, /exit or Ctrl-D quits, "
              "Ctrl-C stops a reply)\n")
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            err.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            conv.reset()
            err.write("(history cleared)\n")
            continue
        stream = None
        try:
            stream = conv.stream(text, builder=_chat_builder(client, args, conv.builder()))
            for ev in stream:
                printer.event(ev)
            if args.stats:
                printer.end()
                err.write(f"[{stats_line(stream.timing)}]\n")
        except KeyboardInterrupt:
            printer.end()
            err.write("(stopped; this turn was not kept)\n")
        except Exception as e:  # keep the session going after a failed turn
            printer.end()
            err.write(f"error: {_one_line(e)}\n")
        finally:
            if stream is not None:
                stream.close()


def cmd_models(args: argparse.Namespace) -> int:
    """Print the served models as a table."""
    with _client(args) as client:
        models = client.models()
    rows = [("ID", "MAX_MODEL_LEN", "OWNED_BY")] + [
        (m.id, "" if m.max_model_len is None else str(m.max_model_len), m.owned_by or "") for m in models]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    """Stream a legacy text completion."""
    with _client(args) as client:
        b = client.completions().create().prompt(" ".join(args.prompt))
        if args.max_tokens is not None:
            b.max_tokens(args.max_tokens)
        if args.temperature is not None:
            b.temperature(args.temperature)
        with b.send_stream() as stream:
            for text in stream.text_stream():
                sys.stdout.write(text)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def cmd_responses(args: argparse.Namespace) -> int:
    """Stream a reply of the Responses API (reasoning shown apart, as in chat)."""
    with _client(args) as client:
        b = client.responses().create().input(" ".join(args.prompt))
        if args.instructions is not None:
            b.instructions(args.instructions)
        if args.max_tokens is not None:
            b.max_output_tokens(args.max_tokens)
        if args.temperature is not None:
            b.temperature(args.temperature)
        printer = Printer()
        with b.send_stream() as stream:
            for ev in stream:
                printer.event(ev)  # (ServerEvents, the Responses API's bookkeeping, print nothing)
    return 0


def cmd_server_info(args: argparse.Namespace) -> int:
    """Version, models (with LoRA parents), load and the key metrics, one per line."""
    from ._exceptions import VllmError

    if getattr(args, "check", False):
        return _server_check(args)
    with _client(args) as client:
        lines = [f"server: {client.base_url}", f"version: {client.version()}"]
        for m in client.models():
            parent = f" (LoRA of {m.parent})" if m.parent else ""
            size = f", max_model_len {m.max_model_len}" if m.max_model_len else ""
            lines.append(f"model: {m.id}{parent}{size}")
        for what, get in (("load", client.load), ("metrics", client.metrics)):
            try:
                value = get()
            except VllmError as e:
                lines.append(f"{what}: unavailable ({e})")
                continue
            if what == "load":
                lines.append(f"load: {value} requests in flight")
            else:
                for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
                    lines.append(f"{name}: {getattr(value, name)}")
    print("\n".join(lines))
    return 0


def _server_check(args: argparse.Namespace) -> int:
    """``server-info --check``: the server's /openapi.json against the SDK (exit 1 when the SDK
    has setters for fields this server does not take)."""
    with _client(args) as client:
        report = client.check_server()
    print("\n".join([f"server: {client.base_url}", *report.lines()]))
    return 0 if report.ok else 1


def cmd_rerank(args: argparse.Namespace) -> int:
    """Rerank documents for a query: a table, best first."""
    with _client(args) as client:
        b = client.rerank().create().query(args.query).documents(args.documents)
        if args.top_n is not None:
            b.top_n(args.top_n)
        r = b.send()
    width = max([len(str(x.index)) for x in r.results] + [len("#")])
    print(f"{'rank':>4}  {'#':>{width}}  {'score':>8}  document")
    for rank, x in enumerate(r.results, 1):
        doc = " ".join((x.document or "(multimodal)").split())
        print(f"{rank:>4}  {x.index:>{width}}  {x.relevance_score:>8.4f}  {doc[:100]}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed texts and print each vector's shape (and its first values)."""
    with _client(args) as client:
        b = client.embeddings().create().input(args.texts).encoding_format("base64")
        if args.dimensions is not None:
            b.dimensions(args.dimensions)
        r = b.send()
    print(f"{len(r.embeddings)} x {len(r.embeddings[0]) if r.embeddings else 0} ({r.model})")
    for text, vec in zip(args.texts, r.embeddings, strict=False):
        head = ", ".join(f"{x:.4f}" for x in vec[:4])
        print(f"[{len(vec)}] [{head}{', ...' if len(vec) > 4 else ''}]  {' '.join(text.split())[:60]}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the server is healthy."""
    with _client(args) as client:
        ok = client.health()
        print(f"{client.base_url}: {'healthy' if ok else 'unreachable or unhealthy'}")
    return 0 if ok else 1


def cmd_batch(args: argparse.Namespace) -> int:
    """Run an OpenAI batch file against the server(s)."""
    if args.ray is not None:
        from .ray._job import run_batch_cli as run_ray_batch_cli

        return run_ray_batch_cli(args)
    if len(args.input) != 1:
        sys.stderr.write("vllm-client batch: one input file (several, or a glob, with --ray)\n")
        return 2
    args.input = args.input[0]
    from ._batch_cli import run_batch_cli

    return run_batch_cli(args)


def cmd_fake_server(args: argparse.Namespace) -> int:
    """Serve FakeVllmServer in the foreground until Ctrl-C (or SIGTERM)."""
    import signal
    import threading

    from .testing import FakeVllmServer

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with FakeVllmServer(model=args.model, port=args.port) as server:
        print(f"FakeVllmServer (model {server.model!r}) serving at {server.url}", flush=True)
        sys.stderr.write(f"try: VLLM_BASE_URL={server.url} vllm-client chat \"Hi\"   (Ctrl-C stops the server)\n")
        sys.stderr.flush()
        while not stop.wait(3600):
            pass
    sys.stderr.write("stopped\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Walk through the SDK against a built-in fake server, or a real one."""
    from ._demo import run_demo

    return run_demo(args.base_url or os.environ.get("VLLM_BASE_URL"), api_key=args.api_key, model=args.model)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 400 else text[:397] + "..."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", default=None,
                        help="server base URL (default: $VLLM_BASE_URL, $OPENAI_BASE_URL, http://localhost:8000/v1)")
    common.add_argument("--api-key", default=None, help="API key (default: $VLLM_API_KEY; $OPENAI_API_KEY only for $OPENAI_BASE_URL)")
    common.add_argument("--model", default=None, help="model name (default: the server's only model)")
    common.add_argument("--timeout", type=float, default=None, help="connect/read timeout in seconds")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    tls = common.add_argument_group("connection (default: $HTTPS_PROXY, $NO_PROXY, $REQUESTS_CA_BUNDLE, ...)")
    tls.add_argument("--ca-bundle", "--cacert", dest="ca_bundle", default=None, metavar="PATH",
                     help="CA bundle (PEM) to verify the server's certificate with")
    tls.add_argument("--cert", default=None, metavar="PATH",
                     help="client certificate (PEM; with its key unless --key is given)")
    tls.add_argument("--key", default=None, metavar="PATH", help="the client certificate's private key (PEM)")
    tls.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's certificate")
    tls.add_argument("--proxy", default=None, metavar="URL",
                     help="proxy for every request (instead of $HTTPS_PROXY / $HTTP_PROXY / $ALL_PROXY)")

    from ._version import __version__

    p = argparse.ArgumentParser(prog="vllm-client", description="Talk to vLLM or any OpenAI-compatible server.")
    p.add_argument("--version", action="version", version=f"vllm-client {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("chat", parents=[common], help="stream a reply (interactive when no prompt is given)")
    c.add_argument("prompt", nargs="*", help="the message; omit for an interactive session on a terminal "
                                              "(piped input is sent as one message)")
    c.add_argument("--system", default=None, help="system prompt")
    c.add_argument("--temperature", type=float, default=None)
    c.add_argument("--max-tokens", type=int, default=None)
    c.add_argument("--json", action="store_true", help="print the raw final response as JSON")
    c.add_argument("--stats", action="store_true",
                   help="print time to first token, tokens/s and total time after each reply (to stderr)")
    c.set_defaults(func=cmd_chat)

    m = sub.add_parser("models", parents=[common], help="list the served models")
    m.set_defaults(func=cmd_models)

    cp = sub.add_parser("complete", parents=[common], help="stream a legacy text completion")
    cp.add_argument("prompt", nargs="+")
    cp.add_argument("--temperature", type=float, default=None)
    cp.add_argument("--max-tokens", type=int, default=None)
    cp.set_defaults(func=cmd_complete)

    r = sub.add_parser("responses", parents=[common], help="stream a reply of the Responses API")
    r.add_argument("prompt", nargs="+")
    r.add_argument("--instructions", default=None, help="system instructions")
    r.add_argument("--temperature", type=float, default=None)
    r.add_argument("--max-tokens", type=int, default=None, help="max_output_tokens")
    r.set_defaults(func=cmd_responses)

    si = sub.add_parser("server-info", parents=[common], help="version, models, load and key metrics")
    si.add_argument("--check", action="store_true",
                    help="compare the server's /openapi.json with the SDK: routes and fields it does not type")
    si.set_defaults(func=cmd_server_info)

    rr = sub.add_parser("rerank", parents=[common], help="rerank documents for a query (a pooling server)")
    rr.add_argument("query")
    rr.add_argument("documents", nargs="+")
    rr.add_argument("--top-n", type=int, default=None)
    rr.set_defaults(func=cmd_rerank)

    em = sub.add_parser("embed", parents=[common], help="embed texts and print the vectors' shapes")
    em.add_argument("texts", nargs="+")
    em.add_argument("--dimensions", type=int, default=None)
    em.set_defaults(func=cmd_embed)

    h = sub.add_parser("health", parents=[common], help="check the server's /health")
    h.set_defaults(func=cmd_health)

    b = sub.add_parser(
        "batch", parents=[common], help="run an OpenAI batch file (JSONL) against the server(s)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run an OpenAI batch file (JSONL) against the server(s); resumable.",
        epilog="Resuming: run the same command again. Requests already answered (or failed for good: "
               "400, 404, 422...) are skipped; those that failed for a retryable reason (connection error, "
               "timeout, 408/409/429/5xx after the retries) are sent again, and the output keeps one record "
               "per custom_id (the latest). A torn last line left by a crash is repaired.\n"
               "A server that cannot be reached at the start ends the job at once (nothing written); one "
               "that stops answering mid-job (50 connection failures in a row, or 15 s of failures without "
               "an answer) stops it with exit status 1: run the same command again once it is back.")
    b.add_argument("input", nargs="*",
                   help="input JSONL: custom_id, method, url, body per line (read lazily; '-': stdin); with "
                        "--ray, several files or globs")
    b.add_argument("-o", "--output", required=True,
                   help="output JSONL (appended; re-runs skip the done custom_ids and retry the others; "
                        "'-': stdout); with --ray, a directory")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'ray[data]', or pip install -e '.[ray]' in a checkout): a local Ray, or the cluster at ADDRESS "
                        "('auto', 'ray://host:10001')")
    b.add_argument("--actors", type=int, default=2, help="with --ray: actors sending requests (default 2)")
    b.add_argument("--batch-size", type=int, default=64, help="with --ray: rows per batch (default 64)")
    b.add_argument("--max-in-flight", type=int, default=None,
                   help="with --ray: requests in flight across all actors at most")
    b.add_argument("--concurrency", type=int, default=64)
    b.add_argument("--max-requests-per-second", type=float, default=None)
    b.add_argument("--max-retries", type=int, default=2, help="retries per request (default 2)")
    b.add_argument("--servers", nargs="*", default=None, help="more base URLs to spread the requests over")
    b.add_argument("--no-progress", action="store_true", help="no progress output")
    b.add_argument("--summary-json", default=None, metavar="PATH",
                   help="write the closing summary (requests ok/failed, wall time, requests/s, output "
                        "tokens/s, latency p50/p90/p99) as JSON to PATH")
    b.set_defaults(func=cmd_batch)

    fs = sub.add_parser("fake-server", help="serve FakeVllmServer (no GPU) in the foreground, for trying "
                                            "the CLI and your code; Ctrl-C stops it")
    fs.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    fs.add_argument("--model", default="fake-model", help="the model name it serves (default fake-model)")
    fs.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    fs.set_defaults(func=cmd_fake_server)

    d = sub.add_parser("demo", parents=[common],
                       help="a guided tour against a built-in fake server (or --base-url / $VLLM_BASE_URL)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vllm-client`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        from ._exceptions import APIConnectionError, VllmError

        if isinstance(e, APIConnectionError) and not hasattr(e, "partial"):
            sys.stderr.write(f"vllm-client: {type(e).__name__}: {connection_hint(e, args)}\n")
            return 1
        kind = type(e).__name__ if isinstance(e, VllmError) else f"unexpected {type(e).__name__}"
        sys.stderr.write(f"vllm-client: {kind}: {_one_line(e)}\n")
        return 1


def base_url_source(args: argparse.Namespace) -> tuple[str, str]:
    """The base URL the command uses and where it came from."""
    if getattr(args, "base_url", None):
        return args.base_url, "--base-url"
    for name in ("VLLM_BASE_URL", "OPENAI_BASE_URL"):
        if os.environ.get(name):
            return os.environ[name], f"${name}"
    return "http://localhost:8000/v1", "the default"


def connection_hint(e: BaseException, args: argparse.Namespace) -> str:
    """One line for a server that cannot be reached: which URL, why, and how to point elsewhere."""
    from ._urls import redact_url

    url, source = base_url_source(args)
    text = _one_line(e)
    where = getattr(e, "url", None)
    why = text.split(f"{redact_url(where)}: ", 1)[-1] if where else text
    return (f"cannot reach the server at {redact_url(url)} ({source}): {why}; is it running? "
            "Give its URL with --base-url or VLLM_BASE_URL")
