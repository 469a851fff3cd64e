#!/usr/bin/env python3
"""Build a tiny, deterministic Llama model + local tokenizer for a real vLLM server.

Usage: python make_tiny_model.py [OUT_DIR]      (default ~/.cache/vllm_client-tests/tiny-model)

The project's copy of the real-server lab's script; it runs inside the vLLM venv (torch,
transformers, tokenizers) and is called by _vllm_server.ensure_model().

No model hub is touched: the tokenizer is a byte-level BPE trained with the
`tokenizers` library on the small English corpus below, wrapped as a
PreTrainedTokenizerFast with a ChatML-like chat template (system / user /
assistant / tool roles, `tools`, assistant `tool_calls`). The model is a
LlamaForCausalLM with tiny sizes (2 layers, hidden 128, head_dim 64), random
weights from a fixed seed, saved with save_pretrained (float32 safetensors,
about 2-3 MB).

The weights are random, but a few "scripted" paths are wired in by hand so a
real server produces some realistic structured outputs (see MODES below).
Each scripted token ("state") has an embedding along its own reserved
hidden dimension; no layer writes to the reserved dimensions, and the lm_head
maps state i to its successor with a large logit (~+30), so the chain is
followed with probability ~1 at any temperature. A "const" reserved dimension,
present only in ordinary tokens, gives a per-token bias in free text: special
tokens, scripted tokens, EOS, non-printable bytes and pure-whitespace tokens
are suppressed there, so free text is random printable ASCII word pieces that
never stops by itself (it ends
on max_tokens -> finish_reason "length", or on a stop string).

MODES (chosen by the chat template through the last prompt token):
  * plain chat (no tools): prompt ends "<|im_start|>assistant\n" -> random text,
    never EOS.
  * request has `tools`: prompt ends "...assistant\n<|act|>" -> the model emits
    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>
    then EOS (hermes tool parser turns it into tool_calls, finish "tool_calls").
  * last message is a `tool` result: prompt ends "...<|answer|>" -> the model
    emits "The weather in Paris is sunny." then EOS (finish_reason "stop").
  * chat_template_kwargs {"enable_thinking": true} (and no tools): prompt ends
    "...<|think|>" -> "<think>Let me think step by step.</think>" then "\n" and
    random text (a reasoning parser splits reasoning from content).
  * legacy /v1/completions: free random text, unless the prompt itself ends
    with one of the trigger tokens above.
"""
import json
import os
import sys

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/vllm_client-tests/tiny-model")
SEED = 1234

CORPUS = """
The weather in Paris is sunny today, and the weather in London is cloudy with light rain.
A small model can still serve requests, stream tokens, and report usage for every call.
The client sends a request to the server, and the server answers with a response in JSON.
Streaming responses arrive as server sent events, one chunk at a time, until the stream is done.
Each chunk carries a delta with new text, and the last chunk may carry the finish reason.
Tools let the assistant call a function with arguments; the result comes back as a tool message.
The city of Rome is old and warm. The city of Oslo is cold in winter and bright in summer.
Numbers like one, two, three, four, five, six, seven, eight, nine and ten appear in many texts.
Questions and answers: what is the time, where is the station, how far is the river, who wrote this book?
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun by the window.
Data is stored in files, files live in folders, and folders form a tree on the disk of the machine.
A good test checks one thing, fails with a clear message, and runs fast enough to run often.
The engine schedules requests, caches keys and values, and samples the next token from the logits.
Temperature changes how random the sampling is; top k and top p keep only the likely tokens.
Stop strings end the output early, and the maximum number of tokens limits how long it can be.
People read books, write letters, cook dinner, walk in the park, and talk with their friends.
The river flows to the sea, the sea meets the sky, and the ships sail from port to port.
Morning light, evening rain, summer wind and winter snow change the color of the hills.
Please summarize the document, translate the sentence, and explain the answer step by step.
The system prompt sets the role, the user asks, and the assistant replies with helpful text.
Errors have a message, a type, and a code; a bad request returns four hundred, a missing model four hundred four.
Every morning the baker opens the shop, the children go to school, and the trains leave the city.
The library has many shelves, and each shelf holds books about history, science, music and art.
Green trees, blue water, red roofs, white clouds, and yellow fields under a clear sky.
"""

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|act|>", "<|think|>", "<|answer|>"]
TOOL_JSON = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
ANSWER = "The weather in Paris is sunny."
THINK_TEXT = "Let me think step by step."
# non-special added tokens (kept in decoded text; parsers look for them)
ADDED = ["<tool_call>", "</tool_call>", "<think>", "</think>", TOOL_JSON, ANSWER, THINK_TEXT]

