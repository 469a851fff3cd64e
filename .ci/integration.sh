#!/usr/bin/env bash
# Integration tests against a real vLLM (CPU build, tiny local model). The first run installs
# vLLM into ~/.cache/vllm_client-tests (a few minutes); later runs reuse it.
# Usage: .ci/integration.sh [PYTHON]   (the test venv's python; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
start=$(date +%s)
"$PY" -m pytest -m integration tests/integration -q -p no:cacheprovider
echo "[integration] done in $(( $(date +%s) - start )) s"
