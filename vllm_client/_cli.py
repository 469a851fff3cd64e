"""The ``vllm-client`` console script (placeholder)."""


def main() -> int:
    return 0
