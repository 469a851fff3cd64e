"""Streaming only: client CPU per chunk for this SDK, openai-python and bare loops, both write modes.

    python benchmarks/bench_stream.py [--chunks 20000] [--repeat 3]
"""

import sys

from run_all import main

if __name__ == "__main__":
    main(["--only", "stream", *sys.argv[1:]])