CHAT_TEMPLATE = r"""{%- set ns = namespace(sys='') -%}
{%- macro text(c) -%}{%- if c is string -%}{{ c }}{%- elif c is iterable -%}{%- for p in c -%}{%- if p.type == 'text' -%}{{ p.text }}{%- endif -%}{%- endfor -%}{%- elif c -%}{{ c }}{%- endif -%}{%- endmacro -%}
{%- if messages and messages[0].role == 'system' -%}{%- set ns.sys = text(messages[0].content) -%}{%- endif -%}
{%- if tools -%}
<|im_start|>system
{% if ns.sys %}{{ ns.sys }}

{% endif %}# Tools
You may call one or more functions. Function signatures:
<tools>
{% for t in tools %}{{ t | tojson }}
{% endfor %}</tools>
To call a function reply with <tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call><|im_end|>
{% elif ns.sys -%}
<|im_start|>system
{{ ns.sys }}<|im_end|>
{% endif -%}
{%- for m in messages -%}
{%- if m.role == 'system' and loop.first -%}
{%- elif m.role == 'assistant' -%}
<|im_start|>assistant
{% set r = m.reasoning if (m.reasoning is defined and m.reasoning) else (m.reasoning_content if (m.reasoning_content is defined and m.reasoning_content) else '') %}{% if r %}<think>{{ r }}</think>{% endif %}{{ text(m.content) }}
{%- if m.tool_calls is defined and m.tool_calls -%}{%- for tc in m.tool_calls -%}{%- set f = tc.function if tc.function is defined else tc -%}
<tool_call>{"name": "{{ f.name }}", "arguments": {% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}}</tool_call>
{%- endfor -%}{%- endif -%}
<|im_end|>
{% elif m.role == 'tool' -%}
<|im_start|>tool
<tool_response>{{ text(m.content) }}</tool_response><|im_end|>
{% else -%}
<|im_start|>{{ m.role }}
{{ text(m.content) }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% if messages and messages[-1].role == 'tool' %}<|answer|>{% elif tools %}<|act|>{% elif enable_thinking is defined and enable_thinking %}<|think|>{% endif %}
{%- endif -%}"""


