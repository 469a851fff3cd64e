"""The same builder against other OpenAI-compatible servers: each dialect's switches.

Runs offline against the fake server; set VLLM_BASE_URL (and VLLM_API_KEY) to try one for real.
"""

from _server import server

from vllm_client import VllmClient

with server() as (base_url, model), VllmClient(base_url, default_model=model) as client:
    # vLLM / Qwen3 / DeepSeek-R1 distills: thinking on or off through the chat template
    b = client.chat.completions().create().user_message("2+2?").chat_template_kwargs({"enable_thinking": False})
    print("vLLM thinking off:", b.build()["chat_template_kwargs"])
    # Qwen on DashScope (compatible mode): a top-level switch
    print("DashScope:", client.chat.completions().create().user_message("hi").extra({"enable_thinking": True}).build())
    # Groq: parsed reasoning; x_groq usage stays in resp.raw["x_groq"]
    print("Groq:", client.chat.completions().create().user_message("hi").reasoning_format("parsed").build())
    # FastGPT (base URL .../api/v1): server-side history, workflow variables, detailed events
    print("FastGPT:", client.chat.completions().create().user_message("hi").chat_id("chat-1")
          .variables({"uid": "u1"}).detail().build())
    # vLLM structured outputs
    r = (client.chat.completions().create().user_message("Pick one")
         .structured_outputs(choice=["yes", "no"]).max_tokens(5).send())
    print("structured output:", r.content)
