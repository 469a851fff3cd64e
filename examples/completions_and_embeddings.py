"""Legacy completions (every prompt form), streaming, and embeddings.

    python examples/completions_and_embeddings.py
    VLLM_BASE_URL=http://localhost:8000/v1 python examples/completions_and_embeddings.py
"""

from _server import server

from vllm_client import VllmClient, VllmError

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    r = client.completions().create().prompt("The capital of France is").max_tokens(8).temperature(0).send()
    print("text:", repr(r.text), "finish:", r.finish_reason)
    r = client.completions().create().prompt(["Once upon a time", "In a galaxy"]).max_tokens(8).send()
    print("two prompts:", [c.text for c in r.choices])
    ids = client.tokenize("Hello world")
    r = client.completions().create().prompt(ids).max_tokens(8).echo().send()
    print("token-id prompt, echoed:", repr(r.text))
    print("streamed:", end=" ")
    with client.completions().create().prompt("Count: one, two,").max_tokens(8).send_stream() as s:
        for piece in s.text_stream():
            print(piece, end="", flush=True)
    print()
    try:
        e = client.embeddings().create().input(["a cat", "a dog"]).send()
        print("embeddings:", len(e.embeddings), "x", len(e.embeddings[0]))
    except VllmError as err:  # a generation server does not serve embeddings
        print("embeddings not served here:", err)
