"""Attention kinds: one module per kind of attention layer, each registering one :class:`AttentionKind`.

Built in: ``gqa`` (MHA/GQA, sliding windows), ``mla`` (multi-head latent attention), ``gdn`` (gated-DeltaNet
linear attention, recurrent state), ``dsa`` (DeepSeek sparse attention: indexer + top-k MLA), ``mamba2`` (Mamba2 mixers of hybrid
Mamba models, recurrent state), ``kda`` (Kimi Delta Attention, recurrent state), ``msa`` (MiniMax sparse
attention: block indexer + top-k GQA). A model names its
kinds per layer (:meth:`frontier_calib.model_spec.ModelSpec.attention_layer_kinds`); hybrid models mix them.
See ``docs/extending.md`` for adding one.
"""

from .base import (KINDS, AttentionKind, QueryContext, attention_layers, get_kind, kv_bytes_per_token,
                   kv_dtype_groups, model_kinds, needed_families, needed_groups, prefill_recompiles, register,
                   state_bytes_per_sequence, table_format)
from . import gqa, mla  # noqa: F401  (register the built-in kinds, in this order)
from . import dsa, gdn  # noqa: F401
from . import kda, mamba2, msa  # noqa: F401

__all__ = ["KINDS", "AttentionKind", "QueryContext", "attention_layers", "get_kind", "kv_bytes_per_token",
           "kv_dtype_groups", "model_kinds", "needed_families", "needed_groups", "prefill_recompiles", "register",
           "state_bytes_per_sequence", "table_format"]
