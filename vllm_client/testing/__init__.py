"""Testing support for applications that use vllm_client."""
