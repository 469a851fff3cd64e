"""Batch jobs on a Ray cluster (the optional extra ``ray``: ``pip install -e ".[ray]"`` in a checkout).

- ``BatchProcessor``: a callable class for ``Dataset.map_batches`` (rows in, one output row per
  request, typed errors instead of exceptions); ``process(ds, ...)`` applies it with
  defaults that suit an I/O-bound stage (a quarter of a CPU per actor).
- ``run_batch(inputs, output_dir, base_url=...)``: OpenAI batch files in, the batch output
  format out, resumable, with cluster-wide limits (``max_in_flight``,
  ``max_requests_per_second``) and ``Retry-After`` honoured by every actor. The CLI:
  ``vllm-client batch --ray [ADDRESS] INPUT... -o DIR``.

``import vllm_client`` never imports this module; this module imports Ray only when used.
"""

from __future__ import annotations

from ._job import OUTPUT_NAME, input_files, process, run_batch
from ._processor import NUM_CPUS, BatchProcessor, StopJob, error_info, readings

__all__ = ["BatchProcessor", "run_batch", "process", "StopJob", "NUM_CPUS", "OUTPUT_NAME", "error_info",
           "readings", "input_files"]