def build_tokenizer():
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.strip().splitlines() if line.strip()]
    tok.train_from_iterator(lines * 3, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main():
    torch.manual_seed(SEED)
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    V = len(tokenizer)
    def tid(s):
        return tokenizer.convert_tokens_to_ids(s)

    eos = tid("<|im_end|>")
    d = 128
    cfg = LlamaConfig(
        vocab_size=V,
        hidden_size=d,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tid("<|endoftext|>"),
        eos_token_id=eos,
        pad_token_id=tid("<|endoftext|>"),
        initializer_range=0.02,
    )
    model = LlamaForCausalLM(cfg)
    model.eval()

    # scripted chains: state token -> successor token
    chains = [
        ("<|act|>", "<tool_call>"), ("<tool_call>", TOOL_JSON), (TOOL_JSON, "</tool_call>"), ("</tool_call>", "<|im_end|>"),
        ("<|answer|>", ANSWER), (ANSWER, "<|im_end|>"),
        ("<|think|>", "<think>"), ("<think>", THINK_TEXT), (THINK_TEXT, "</think>"), ("</think>", "\u010a"),  # Ċ = "\n" byte token
    ]
    states = [tid(a) for a, _ in chains]
    succ = [tid(b) for _, b in chains]
    assert all(isinstance(x, int) and 0 <= x < V for x in states + succ), (states, succ)
    n = len(states)
    CONST = n
    reserved = list(range(n + 1))
    A, B, C, S = 20.0, 3.0, 0.5, 10.0

    vocab = tokenizer.get_vocab()
    byte_dec = {v: k for k, v in enumerate(_bytes_to_unicode())}

    def printable(token_str):
        if token_str in SPECIAL or token_str in ADDED:
            return False
        try:
            bs = bytes(byte_dec[ch] for ch in token_str)
        except KeyError:
            return False
        return all(32 <= b < 127 or b == 10 for b in bs)

    suppressed = [i for t, i in vocab.items() if not printable(t)]
    # pure-whitespace tokens are pushed down even further than EOS, so that a
    # grammar (json_schema) that allows "whitespace or EOS" picks EOS and JSON
    # comes out compact instead of padded with random newlines
    whitespace = [i for t, i in vocab.items() if printable(t) and t and set(t) <= {"\u0120", "\u010a"}]
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        head = model.lm_head.weight
        head.normal_(0.0, 0.1)  # more peaked than init: logprobs vary a bit
        emb[:, reserved] = 0.0
        emb[:, CONST] = C
        for i, s in enumerate(states):
            emb[s] = 0.0
            emb[s, i] = A
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[reserved, :] = 0.0
            layer.mlp.down_proj.weight[reserved, :] = 0.0
        head[:, reserved] = 0.0
        head[suppressed, CONST] = -S
        head[whitespace, CONST] = -2 * S
        for i, t in enumerate(succ):
            head[t, i] = B

    # self-test with transformers (greedy) on templated prompts
    def greedy(prompt_ids, steps=6):
        ids = list(prompt_ids)
        for _ in range(steps):
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            nxt = int(logits.argmax())
            ids.append(nxt)
            if nxt == eos:
                break
        return tokenizer.decode(ids[len(prompt_ids):], skip_special_tokens=False)

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    msgs = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Weather in Paris?"}]
    p_tool = tokenizer.apply_chat_template(msgs, tools=tools, add_generation_prompt=True, tokenize=False)
    out_tool = greedy(tokenizer(p_tool, add_special_tokens=False)["input_ids"])
    assert out_tool == "<tool_call>" + TOOL_JSON + "</tool_call><|im_end|>", out_tool
    msgs2 = msgs + [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 24C"},
    ]
    p_ans = tokenizer.apply_chat_template(msgs2, tools=tools, add_generation_prompt=True, tokenize=False)
    out_ans = greedy(tokenizer(p_ans, add_special_tokens=False)["input_ids"])
    assert out_ans == ANSWER + "<|im_end|>", out_ans
    p_think = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, enable_thinking=True)
    out_think = greedy(tokenizer(p_think, add_special_tokens=False)["input_ids"], steps=8)
    assert out_think.startswith("<think>" + THINK_TEXT + "</think>\n"), out_think
    p_plain = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    out_plain = greedy(tokenizer(p_plain, add_special_tokens=False)["input_ids"], steps=12)
    assert "<|im_end|>" not in out_plain and "<tool_call>" not in out_plain, out_plain

    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    tokenizer.save_pretrained(OUT)
    # keep the template also inside tokenizer_config.json for older readers
    tc_path = os.path.join(OUT, "tokenizer_config.json")
    with open(tc_path) as f:
        tc = json.load(f)
    tc["chat_template"] = CHAT_TEMPLATE
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
    with open(os.path.join(OUT, "tiny_model_info.json"), "w") as f:
        json.dump({
            "seed": SEED, "vocab_size": V, "eos_token": "<|im_end|>", "eos_token_id": eos,
            "params": sum(p.numel() for p in model.parameters()),
            "modes": {"plain": out_plain, "tools": out_tool, "after_tool_result": out_ans, "thinking": out_think},
            "prompt_example_plain": p_plain, "prompt_example_tools": p_tool,
        }, f, indent=2)
    print(f"[make_tiny_model] wrote {OUT}: vocab={V} params={sum(p.numel() for p in model.parameters())}")
    print(f"[make_tiny_model] plain greedy: {out_plain!r}")
    print(f"[make_tiny_model] tools greedy: {out_tool!r}")
    print(f"[make_tiny_model] after tool result: {out_ans!r}")
    print(f"[make_tiny_model] thinking: {out_think!r}")


def _bytes_to_unicode():
    """GPT-2 byte->unicode table, as a list indexed by byte value."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs), strict=True))
    return [table[b] for b in range(256)]


if __name__ == "__main__":
    main()
