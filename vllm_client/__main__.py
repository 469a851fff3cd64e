"""``python -m vllm_client``: the same as the ``vllm-client`` command."""

from ._cli import main

raise SystemExit(main())
