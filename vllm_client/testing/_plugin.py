"""pytest plugin: the ``vllm_server`` fixture (placeholder until FakeVllmServer lands)."""
