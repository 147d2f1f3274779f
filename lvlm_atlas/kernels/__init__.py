"""Triton kernels with plain-torch references for the decoding-stage methods.

Modules (each imports torch; this package file does not):

- ``kernels.attention_scores``: per-key sums of causal softmax attention for chosen queries,
  computed tile by tile from a first pass's row log-sum-exp (never an N x N matrix), GQA aware;
  ``row_logsumexp`` (that first pass) and ``attention_mass_to_keys`` (each query's attention share on
  a key subset, from two such passes). Used by the in-LLM (FastV, PyramidDrop, SparseVLM) and KV methods.
- ``kernels.kv_quant``: KIVI-style 2/4-bit quantize + pack (keys per channel, values per token)
  and a dequantize-fused single-query decode-attention kernel.
- ``kernels.dispatch``: picks the Triton kernel on CUDA (or under ``TRITON_INTERPRET=1``) and the
  torch reference otherwise.
"""
